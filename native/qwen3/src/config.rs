//! `config.json` and `generation_config.json`, with the JSON field names kept.
//! Required fields have no silent defaults; unsupported settings are rejected at load.

use crate::error::{bail, Error, Result};
use crate::rope::Yarn;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub model_type: Option<String>,
    pub vocab_size: i32,
    pub hidden_size: i32,
    pub intermediate_size: i32,
    pub num_hidden_layers: i32,
    pub num_attention_heads: i32,
    pub num_key_value_heads: i32,
    pub head_dim: i32,
    pub rms_norm_eps: f32,
    /// Read from `rope_theta` or (transformers ≥ 5) `rope_parameters.rope_theta`.
    #[serde(default)]
    pub rope_theta: Option<f32>,
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    pub max_position_embeddings: i32,
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default)]
    pub torch_dtype: Option<String>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// MLX-community quantization block (`group_size`, `bits`, per-module overrides).
    #[serde(default)]
    pub quantization: Option<BTreeMap<String, Value>>,
    /// transformers' block: a copy of `quantization` in MLX-community checkpoints; other
    /// methods (fp8, awq, gptq …) are refused by name.
    #[serde(default)]
    pub quantization_config: Option<Value>,
    /// transformers ≥ 4.57 lists each layer's attention; only `full_attention` is Qwen3's.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    /// transformers ≥ 4.56's name for `torch_dtype` (informational: tensors carry their own).
    #[serde(default)]
    pub dtype: Option<String>,
    /// `qwen3_moe` only (see [`Moe`]); defaults as transformers' Qwen3MoeConfig.
    #[serde(default)]
    pub num_experts: Option<i32>,
    #[serde(default)]
    pub num_experts_per_tok: Option<i32>,
    #[serde(default)]
    pub moe_intermediate_size: Option<i32>,
    #[serde(default)]
    pub decoder_sparse_step: Option<i32>,
    #[serde(default)]
    pub mlp_only_layers: Option<Vec<i32>>,
    #[serde(default)]
    pub norm_topk_prob: Option<bool>,
}

/// A `qwen3_moe` model's mixture of experts: in each sparse layer a router picks
/// `top_k` of `experts` SwiGLU experts of width `intermediate_size` per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moe {
    pub experts: i32,
    pub top_k: i32,
    pub intermediate_size: i32,
    /// Whether the picked experts' router probabilities are rescaled to sum to 1.
    pub norm_topk_prob: bool,
}

/// A token id or a list of them, as both appear in Hugging Face configs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// How one module's weight is quantized (affine mode, as mlx-lm writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantParams {
    pub group_size: i32,
    pub bits: i32,
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = read_text(path)?;
        Self::from_json(&text).map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display())))
    }

    pub fn from_json(text: &str) -> Result<Config> {
        let mut cfg: Config = serde_json::from_str(text).map_err(|e| Error::InvalidConfig(e.to_string()))?;
        if cfg.rope_theta.is_none() {
            cfg.rope_theta = cfg
                .rope_parameters
                .as_ref()
                .and_then(|p| p.get("rope_theta"))
                .and_then(Value::as_f64)
                .map(|v| v as f32);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        if let Some(t) = &self.model_type {
            if t != "qwen3" && t != "qwen3_moe" {
                bail!(InvalidConfig, "model_type {t:?} is not qwen3 or qwen3_moe");
            }
        }
        self.validate_moe()?;
        if self.rope_theta.is_none() {
            bail!(InvalidConfig, "rope_theta is missing from the config");
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v <= 0 {
                bail!(InvalidConfig, "{name} must be positive, got {v}");
            }
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            bail!(
                InvalidConfig,
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_attention_heads,
                self.num_key_value_heads
            );
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            bail!(InvalidConfig, "rms_norm_eps must be positive");
        }
        if self.attention_bias {
            bail!(InvalidConfig, "attention_bias = true is not a Qwen3 setting");
        }
        if self.use_sliding_window {
            bail!(InvalidConfig, "sliding-window attention is not supported");
        }
        if let Some(archs) = &self.architectures {
            let want = match self.is_moe() {
                true => "Qwen3MoeForCausalLM",
                false => "Qwen3ForCausalLM",
            };
            if let Some(other) = archs.iter().find(|a| *a != want) {
                bail!(InvalidConfig, "architectures: {other:?} is not {want}");
            }
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers as usize {
                bail!(
                    InvalidConfig,
                    "layer_types lists {} layers, num_hidden_layers is {}",
                    types.len(),
                    self.num_hidden_layers
                );
            }
            if let Some(other) = types.iter().find(|t| *t != "full_attention") {
                bail!(
                    InvalidConfig,
                    "layer_types: {other:?} attention is not supported (full_attention only)"
                );
            }
        }
        // mlx-lm reads `quantization` first; without it, transformers' block must not be skipped.
        if let (None, Some(qc)) = (&self.quantization, &self.quantization_config) {
            match qc.get("quant_method").and_then(Value::as_str) {
                Some(method) => bail!(
                    InvalidConfig,
                    "quantization_config.quant_method {method:?} is not supported (MLX-community affine only)"
                ),
                None => bail!(
                    InvalidConfig,
                    "quantization_config without a `quantization` block is not understood"
                ),
            }
        }
        if let Some(act) = &self.hidden_act {
            if act != "silu" {
                bail!(InvalidConfig, "hidden_act {act:?} is not supported (silu only)");
            }
        }
        self.yarn()?;
        if let Some(q) = &self.quantization {
            self.default_quant(q)?;
        }
        Ok(())
    }

    fn is_moe(&self) -> bool {
        self.model_type.as_deref() == Some("qwen3_moe")
    }

    /// The mixture of experts of a `qwen3_moe` config; `None` for dense Qwen3.
    pub fn moe(&self) -> Option<Moe> {
        self.is_moe().then(|| Moe {
            experts: self.num_experts.unwrap_or(0),
            top_k: self.num_experts_per_tok.unwrap_or(0),
            intermediate_size: self.moe_intermediate_size.unwrap_or(0),
            norm_topk_prob: self.norm_topk_prob.unwrap_or(false),
        })
    }

    /// Whether layer `i` runs the experts (else a dense MLP of `intermediate_size`), by
    /// transformers' rule: not in `mlp_only_layers`, and `(i + 1) % decoder_sparse_step == 0`.
    pub fn is_sparse_layer(&self, i: usize) -> bool {
        let only_mlp = self.mlp_only_layers.as_deref().unwrap_or(&[]);
        let step = self.decoder_sparse_step.unwrap_or(1).max(1) as usize;
        self.moe().is_some_and(|m| m.experts > 0)
            && !only_mlp.contains(&(i as i32))
            && (i + 1).is_multiple_of(step)
    }

    fn validate_moe(&self) -> Result<()> {
        let Some(moe) = self.moe() else {
            if let Some(n) = self.num_experts.filter(|&n| n > 0) {
                bail!(InvalidConfig, "num_experts = {n} needs model_type qwen3_moe");
            }
            return Ok(());
        };
        for (name, v) in [
            ("num_experts", self.num_experts),
            ("num_experts_per_tok", self.num_experts_per_tok),
            ("moe_intermediate_size", self.moe_intermediate_size),
        ] {
            match v {
                None => bail!(InvalidConfig, "qwen3_moe config without {name}"),
                Some(v) if v <= 0 => bail!(InvalidConfig, "{name} must be positive, got {v}"),
                Some(_) => {}
            }
        }
        if moe.top_k > moe.experts {
            bail!(
                InvalidConfig,
                "num_experts_per_tok ({}) is more than num_experts ({})",
                moe.top_k,
                moe.experts
            );
        }
        if let Some(step) = self.decoder_sparse_step.filter(|&s| s <= 0) {
            bail!(InvalidConfig, "decoder_sparse_step must be positive, got {step}");
        }
        let layers = 0..self.num_hidden_layers;
        if let Some(bad) = self
            .mlp_only_layers
            .iter()
            .flatten()
            .find(|i| !layers.contains(i))
        {
            bail!(
                InvalidConfig,
                "mlp_only_layers names layer {bad}, not in {layers:?}"
            );
        }
        Ok(())
    }

    pub fn rope_theta(&self) -> f32 {
        self.rope_theta.expect("validated")
    }

    /// YaRN's settings when `rope_scaling` (or, as transformers ≥ 5 writes it,
    /// `rope_parameters`) asks for YaRN; `None` for plain RoPE.
    pub fn yarn(&self) -> Result<Option<Yarn>> {
        let scaling = self.rope_scaling.as_ref().filter(|v| !v.is_null());
        Yarn::from_config(scaling.or(self.rope_parameters.as_ref()))
    }

    pub fn is_quantized(&self) -> bool {
        self.quantization.is_some()
    }

    fn default_quant(&self, q: &BTreeMap<String, Value>) -> Result<QuantParams> {
        if let Some(mode) = q.get("mode").and_then(Value::as_str) {
            if mode != "affine" {
                bail!(
                    InvalidConfig,
                    "quantization mode {mode:?} is not supported (affine only)"
                );
            }
        }
        parse_quant(q.get("group_size"), q.get("bits"), "quantization")
    }

    /// Quantization of module `path` (e.g. `model.layers.0.mlp.down_proj`): its override if
    /// the config names it, else the default. `None` when the module is not quantized.
    pub fn quant_for(&self, path: &str) -> Result<Option<QuantParams>> {
        let Some(q) = &self.quantization else {
            return Ok(None);
        };
        match q.get(path) {
            Some(Value::Bool(false)) => Ok(None),
            Some(Value::Object(o)) => parse_quant(o.get("group_size"), o.get("bits"), path).map(Some),
            Some(other) => bail!(
                InvalidConfig,
                "quantization override for {path} is not understood: {other}"
            ),
            None => self.default_quant(q).map(Some),
        }
    }
}

fn parse_quant(group_size: Option<&Value>, bits: Option<&Value>, at: &str) -> Result<QuantParams> {
    let group_size = group_size.and_then(Value::as_i64).unwrap_or(-1) as i32;
    let bits = bits.and_then(Value::as_i64).unwrap_or(-1) as i32;
    if ![32, 64, 128].contains(&group_size) {
        bail!(
            InvalidConfig,
            "{at}: group_size {group_size} is not 32, 64 or 128"
        );
    }
    if ![2, 3, 4, 5, 6, 8].contains(&bits) {
        bail!(InvalidConfig, "{at}: bits {bits} is not supported");
    }
    Ok(QuantParams { group_size, bits })
}

/// `generation_config.json` (all optional): the EOS ids, and the sampling settings a call
/// that leaves them unset gets (see `SamplerSpec::resolve`). `do_sample` is not read: the
/// sampler is the caller's choice, greedy unless asked otherwise, as in mlx-lm.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationConfig {
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    /// 0 (or less) turns it off, as in transformers.
    #[serde(default)]
    pub top_k: Option<i32>,
    #[serde(default)]
    pub min_p: Option<f32>,
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
}

impl GenerationConfig {
    pub fn from_dir(dir: &Path) -> Result<GenerationConfig> {
        let path = dir.join("generation_config.json");
        if !path.exists() {
            return Ok(GenerationConfig::default());
        }
        let text = read_text(&path)?;
        serde_json::from_str(&text).map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display())))
    }
}

/// A missing or unreadable file is an I/O error; bytes that are not text are a bad config.
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    String::from_utf8(bytes)
        .map_err(|e| Error::InvalidConfig(format!("{}: not UTF-8 text: {e}", path.display())))
}
