//! Shared helpers: the fixture directory and running closures on the test device's worker.
#![allow(dead_code)]

use mlx::{Array, Device, Dtype, Worker};
use qwen3::linear::Matrix;
use qwen3::{KvCache, LoadOptions, Model, Storage};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Built by `scripts/setup_fixtures.sh` (run by `make test`); the path comes in `QWEN3_FIXTURES`.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var("QWEN3_FIXTURES").expect(
        "QWEN3_FIXTURES is not set: run `make test` or `export QWEN3_FIXTURES=$(scripts/setup_fixtures.sh)`",
    );
    PathBuf::from(dir)
}

/// The device the model tests run on: the CPU, or `QWEN3_TEST_DEVICE=gpu` (Metal or CUDA;
/// scripts/device_check.sh runs the parity suite so, against mlx-lm on the same GPU).
pub fn test_device() -> Device {
    match std::env::var("QWEN3_TEST_DEVICE") {
        Ok(name) => {
            Device::from_name(&name).unwrap_or_else(|| panic!("QWEN3_TEST_DEVICE={name}: cpu or gpu"))
        }
        Err(_) => Device::Cpu,
    }
}

pub fn on_device<T: Send + 'static>(f: impl FnOnce() -> qwen3::Result<T> + Send + 'static) -> T {
    Worker::for_device(test_device())
        .unwrap()
        .run(move || f().map_err(|e| mlx::Error::Mlx(format!("{}: {e}", e.kind()))))
        .unwrap()
}

pub fn load(variant: &str, dtype: Option<Dtype>) -> qwen3::Result<Model> {
    load_as(variant, dtype, None)
}

/// With the weights held as `storage` says (None: the default, as stored).
pub fn load_as(variant: &str, dtype: Option<Dtype>, storage: Option<Storage>) -> qwen3::Result<Model> {
    let opts = LoadOptions {
        dtype,
        storage,
        ..LoadOptions::default()
    };
    Model::load(fixtures().join(variant), test_device(), opts, |_| {})
}

/// A golden file of little-endian float32 values.
pub fn read_f32s(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// A golden file of whitespace-separated token ids.
pub fn read_tokens(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap()
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect()
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

/// A dense float32 matrix's values, row-major.
pub fn weights(m: &Matrix) -> Vec<f32> {
    match m {
        Matrix::Dense(w) => w.to_vec::<f32>().unwrap(),
        Matrix::Quantized { .. } => panic!("reference weights must be dense"),
    }
}

#[path = "../../mlx/tests/common/diff.rs"]
mod diff;
#[allow(unused_imports)] // not every test uses it
pub use diff::max_abs_diff;

/// The first `*.safetensors` file of a checkpoint directory.
pub fn first_weights_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    files.remove(0)
}

/// A safetensors file's JSON header, and the data after it.
pub fn read_header(path: &Path) -> (BTreeMap<String, Value>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&bytes[8..8 + n]).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

pub fn write_header(path: &Path, header: &BTreeMap<String, Value>, data: &[u8]) {
    let text = serde_json::to_vec(header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

pub fn tensor_names(header: &BTreeMap<String, Value>) -> Vec<String> {
    header.keys().filter(|k| *k != "__metadata__").cloned().collect()
}

/// Copies a checkpoint directory's files into a fresh `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}
