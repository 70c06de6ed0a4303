//! The whole Qwen3 causal LM: embedding, decoder layers, final norm and LM head.
//! The KV cache lives outside the model (see `kv_cache`).

use crate::checkpoint::Checkpoint;
use crate::config::{Config, GenerationConfig};
use crate::error::{bail, Result};
use crate::kv_buffer::KvQuant;
use crate::kv_cache::KvCache;
use crate::layer::{check_vector, load_vector, stack_as_one_node, Dims, Layer, LayerSpec};
use crate::linear::{Matrix, MatrixSpec, Residency, Storage};
use crate::memory_budget;
use mlx::fast::rms_norm;
use mlx::{Array, Binary, Device, Dtype, Reduce, Unary};
use std::collections::HashSet;
use std::path::Path;

pub struct Model {
    pub config: Config,
    pub generation: GenerationConfig,
    pub dtype: Dtype,
    /// How the weight matrices are held (see `Residency` for what each one becomes).
    pub storage: Storage,
    pub dims: Dims,
    pub embed_tokens: Matrix,
    pub layers: Vec<Layer>,
    pub norm: Array,
    /// `Model::identity`, worked out once.
    identity: std::sync::OnceLock<String>,
    /// `None` when the LM head is tied to the embedding, or when a bare backbone (an
    /// embedding model such as Qwen3-Embedding) has none: it then embeds but has no logits.
    pub lm_head: Option<Matrix>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Compute dtype; default float32 on the CPU, the checkpoint's dtype on a GPU.
    pub dtype: Option<Dtype>,
    /// How the weight matrices are held; default as stored.
    pub storage: Option<Storage>,
    /// Bytes the weights may take; default the memory the system has available. A load
    /// that needs more fails with `out_of_memory` before anything is allocated.
    pub memory_limit: Option<u64>,
    /// On the CPU, packed 4/8-bit products quantize their input rows to int8 per group
    /// for integer dot products (AVX-512 VNNI; elsewhere ignored): faster, and each output
    /// moves by at most Σ|scale · q| · (the input's int8 step) / 2. Default false.
    pub int8_activations: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub tensors_done: usize,
    pub tensors_total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

impl Model {
    /// Loads a Hugging Face model directory for `device` (whose worker must be the caller).
    /// Every tensor is checked before any is loaded; `progress` is called as tensors arrive.
    pub fn load(
        dir: impl AsRef<Path>,
        device: Device,
        opts: LoadOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<Model> {
        let ckpt = Checkpoint::open(dir)?;
        let c = ckpt.config.clone();
        let layers = c.num_hidden_layers as usize;

        // 1. Check every tensor (names, shapes, dtypes, quantization) before building anything.
        let embed = MatrixSpec::check(&ckpt, "model.embed_tokens", c.vocab_size, c.hidden_size)?;
        let headless = ckpt.backbone_only && ckpt.info("lm_head.weight").is_none();
        let lm_head = match c.tie_word_embeddings || headless {
            true => None,
            false => Some(MatrixSpec::check(&ckpt, "lm_head", c.vocab_size, c.hidden_size)?),
        };
        check_vector(&ckpt, "model.norm.weight", c.hidden_size)?;
        let layer_specs = (0..layers)
            .map(|i| LayerSpec::check(&ckpt, i))
            .collect::<Result<Vec<_>>>()?;
        let mut expected: HashSet<String> = embed.tensor_names().into_iter().collect();
        expected.extend(lm_head.iter().flat_map(MatrixSpec::tensor_names));
        expected.insert("model.norm.weight".into());
        expected.extend(layer_specs.iter().flat_map(LayerSpec::tensor_names));
        reject_unknown_tensors(&ckpt, &expected)?;

        // 2. Decide how to compute.
        let stored = ckpt
            .info("model.embed_tokens.scales")
            .or(ckpt.info("model.embed_tokens.weight"));
        let stored_dtype = stored.map(|i| i.dtype).unwrap_or(Dtype::Float32);
        let dtype = opts.dtype.unwrap_or(match device {
            Device::Cpu => Dtype::Float32,
            Device::Gpu => stored_dtype,
        });
        if !matches!(dtype, Dtype::Float32 | Dtype::Bfloat16 | Dtype::Float16) {
            bail!(
                InvalidArgument,
                "compute dtype must be f32, bf16 or f16, not {}",
                dtype.name()
            );
        }
        let residency = Residency {
            dtype,
            storage: opts.storage.unwrap_or(Storage::AsStored),
            cpu: device == Device::Cpu,
            int8_activations: opts.int8_activations,
        };
        let matrices = std::iter::once(&embed)
            .chain(lm_head.iter())
            .chain(layer_specs.iter().flat_map(|l| l.matrices()));
        let vectors = (4 * layers as u64 + 1) * c.hidden_size.max(c.head_dim) as u64;
        let needed: u64 =
            matrices.map(|m| m.resident_bytes(&residency)).sum::<u64>() + vectors * dtype.size() as u64;
        memory_budget::check(needed, opts.memory_limit, residency.storage)?;

        // 3. Load, reporting progress.
        let mut p = Progress {
            tensors_total: expected.len(),
            bytes_total: expected
                .iter()
                .filter_map(|n| ckpt.info(n))
                .map(|i| i.nbytes as u64)
                .sum(),
            ..Progress::default()
        };
        let mut on_loaded = |names: &[String]| {
            p.tensors_done += names.len();
            p.bytes_done += names
                .iter()
                .filter_map(|n| ckpt.info(n))
                .map(|i| i.nbytes as u64)
                .sum::<u64>();
            progress(p);
        };
        let embed_tokens = embed.load(&ckpt, &residency)?;
        on_loaded(&embed.tensor_names());
        let layers = layer_specs
            .into_iter()
            .map(|spec| spec.load(&ckpt, &residency, &mut on_loaded))
            .collect::<Result<Vec<_>>>()?;
        let norm = load_vector(&ckpt, "model.norm.weight", dtype)?;
        on_loaded(&["model.norm.weight".to_string()]);
        let lm_head = match lm_head {
            Some(spec) => {
                let m = spec.load(&ckpt, &residency)?;
                on_loaded(&spec.tensor_names());
                Some(m)
            }
            None => None,
        };
        Ok(Model {
            dims: Dims::new(&c)?,
            storage: residency.storage,
            config: c,
            generation: ckpt.generation,
            dtype,
            embed_tokens,
            layers,
            norm,
            lm_head,
            identity: std::sync::OnceLock::new(),
        })
    }

    pub fn new_cache(&self, batch: i32, capacity: i32) -> Result<KvCache> {
        self.new_cache_quantized(batch, capacity, None)
    }

    /// A cache whose keys and values are stored quantized as `quant` says (None: as computed).
    pub fn new_cache_quantized(&self, batch: i32, capacity: i32, quant: Option<KvQuant>) -> Result<KvCache> {
        let c = &self.config;
        let mut cache = KvCache::new(
            self.layers.len(),
            batch,
            c.num_key_value_heads,
            capacity,
            c.head_dim,
            self.dtype,
            quant,
        )?;
        cache.set_model_identity(self.identity()?.to_string());
        Ok(cache)
    }

    /// What a KV cache depends on: the attention shapes, the compute dtype and (as a
    /// fingerprint of these weights rather than others of the same shapes) an FNV-1a hash of
    /// the norm vectors.
    pub fn identity(&self) -> Result<&str> {
        if let Some(id) = self.identity.get() {
            return Ok(id);
        }
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let norms = self.layers.iter().flat_map(|l| [&l.input_layernorm, &l.k_norm]);
        for v in std::iter::once(&self.norm).chain(norms) {
            for b in v.to_bytes()? {
                hash = (hash ^ b as u64).wrapping_mul(0x100_0000_01b3);
            }
        }
        let c = &self.config;
        let id = format!(
            "{} layers={} kv_heads={} head_dim={} dtype={} weights={hash:016x}",
            c.model_type.as_deref().unwrap_or("qwen3"),
            self.layers.len(),
            c.num_key_value_heads,
            c.head_dim,
            self.dtype.name()
        );
        Ok(self.identity.get_or_init(|| id))
    }

    /// Token ids (`[B, L]`, or `[B]` for one step, integer) → hidden states `[B, L, hidden]`.
    pub fn embed(&self, ids: &Array) -> Result<Array> {
        let integer = matches!(ids.dtype(), Dtype::Int32 | Dtype::Uint32 | Dtype::Int64);
        if !(1..=2).contains(&ids.ndim()) || !integer {
            bail!(
                InvalidArgument,
                "token ids must be an integer [B, L] array, got {ids:?}"
            );
        }
        let ids = match ids.ndim() {
            1 => ids.reshape(&[ids.dim(0)?, 1])?,
            _ => ids.clone(),
        };
        self.embed_tokens.rows(&ids, self.dtype)
    }

    pub fn layer(&self, index: usize, h: &Array, cache: &mut KvCache) -> Result<Array> {
        self.layer_ref(index)?.forward(h, index, cache, &self.dims)
    }

    /// The attention of layer `index` alone (normed input, extends the cache, no residual).
    pub fn attention(&self, index: usize, x: &Array, cache: &mut KvCache) -> Result<Array> {
        self.layer_ref(index)?.attention(x, index, cache, &self.dims)
    }

    /// The MLP of layer `index` alone, on an already normed input.
    pub fn mlp(&self, index: usize, x: &Array) -> Result<Array> {
        self.layer_ref(index)?.mlp(x, &self.dims)
    }

    fn layer_ref(&self, index: usize) -> Result<&Layer> {
        match self.layers.get(index) {
            Some(l) => Ok(l),
            None => bail!(
                InvalidArgument,
                "layer {index} out of range (model has {})",
                self.layers.len()
            ),
        }
    }

    /// End-of-sequence ids: generation_config.json first, then config.json.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let ids = self
            .generation
            .eos_token_id
            .as_ref()
            .or(self.config.eos_token_id.as_ref());
        ids.map(|t| t.to_vec()).unwrap_or_default()
    }

    /// Final norm + LM head; only the last position when `last_only`.
    pub fn final_logits(&self, h: &Array, last_only: bool) -> Result<Array> {
        let shape = h.shape();
        if shape.len() != 3 || shape[2] != self.dims.hidden {
            bail!(
                InvalidArgument,
                "expected hidden states [B, L, {}], got {shape:?}",
                self.dims.hidden
            );
        }
        let h = match last_only {
            true => h.slice(&[0, shape[1] - 1, 0], &shape)?,
            false => h.clone(),
        };
        let h = rms_norm(&h, &self.norm, self.dims.eps)?;
        match (&self.lm_head, self.config.tie_word_embeddings) {
            (Some(head), _) => head.linear(&h),
            (None, true) => self.embed_tokens.linear(&h),
            (None, false) => bail!(
                InvalidArgument,
                "this checkpoint is a bare backbone without an LM head (an embedding model): it embeds, it does not generate"
            ),
        }
    }

    /// Text embeddings as Qwen3-Embedding computes them: the rows of `ids` (`[B, L]`, row b
    /// left-padded by `left_padding[b]` slots) through every layer, the final norm of each
    /// row's last position, L2-normalised. Float32 `[B, hidden]` (lazy).
    pub fn pooled_embeddings(&self, ids: &Array, left_padding: &[i32]) -> Result<Array> {
        let shape = ids.shape();
        let (b, l) = match shape[..] {
            [b, l] if l > 0 && left_padding.len() == b as usize && left_padding.iter().all(|&p| (0..l).contains(&p)) => {
                (b, l)
            }
            _ => bail!(
                InvalidArgument,
                "expected ids [B, L ≥ 1] and one left-padding count below L per row, got {shape:?} and {} counts",
                left_padding.len()
            ),
        };
        let mut cache = self.new_cache(b, l)?;
        cache.set_left_padding(left_padding.to_vec())?;
        let h = self.layers(&self.embed(ids)?, &mut cache)?;
        let last = h.slice(&[0, l - 1, 0], &[b, l, self.dims.hidden])?;
        let pooled = rms_norm(&last, &self.norm, self.dims.eps)?
            .astype(Dtype::Float32)?
            .reshape(&[b, self.dims.hidden])?;
        let length = pooled
            .multiply(&pooled)?
            .reduce(Reduce::Sum, -1, true)?
            .unary(Unary::Sqrt)?;
        let floor = Array::scalar(1e-12f32)?;
        Ok(pooled.binary(Binary::Divide, &length.binary(Binary::Maximum, &floor)?)?)
    }

    /// One whole step natively: embed, every layer, final logits (lazy).
    pub fn forward(&self, ids: &Array, cache: &mut KvCache, last_only: bool) -> Result<Array> {
        let h = self.embed(ids)?;
        self.final_logits(&self.layers(&h, cache)?, last_only)
    }

    /// Every decoder layer on `h` (`[B, L, hidden]`), extending `cache`: for a decode step
    /// one CPU node for the whole stack where it applies, else layer by layer.
    pub fn layers(&self, h: &Array, cache: &mut KvCache) -> Result<Array> {
        if cache.num_layers() != self.layers.len() {
            bail!(InvalidArgument, "this cache was made for another model");
        }
        if let Some(y) = stack_as_one_node(&self.layers, h, cache, &self.dims)? {
            return Ok(y);
        }
        let mut h = h.clone();
        for i in 0..self.layers.len() {
            h = self.layer(i, &h, cache)?;
        }
        Ok(h)
    }

    /// One step for `B` independent rows (`ids`: `[B, L]`), row `i` with its own one-row
    /// cache `caches[i]` at its own offset: continuous batching of separate generations.
    pub fn forward_rows(&self, ids: &Array, caches: &mut [&mut KvCache], last_only: bool) -> Result<Array> {
        if caches.iter().any(|c| c.num_layers() != self.layers.len()) {
            bail!(InvalidArgument, "a cache was made for another model");
        }
        let mut h = self.embed(ids)?;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward_rows(&h, i, caches, &self.dims)?;
        }
        self.final_logits(&h, last_only)
    }

    /// Whether any product runs the int8 kernels (`int8_activations` asked for, packed
    /// 4/8-bit weights on a CPU that runs them).
    pub fn int8_products(&self) -> bool {
        self.matrices().any(|m| match m {
            Matrix::Quantized {
                weight,
                params,
                int8: true,
                ..
            } => mlx::fast::int8_activations_supported(
                params.bits,
                params.group_size,
                weight.dim(-1).unwrap_or(0) as i64 * 32 / params.bits as i64,
            ),
            _ => false,
        })
    }

    /// Whether any matrix is held packed (quantized, not widened).
    pub fn holds_packed(&self) -> bool {
        self.matrices().any(|m| matches!(m, Matrix::Quantized { .. }))
    }

    fn matrices(&self) -> impl Iterator<Item = &Matrix> {
        let layers = self.layers.iter().flat_map(|l| l.matrices());
        std::iter::once(&self.embed_tokens)
            .chain(self.lm_head.iter())
            .chain(layers)
    }

    /// Bytes of weights held (what one decode step reads).
    pub fn weight_bytes(&self) -> usize {
        let norms: usize = self.norm.nbytes();
        let layers: usize = self
            .layers
            .iter()
            .flat_map(|l| l.matrices())
            .map(Matrix::nbytes)
            .sum();
        self.embed_tokens.nbytes() + layers + norms + self.lm_head.as_ref().map_or(0, Matrix::nbytes)
    }

    /// Bytes of weights one decode step reads: as [`Model::weight_bytes`], but of each
    /// stack of experts only the `top_k` a token picks, and of an embedding table that is
    /// not also the LM head only the token's row (the roofline of MoE decode).
    pub fn active_weight_bytes(&self) -> usize {
        let mut bytes = self.weight_bytes();
        if self.lm_head.is_some() {
            let rows = self.config.vocab_size as usize;
            bytes -= self.embed_tokens.nbytes() - self.embed_tokens.nbytes() / rows;
        }
        if let Some(moe) = self.dims.moe {
            let matrices = self.layers.iter().flat_map(|l| l.matrices());
            let stacks: usize = matrices.filter(|m| m.is_stack()).map(Matrix::nbytes).sum();
            bytes -= stacks - stacks * moe.top_k as usize / moe.experts as usize;
        }
        bytes
    }
}

fn reject_unknown_tensors(ckpt: &Checkpoint, expected: &HashSet<String>) -> Result<()> {
    let tied_head = ckpt.config.tie_word_embeddings;
    let mut unknown: Vec<&str> = ckpt
        .names()
        .filter(|n| !expected.contains(*n))
        // Tied checkpoints sometimes still carry lm_head (mlx-lm drops it too).
        .filter(|n| !(tied_head && n.starts_with("lm_head.")))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    bail!(
        InvalidArgument,
        "{} tensor(s) do not belong to this Qwen3 config, e.g. {:?}",
        unknown.len(),
        &unknown[..unknown.len().min(3)]
    )
}
