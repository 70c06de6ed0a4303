//! One Qwen3 decoder layer: pre-norm attention with q/k-norm and RoPE, then a SwiGLU MLP,
//! each added back to the residual stream.

use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::error::{bail, Result};
use crate::kv_cache::KvCache;
use crate::linear::{Matrix, MatrixSpec, QuantizedAs};
use mlx::fast::{rms_norm, rope, rope_offsets, sdpa, swiglu, Mask};
use mlx::{concatenate, Array, Binary, Dtype};

pub struct Attention {
    pub q_proj: Matrix,
    pub k_proj: Matrix,
    pub v_proj: Matrix,
    pub o_proj: Matrix,
    pub q_norm: Array,
    pub k_norm: Array,
}

pub struct Mlp {
    pub gate_proj: Matrix,
    pub up_proj: Matrix,
    pub down_proj: Matrix,
}

pub struct Layer {
    pub input_layernorm: Array,
    pub self_attn: Attention,
    pub post_attention_layernorm: Array,
    pub mlp: Mlp,
}

/// Sizes the layer needs at run time, copied from the config.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub hidden: i32,
    pub heads: i32,
    pub kv_heads: i32,
    pub head_dim: i32,
    pub eps: f32,
    pub rope_theta: f32,
}

impl Dims {
    pub fn new(c: &Config) -> Dims {
        Dims {
            hidden: c.hidden_size,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            eps: c.rms_norm_eps,
            rope_theta: c.rope_theta(),
        }
    }
}

/// The matrices and norm vectors of layer `i`, checked against the config.
/// Norm weight vectors of a layer: (tensor name, length).
pub type VectorSpecs = Vec<(String, i32)>;

pub fn layer_specs(ckpt: &Checkpoint, i: usize) -> Result<(Vec<MatrixSpec>, VectorSpecs)> {
    let c = &ckpt.config;
    let p = format!("model.layers.{i}");
    let (h, q, kv, ff) = (
        c.hidden_size,
        c.num_attention_heads * c.head_dim,
        c.num_key_value_heads * c.head_dim,
        c.intermediate_size,
    );
    let matrices = [
        ("self_attn.q_proj", q, h),
        ("self_attn.k_proj", kv, h),
        ("self_attn.v_proj", kv, h),
        ("self_attn.o_proj", h, q),
        ("mlp.gate_proj", ff, h),
        ("mlp.up_proj", ff, h),
        ("mlp.down_proj", h, ff),
    ]
    .iter()
    .map(|(name, rows, cols)| MatrixSpec::check(ckpt, &format!("{p}.{name}"), *rows, *cols))
    .collect::<Result<Vec<_>>>()?;
    let norms = vec![
        (format!("{p}.input_layernorm.weight"), h),
        (format!("{p}.post_attention_layernorm.weight"), h),
        (format!("{p}.self_attn.q_norm.weight"), c.head_dim),
        (format!("{p}.self_attn.k_norm.weight"), c.head_dim),
    ];
    for (name, len) in &norms {
        check_vector(ckpt, name, *len)?;
    }
    Ok((matrices, norms))
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
    pub fn load(
        ckpt: &Checkpoint,
        i: usize,
        dtype: Dtype,
        quantized_as: QuantizedAs,
        mut on_loaded: impl FnMut(&[String]),
    ) -> Result<Layer> {
        let (specs, norms) = layer_specs(ckpt, i)?;
        let mut m = specs
            .iter()
            .map(|s| {
                let matrix = s.load(ckpt, dtype, quantized_as)?;
                on_loaded(&s.tensor_names());
                Ok(matrix)
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let mut v = norms
            .iter()
            .map(|(name, _)| {
                let vector = load_vector(ckpt, name, dtype)?;
                on_loaded(std::slice::from_ref(name));
                Ok(vector)
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let mut next_m = || m.next().expect("seven matrices");
        let mut next_v = || v.next().expect("four vectors");
        let (q_proj, k_proj, v_proj, o_proj) = (next_m(), next_m(), next_m(), next_m());
        let (gate_proj, up_proj, down_proj) = (next_m(), next_m(), next_m());
        let (input_layernorm, post_attention_layernorm, q_norm, k_norm) =
            (next_v(), next_v(), next_v(), next_v());
        Ok(Layer {
            input_layernorm,
            self_attn: Attention {
                q_proj,
                k_proj,
                v_proj,
                o_proj,
                q_norm,
                k_norm,
            },
            post_attention_layernorm,
            mlp: Mlp {
                gate_proj,
                up_proj,
                down_proj,
            },
        })
    }

    /// `x`: `[B, L, hidden]` → `[B, L, hidden]`, appending this layer's keys/values to `cache`.
    pub fn forward(&self, x: &Array, index: usize, cache: &mut KvCache, d: &Dims) -> Result<Array> {
        self.around_attention(x, d, |normed| self.self_attn.forward(normed, index, cache, d))
    }

    /// Like [`Layer::forward`] for rows that each have their own one-row cache.
    pub fn forward_rows(
        &self,
        x: &Array,
        index: usize,
        caches: &mut [&mut KvCache],
        d: &Dims,
    ) -> Result<Array> {
        self.around_attention(x, d, |normed| {
            self.self_attn.forward_rows(normed, index, caches, d)
        })
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
        Ok(h.add(&self.mlp.forward(&normed)?)?)
    }
}

impl Mlp {
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let hidden = swiglu(&self.gate_proj.linear(x)?, &self.up_proj.linear(x)?)?;
        self.down_proj.linear(&hidden)
    }
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

impl Attention {
    /// Self-attention over the normed input `x` (`[B, L, hidden]`), using and extending the
    /// cache of layer `index`. Returns the output projection (no residual).
    pub fn forward(&self, x: &Array, index: usize, cache: &mut KvCache, d: &Dims) -> Result<Array> {
        let (b, l) = check_input(x, index, cache, d)?;
        let offset = cache.layer_offset(index);
        let (q, k, v) = self.project(x, b, l, d)?;

        let padding = cache.left_padding().map(|p| p.to_vec());
        let (q, k) = match &padding {
            None => (
                rope(&q, d.head_dim, false, d.rope_theta, 1.0, offset)?,
                rope(&k, d.head_dim, false, d.rope_theta, 1.0, offset)?,
            ),
            Some(pad) => {
                // Row b's first real token sits at slot pad[b]: its position is slot - pad[b].
                let starts: Vec<i32> = pad.iter().map(|p| offset - p).collect();
                let starts = Array::from_slice(&starts, &[b])?;
                (
                    rope_offsets(&q, d.head_dim, false, d.rope_theta, 1.0, &starts)?,
                    rope_offsets(&k, d.head_dim, false, d.rope_theta, 1.0, &starts)?,
                )
            }
        };
        let (keys, values) = cache.update(index, &k, &v)?;
        let scale = (d.head_dim as f32).powf(-0.5);
        let out = match &padding {
            None if l > 1 => sdpa(&q, &keys, &values, scale, Mask::Causal)?,
            None => sdpa(&q, &keys, &values, scale, Mask::None)?,
            Some(pad) => {
                let mask = padded_causal_mask(pad, offset, l)?;
                sdpa(&q, &keys, &values, scale, Mask::Array(&mask))?
            }
        };
        self.output(&out, b, l, d)
    }

    /// Self-attention for `B` independent rows (`x`: `[B, L, hidden]`), row `i` using and
    /// extending its own one-row cache `caches[i]`, at its own offset. The projections run
    /// batched; RoPE and SDPA run per row, exactly as a one-row call would.
    pub fn forward_rows(
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
            let pick = |a: &Array, heads: i32| a.slice(&[r, 0, 0, 0], &[r + 1, heads, l, d.head_dim]);
            let offset = cache.layer_offset(index);
            let rotate = |a: &Array| rope(a, d.head_dim, false, d.rope_theta, 1.0, offset);
            let k_row = rotate(&pick(&k, d.kv_heads)?)?;
            let (keys, values) = cache.update(index, &k_row, &pick(&v, d.kv_heads)?)?;
            let q_row = rotate(&pick(&q, d.heads)?)?;
            outs.push(sdpa(&q_row, &keys, &values, scale, mask)?);
        }
        let out = concatenate(&outs.iter().collect::<Vec<_>>(), 0)?;
        self.output(&out, b, l, d)
    }

    /// q, k, v as `[B, heads, L, head_dim]`, q and k normed (RoPE not applied yet).
    fn project(&self, x: &Array, b: i32, l: i32, d: &Dims) -> Result<(Array, Array, Array)> {
        let heads =
            |m: &Matrix, n: i32| -> Result<Array> { Ok(m.linear(x)?.reshape(&[b, l, n, d.head_dim])?) };
        let q = rms_norm(&heads(&self.q_proj, d.heads)?, &self.q_norm, d.eps)?.transpose(&[0, 2, 1, 3])?;
        let k = rms_norm(&heads(&self.k_proj, d.kv_heads)?, &self.k_norm, d.eps)?.transpose(&[0, 2, 1, 3])?;
        let v = heads(&self.v_proj, d.kv_heads)?.transpose(&[0, 2, 1, 3])?;
        Ok((q, k, v))
    }

    /// Attention output `[B, heads, L, head_dim]` → output projection `[B, L, hidden]`.
    fn output(&self, out: &Array, b: i32, l: i32, d: &Dims) -> Result<Array> {
        let out = out
            .transpose(&[0, 2, 1, 3])?
            .reshape(&[b, l, d.heads * d.head_dim])?;
        self.o_proj.linear(&out)
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
