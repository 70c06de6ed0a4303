//! Shared helpers: the fixture directory and running closures on the CPU worker.
#![allow(dead_code)]

use mlx::{Array, Device, Dtype, Worker};
use qwen3::{KvCache, LoadOptions, Model};
use std::path::PathBuf;

/// Built by `scripts/setup_fixtures.sh` (run by `make test`); the path comes in `QWEN3_FIXTURES`.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var("QWEN3_FIXTURES").expect(
        "QWEN3_FIXTURES is not set: run `make test` or `export QWEN3_FIXTURES=$(scripts/setup_fixtures.sh)`",
    );
    PathBuf::from(dir)
}

pub fn on_cpu<T: Send + 'static>(f: impl FnOnce() -> qwen3::Result<T> + Send + 'static) -> T {
    Worker::for_device(Device::Cpu)
        .unwrap()
        .run(move || f().map_err(|e| mlx::Error::Mlx(format!("{}: {e}", e.kind()))))
        .unwrap()
}

pub fn load(variant: &str, dtype: Option<Dtype>) -> qwen3::Result<Model> {
    let opts = LoadOptions {
        dtype,
        ..LoadOptions::default()
    };
    Model::load(fixtures().join(variant), Device::Cpu, opts, |_| {})
}

pub fn ids(tokens: &[u32]) -> qwen3::Result<Array> {
    Ok(Array::from_slice(tokens, &[1, tokens.len() as i32])?)
}

pub fn f32s(a: &Array) -> qwen3::Result<Vec<f32>> {
    Ok(a.astype(Dtype::Float32)?.to_vec::<f32>()?)
}

/// Greedy continuation of `prompt` with the KV cache.
pub fn greedy(model: &Model, prompt: &[u32], steps: usize) -> qwen3::Result<Vec<u32>> {
    let mut cache: KvCache = model.new_cache(1, (prompt.len() + steps) as i32)?;
    let mut logits = model.forward(&ids(prompt)?, &mut cache, true)?;
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let tok = qwen3::sampler::greedy(&logits)?.to_vec::<u32>()?[0];
        out.push(tok);
        logits = model.forward(&ids(&[tok])?, &mut cache, true)?;
    }
    Ok(out)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
