//! A KV cache on disk: safetensors with each layer's keys and values up to the cache's
//! offset (`layers.{i}.keys`, `layers.{i}.values`) and, as metadata, the token ids they
//! hold and the identity of the model that computed them. Loading checks that identity, so
//! a cache never continues in a model it does not belong to.

use crate::error::{bail, Result};
use crate::kv_cache::KvCache;
use crate::model::Model;
use mlx::safetensors::{save as save_file, SafetensorsFile};
use std::collections::HashMap;
use std::path::Path;

const FORMAT: &str = "qwen3-kv-cache/1";

/// Saves a one-row cache holding `tokens` (as many as its offset).
pub fn save(cache: &KvCache, tokens: &[u32], path: &Path) -> Result<()> {
    if cache.batch() != 1 || cache.left_padding().is_some() || cache.dropped() > 0 {
        bail!(
            InvalidArgument,
            "only a one-row cache without padding, holding every token it was fed, can be saved"
        );
    }
    if tokens.len() != cache.offset() as usize {
        bail!(
            InvalidArgument,
            "the cache holds {} tokens but {} token ids were given",
            cache.offset(),
            tokens.len()
        );
    }
    let held = cache.held()?;
    let mut tensors = Vec::with_capacity(2 * held.len());
    for (i, (keys, values)) in held.iter().enumerate() {
        tensors.push((format!("layers.{i}.keys"), keys));
        tensors.push((format!("layers.{i}.values"), values));
    }
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("model".to_string(), cache.model_identity().to_string()),
        (
            "tokens".to_string(),
            serde_json::to_string(tokens).expect("ids serialize"),
        ),
    ]);
    Ok(save_file(path, &tensors, metadata)?)
}

/// Loads a saved cache into a new one-row cache for `model` of `capacity` tokens (default:
/// what it holds + 2048); returns it with the token ids it holds.
pub fn load(model: &Model, path: &Path, capacity: Option<i32>) -> Result<(KvCache, Vec<u32>)> {
    let file = SafetensorsFile::open(path)?;
    let meta = file.metadata();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        bail!(
            InvalidArgument,
            "{} is not a saved Qwen3 KV cache",
            path.display()
        );
    }
    let theirs = meta.get("model").map(String::as_str).unwrap_or("");
    let ours = model.identity()?;
    if theirs != ours {
        bail!(
            IncompatibleCache,
            "{} was computed by another model ({theirs}), not this one ({ours})",
            path.display()
        );
    }
    let tokens: Vec<u32> = meta
        .get("tokens")
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| {
            crate::Error::InvalidArgument(format!("{}: no token ids in its metadata", path.display()))
        })?;
    let capacity = capacity.unwrap_or(tokens.len() as i32 + 2048);
    if capacity < tokens.len() as i32 {
        bail!(
            CacheOverflow,
            "{} holds {} tokens, more than a cache of {capacity}",
            path.display(),
            tokens.len()
        );
    }
    let mut cache = model.new_cache(1, capacity)?;
    for layer in 0..model.layers.len() {
        let keys = file.load(&format!("layers.{layer}.keys"))?;
        let values = file.load(&format!("layers.{layer}.values"))?;
        if keys.shape() != values.shape()
            || keys.dim(2)? as usize != tokens.len()
            || keys.dtype() != model.dtype
        {
            bail!(
                IncompatibleCache,
                "{}: layer {layer} holds {:?} {} keys, not {} tokens of {}",
                path.display(),
                keys.shape(),
                keys.dtype().name(),
                tokens.len(),
                model.dtype.name()
            );
        }
        if !tokens.is_empty() {
            cache.update(layer, &keys, &values)?;
        }
    }
    mlx::eval(&cache.arrays())?;
    Ok((cache, tokens))
}
