//! One Qwen3 decoder layer: pre-norm attention with q/k-norm and RoPE, then a SwiGLU MLP,
//! each added back to the residual stream.

use crate::checkpoint::Checkpoint;
use crate::config::{Config, Moe, QuantParams};
use crate::error::{bail, Result};
use crate::experts::sparse_mlp;
use crate::kv_cache::KvCache;
use crate::linear::{Matrix, MatrixSpec, Residency};
use crate::rope::Rope;
use mlx::fast::{decoder_layer, decoder_stack, rms_norm, sdpa_merged, swiglu, LayerParams, Mask, StackLayer};
use mlx::{concatenate, Array, Binary, Dtype};

/// The tensors of one decoder layer, each field named as its safetensors key after
/// `model.layers.{i}.` (a matrix's key without `.weight`): `M` for the matrices, `V` for the
/// four norm vectors. In a Qwen3-MoE sparse layer the three MLP matrices are stacks of the
/// experts' (`mlp.switch_mlp.*`, or `mlp.experts.{e}.*`) and `router` is `mlp.gate`. The
/// loader fills it twice, field by field: first with what it expects (names and shapes),
/// then with what it loaded. Nothing is matched by position.
pub struct LayerWeights<M, V> {
    pub input_layernorm: V,
    pub q_proj: M,
    pub k_proj: M,
    pub v_proj: M,
    pub o_proj: M,
    pub q_norm: V,
    pub k_norm: V,
    pub post_attention_layernorm: V,
    pub gate_proj: M,
    pub up_proj: M,
    pub down_proj: M,
    pub router: Option<M>,
}

/// Tokens per row up to which a layer runs as one CPU node (the fused attention's few-query
/// kernel; a prompt's nodes are few beside its arithmetic).
const FUSED_LAYER_TOKENS: i32 = 8;

/// A loaded decoder layer.
pub type Layer = LayerWeights<Matrix, Array>;

/// How a layer node's matrices are packed (bits and groups), and whether its products run
/// the int8 kernels.
type Packing = (QuantParams, bool);

/// The packing of bf16 or f16 weights kept as stored.
const HALF_WEIGHTS: Packing = (
    QuantParams {
        group_size: 0,
        bits: 0,
    },
    false,
);

/// What the checkpoint must hold for a layer: each matrix's (see [`Wanted`]), and each
/// vector's name and length.
type Expected = LayerWeights<Wanted, (String, i32)>;

/// A matrix's path, rows and columns; for a stack of experts also their count, where
/// Hugging Face keeps them one by one (`….mlp.experts`) and the matrix's name there.
struct Wanted {
    path: String,
    rows: i32,
    cols: i32,
    experts: Option<(i32, String, &'static str)>,
}

/// A layer's tensors checked against the checkpoint: specs, and the vectors' names.
pub type LayerSpec = LayerWeights<MatrixSpec, String>;

impl<M, V> LayerWeights<M, V> {
    /// Each matrix through `m` and each vector through `v`, every field into itself.
    pub fn try_map<M2, V2>(
        self,
        mut m: impl FnMut(M) -> Result<M2>,
        mut v: impl FnMut(V) -> Result<V2>,
    ) -> Result<LayerWeights<M2, V2>> {
        Ok(LayerWeights {
            input_layernorm: v(self.input_layernorm)?,
            q_proj: m(self.q_proj)?,
            k_proj: m(self.k_proj)?,
            v_proj: m(self.v_proj)?,
            o_proj: m(self.o_proj)?,
            q_norm: v(self.q_norm)?,
            k_norm: v(self.k_norm)?,
            post_attention_layernorm: v(self.post_attention_layernorm)?,
            gate_proj: m(self.gate_proj)?,
            up_proj: m(self.up_proj)?,
            down_proj: m(self.down_proj)?,
            router: match self.router {
                Some(r) => Some(m(r)?),
                None => None,
            },
        })
    }

    pub fn matrices(&self) -> Vec<&M> {
        let mut all = vec![
            &self.q_proj,
            &self.k_proj,
            &self.v_proj,
            &self.o_proj,
            &self.gate_proj,
            &self.up_proj,
            &self.down_proj,
        ];
        all.extend(self.router.as_ref());
        all
    }

    pub fn vectors(&self) -> [&V; 4] {
        [
            &self.input_layernorm,
            &self.q_norm,
            &self.k_norm,
            &self.post_attention_layernorm,
        ]
    }
}

/// Sizes the layer needs at run time, copied from the config, and its RoPE.
#[derive(Debug)]
pub struct Dims {
    pub hidden: i32,
    pub heads: i32,
    pub kv_heads: i32,
    pub head_dim: i32,
    pub eps: f32,
    pub rope: Rope,
    pub moe: Option<Moe>,
}

impl Dims {
    pub fn new(c: &Config) -> Result<Dims> {
        Ok(Dims {
            hidden: c.hidden_size,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            eps: c.rms_norm_eps,
            rope: Rope::new(c.head_dim, c.rope_theta(), c.yarn()?.as_ref())?,
            moe: c.moe(),
        })
    }
}

impl LayerSpec {
    /// Checks every tensor of layer `i` (names, shapes, dtypes, quantization), loading none.
    pub fn check(ckpt: &Checkpoint, i: usize) -> Result<LayerSpec> {
        expected(&ckpt.config, i).try_map(
            |w| match w.experts {
                None => MatrixSpec::check(ckpt, &w.path, w.rows, w.cols),
                Some((n, prefix, name)) => {
                    let per_expert = |e: i32| format!("{prefix}.{e}.{name}");
                    MatrixSpec::check_experts(ckpt, &w.path, per_expert, n, w.rows, w.cols)
                }
            },
            |(name, len)| check_vector(ckpt, &name, len).map(|()| name),
        )
    }

    /// Every tensor name the layer reads.
    pub fn tensor_names(&self) -> Vec<String> {
        let matrices = self.matrices().into_iter().flat_map(MatrixSpec::tensor_names);
        matrices.chain(self.vectors().into_iter().cloned()).collect()
    }

    /// Loads the checked tensors; `on_loaded` hears the names of each part as it arrives.
    pub fn load(
        self,
        ckpt: &Checkpoint,
        residency: &Residency,
        mut on_loaded: impl FnMut(&[String]),
    ) -> Result<Layer> {
        // Both closures report progress; they take turns, so they share it through a cell.
        let on_loaded = std::cell::RefCell::new(&mut on_loaded);
        self.try_map(
            |spec| {
                let matrix = spec.load(ckpt, residency)?;
                (on_loaded.borrow_mut())(&spec.tensor_names());
                Ok(matrix)
            },
            |name| {
                let vector = load_vector(ckpt, &name, residency.dtype)?;
                (on_loaded.borrow_mut())(std::slice::from_ref(&name));
                Ok(vector)
            },
        )
    }
}

fn expected(c: &Config, i: usize) -> Expected {
    let (h, q, kv, ff) = (
        c.hidden_size,
        c.num_attention_heads * c.head_dim,
        c.num_key_value_heads * c.head_dim,
        c.intermediate_size,
    );
    let key = |name: &str| format!("model.layers.{i}.{name}");
    let matrix = |name: &str, rows, cols| Wanted {
        path: key(name),
        rows,
        cols,
        experts: None,
    };
    let (mlp, router) = match c.moe().filter(|_| c.is_sparse_layer(i)) {
        None => ("mlp", None),
        Some(moe) => ("mlp.switch_mlp", Some((moe, matrix("mlp.gate", moe.experts, h)))),
    };
    let ff = router.as_ref().map_or(ff, |(moe, _)| moe.intermediate_size);
    let mlp_matrix = |name: &'static str, rows, cols| Wanted {
        experts: router
            .as_ref()
            .map(|(moe, _)| (moe.experts, key("mlp.experts"), name)),
        ..matrix(&format!("{mlp}.{name}"), rows, cols)
    };
    LayerWeights {
        input_layernorm: (key("input_layernorm.weight"), h),
        q_proj: matrix("self_attn.q_proj", q, h),
        k_proj: matrix("self_attn.k_proj", kv, h),
        v_proj: matrix("self_attn.v_proj", kv, h),
        o_proj: matrix("self_attn.o_proj", h, q),
        q_norm: (key("self_attn.q_norm.weight"), c.head_dim),
        k_norm: (key("self_attn.k_norm.weight"), c.head_dim),
        post_attention_layernorm: (key("post_attention_layernorm.weight"), h),
        gate_proj: mlp_matrix("gate_proj", ff, h),
        up_proj: mlp_matrix("up_proj", ff, h),
        down_proj: mlp_matrix("down_proj", h, ff),
        router: router.map(|(_, r)| r),
    }
}

pub fn check_vector(ckpt: &Checkpoint, name: &str, len: i32) -> Result<()> {
    match ckpt.info(name) {
        None => bail!(MissingTensor, "missing tensor {name}"),
        Some(i) if !i.dtype.is_float() || i.shape != [len] => {
            bail!(
                InvalidArgument,
                "{name}: expected a float [{len}] vector, found {} {:?}",
                i.dtype.name(),
                i.shape
            )
        }
        Some(_) => Ok(()),
    }
}

pub fn load_vector(ckpt: &Checkpoint, name: &str, dtype: Dtype) -> Result<Array> {
    let v = ckpt.load(name)?.astype(dtype)?;
    v.eval()?;
    Ok(v)
}

impl Layer {
    /// `x`: `[B, L, hidden]` → `[B, L, hidden]`, appending this layer's keys/values to `cache`.
    pub fn forward(&self, x: &Array, index: usize, cache: &mut KvCache, d: &Dims) -> Result<Array> {
        if let Some(y) = self.as_one_node(x, index, cache, d)? {
            return Ok(y);
        }
        self.around_attention(x, d, |normed| self.attention(normed, index, cache, d))
    }

    /// The whole layer as one CPU node (mlx::fast::decoder_layer) where it applies: a few
    /// tokens, a dense MLP, every matrix packed alike, an unpadded float cache. The same
    /// kernels in the same order as op by op, without ~12 nodes' hand-offs per layer.
    fn as_one_node(&self, x: &Array, index: usize, cache: &mut KvCache, d: &Dims) -> Result<Option<Array>> {
        let (_, l) = check_input(x, index, cache, d)?;
        let Some((pack, matrices)) = self.node_matrices(l, cache) else {
            return Ok(None);
        };
        let positions = Array::from_slice(&[cache.layer_offset(index)], &[1])?;
        let (_, freqs, _) = d.rope.parts();
        cache.update_in_node(index, l, |keys, values, slot| {
            Ok(decoder_layer(
                x,
                self.norms(),
                &positions,
                freqs,
                (keys, values),
                &matrices,
                node_params(d, pack, slot),
            )?)
        })
    }

    /// The packing and the matrices' parts of the layer's one-node form, where it applies to
    /// `l` tokens a row in `cache`.
    fn node_matrices(&self, l: i32, cache: &KvCache) -> Option<(Packing, [[&Array; 3]; 7])> {
        if l > FUSED_LAYER_TOKENS || self.router.is_some() || cache.left_padding().is_some() {
            return None;
        }
        let matrices = self.matrices();
        let (pack, parts) = match Matrix::packed_alike(&matrices) {
            Some((quant, int8, parts)) => ((quant, int8), parts),
            // Half weights: bits 0, each weight in place of its (absent) scales and biases.
            None => (
                HALF_WEIGHTS,
                Matrix::half_alike(&matrices)?
                    .into_iter()
                    .map(|w| [w, w, w])
                    .collect(),
            ),
        };
        Some((pack, <[[&Array; 3]; 7]>::try_from(parts).ok()?))
    }

    /// Input, q, k and post-attention norms, as the one-node forms take them.
    fn norms(&self) -> [&Array; 4] {
        [
            &self.input_layernorm,
            &self.q_norm,
            &self.k_norm,
            &self.post_attention_layernorm,
        ]
    }

    /// Like [`Layer::forward`] for rows that each have their own one-row cache.
    pub fn forward_rows(
        &self,
        x: &Array,
        index: usize,
        caches: &mut [&mut KvCache],
        d: &Dims,
    ) -> Result<Array> {
        self.around_attention(x, d, |normed| self.attention_rows(normed, index, caches, d))
    }

    /// Norms, residuals and the MLP around an attention block.
    fn around_attention(
        &self,
        x: &Array,
        d: &Dims,
        attend: impl FnOnce(&Array) -> Result<Array>,
    ) -> Result<Array> {
        let normed = rms_norm(x, &self.input_layernorm, d.eps)?;
        let h = x.add(&attend(&normed)?)?;
        let normed = rms_norm(&h, &self.post_attention_layernorm, d.eps)?;
        Ok(h.add(&self.mlp(&normed, d)?)?)
    }
}

impl Layer {
    /// The MLP on an already normed `x`: SwiGLU, or in a sparse layer the picked experts'.
    pub fn mlp(&self, x: &Array, d: &Dims) -> Result<Array> {
        let matrices = [&self.gate_proj, &self.up_proj, &self.down_proj];
        if let (Some(router), Some(moe)) = (&self.router, &d.moe) {
            return sparse_mlp(x, router, matrices, moe);
        }
        let [gate, up] = Matrix::linears(x, [&self.gate_proj, &self.up_proj])?;
        self.down_proj.linear(&swiglu(&gate, &up)?)
    }
}

/// What a layer's node takes besides arrays, its matrices packed as `(quant, int8)`.
fn node_params(d: &Dims, (quant, int8): Packing, slot: i32) -> LayerParams {
    let (base, _, factor) = d.rope.parts();
    LayerParams {
        eps: d.eps,
        base,
        factor,
        scale: (d.head_dim as f32).powf(-0.5),
        heads: d.heads,
        kv_heads: d.kv_heads,
        slot,
        bits: quant.bits,
        group_size: quant.group_size,
        int8,
    }
}

/// Every layer of a decode step as one CPU node (mlx::fast::decoder_stack), where each
/// layer's node applies, all pack their matrices alike and the cache's layers are at one
/// slot: no hand-offs between the layers' nodes on the CPU stream. `None`: build them one
/// by one.
pub fn stack_as_one_node(
    layers: &[Layer],
    x: &Array,
    cache: &mut KvCache,
    d: &Dims,
) -> Result<Option<Array>> {
    if layers.is_empty() {
        return Ok(None);
    }
    let (_, l) = check_input(x, 0, cache, d)?;
    let mut parts = Vec::with_capacity(layers.len());
    for layer in layers {
        match layer.node_matrices(l, cache) {
            Some(p) if parts.first().is_none_or(|(first, _)| *first == p.0) => parts.push(p),
            _ => return Ok(None),
        }
    }
    let pack = parts[0].0;
    let positions = Array::from_slice(&[cache.layer_offset(0)], &[1])?;
    let (_, freqs, _) = d.rope.parts();
    cache.update_all_in_node(l, |buffers, slot| {
        let stack: Vec<StackLayer> = layers
            .iter()
            .zip(&parts)
            .zip(buffers)
            .map(|((layer, (_, matrices)), &caches)| StackLayer {
                norms: layer.norms(),
                caches,
                matrices: *matrices,
            })
            .collect();
        Ok(decoder_stack(
            x,
            &positions,
            freqs,
            &stack,
            node_params(d, pack, slot),
        )?)
    })
}

/// Checks `x` is `[B, L, hidden]` for this cache and that L new tokens fit.
pub fn check_input(x: &Array, index: usize, cache: &KvCache, d: &Dims) -> Result<(i32, i32)> {
    let (b, l) = check_hidden(x, cache.batch(), d)?;
    cache.check_room(index, l)?;
    Ok((b, l))
}

/// `(B, L)` of hidden states `x`, which must be `[batch, L ≥ 1, hidden]`.
fn check_hidden(x: &Array, batch: i32, d: &Dims) -> Result<(i32, i32)> {
    let shape = x.shape();
    if shape.len() != 3 || shape[0] != batch || shape[2] != d.hidden || shape[1] < 1 {
        bail!(
            InvalidArgument,
            "expected hidden states of shape [{batch}, L ≥ 1, {}], got {shape:?}",
            d.hidden
        );
    }
    Ok((shape[0], shape[1]))
}

impl Layer {
    /// Self-attention over the normed input `x` (`[B, L, hidden]`), using and extending the
    /// cache of layer `index`. Returns the output projection (no residual).
    pub fn attention(&self, x: &Array, index: usize, cache: &mut KvCache, d: &Dims) -> Result<Array> {
        let (b, l) = check_input(x, index, cache, d)?;
        let offset = cache.layer_offset(index);
        let (q, k, v) = self.project(x, b, l, d)?;

        let padding = cache.left_padding().map(|p| p.to_vec());
        let starts = match &padding {
            None => Array::from_slice(&[offset], &[1])?,
            // Row b's first real token sits at slot pad[b]: its position is slot - pad[b].
            Some(pad) => Array::from_slice(&pad.iter().map(|p| offset - p).collect::<Vec<_>>(), &[b])?,
        };
        let (q, k) = (self.rotated_q(&q, &starts, d)?, self.rotated_k(&k, &starts, d)?);
        let (keys, values) = cache.update(index, &k, &v)?;
        let scale = (d.head_dim as f32).powf(-0.5);
        let out = match &padding {
            None if l > 1 => sdpa_merged(&q, &keys, &values, scale, Mask::Causal)?,
            None => sdpa_merged(&q, &keys, &values, scale, Mask::None)?,
            Some(pad) => {
                let mask = padded_causal_mask(pad, offset, l)?;
                sdpa_merged(&q, &keys, &values, scale, Mask::Array(&mask))?
            }
        };
        self.o_proj.linear(&out)
    }

    /// Self-attention for `B` independent rows (`x`: `[B, L, hidden]`), row `i` using and
    /// extending its own one-row cache `caches[i]`, at its own offset. The projections run
    /// batched; RoPE and SDPA run per row, exactly as a one-row call would.
    pub fn attention_rows(
        &self,
        x: &Array,
        index: usize,
        caches: &mut [&mut KvCache],
        d: &Dims,
    ) -> Result<Array> {
        let (b, l) = check_rows(x, index, caches, d)?;
        let (q, k, v) = self.project(x, b, l, d)?;
        let scale = (d.head_dim as f32).powf(-0.5);
        let mask = if l > 1 { Mask::Causal } else { Mask::None };
        let mut outs = Vec::with_capacity(caches.len());
        for (row, cache) in caches.iter_mut().enumerate() {
            let r = row as i32;
            let pick = |a: &Array| a.slice(&[r, 0, 0], &[r + 1, l, a.dim(2)?]);
            let starts = Array::from_slice(&[cache.layer_offset(index)], &[1])?;
            let k_row = self.rotated_k(&pick(&k)?, &starts, d)?;
            let v_row = v.slice(&[r, 0, 0, 0], &[r + 1, d.kv_heads, l, d.head_dim])?;
            let (keys, values) = cache.update(index, &k_row, &v_row)?;
            let q_row = self.rotated_q(&pick(&q)?, &starts, d)?;
            outs.push(sdpa_merged(&q_row, &keys, &values, scale, mask)?);
        }
        let out = concatenate(&outs.iter().collect::<Vec<_>>(), 0)?;
        self.o_proj.linear(&out)
    }

    /// q and k as projected (`[B, L, heads · head_dim]`), v as `[B, kv_heads, L, head_dim]`.
    fn project(&self, x: &Array, b: i32, l: i32, d: &Dims) -> Result<(Array, Array, Array)> {
        let [q, k, v] = Matrix::linears(x, [&self.q_proj, &self.k_proj, &self.v_proj])?;
        let v = v
            .reshape(&[b, l, d.kv_heads, d.head_dim])?
            .transpose(&[0, 2, 1, 3])?;
        Ok((q, k, v))
    }

    /// Projected q as `[B, heads, L, head_dim]`, each head normed, then rotated from `starts`.
    fn rotated_q(&self, q: &Array, starts: &Array, d: &Dims) -> Result<Array> {
        d.rope.apply_normed(q, d.heads, &self.q_norm, d.eps, starts)
    }

    fn rotated_k(&self, k: &Array, starts: &Array, d: &Dims) -> Result<Array> {
        d.rope.apply_normed(k, d.kv_heads, &self.k_norm, d.eps, starts)
    }
}

/// Checks `x` is `[B, L, hidden]` with one unpadded one-row cache per row, each with room.
fn check_rows(x: &Array, index: usize, caches: &[&mut KvCache], d: &Dims) -> Result<(i32, i32)> {
    let (b, l) = check_hidden(x, caches.len() as i32, d)?;
    for cache in caches {
        if cache.batch() != 1 || cache.left_padding().is_some() {
            bail!(
                InvalidArgument,
                "each row needs its own one-row cache without padding"
            );
        }
        cache.check_room(index, l)?;
    }
    Ok((b, l))
}

/// Boolean `[B, 1, L, offset + L]`: query slot t sees key slot s iff pad[b] ≤ s ≤ t.
fn padded_causal_mask(pad: &[i32], offset: i32, len: i32) -> Result<Array> {
    let total = offset + len;
    let q_pos = Array::arange(offset as f64, total as f64, 1.0, Dtype::Int32)?.reshape(&[1, 1, len, 1])?;
    let k_pos = Array::arange(0.0, total as f64, 1.0, Dtype::Int32)?.reshape(&[1, 1, 1, total])?;
    let starts = Array::from_slice(pad, &[pad.len() as i32, 1, 1, 1])?;
    let causal = k_pos.binary(Binary::LessEqual, &q_pos)?;
    let valid = k_pos.binary(Binary::GreaterEqual, &starts)?;
    Ok(causal.binary(Binary::LogicalAnd, &valid)?)
}
