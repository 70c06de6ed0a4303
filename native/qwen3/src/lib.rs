//! The Qwen3 causal language model over MLX (no rustler here).
//!
//! Semantics follow Hugging Face `Qwen3ForCausalLM` and mlx-lm's `qwen3.py`: config fields
//! keep their JSON names, weights keep their safetensors keys, the KV cache lives outside.

pub mod checkpoint;
pub mod config;
pub mod constraint;
mod error;
mod experts;
pub mod kv_buffer;
pub mod kv_cache;
pub mod layer;
pub mod linear;
mod memory_budget;
pub mod model;
pub mod rope;
pub mod sampler;
pub mod saved_cache;

pub use config::{Config, GenerationConfig, QuantParams};
pub use error::{Error, Result};
pub use kv_cache::KvCache;
pub use linear::Storage;
pub use model::{LoadOptions, Model, Progress};
