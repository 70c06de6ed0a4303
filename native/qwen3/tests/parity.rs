//! The model against mlx-lm on the same checkpoints (golden data from scripts/make_fixtures.py):
//! last-position logits within tolerance and 32 greedy tokens equal, for every variant; in
//! float32 both with the weights as stored (the CPU's packed kernels on packed and bf16/f16
//! weights) and widened at load. With `QWEN3_TEST_DEVICE=gpu` the same checks run on the GPU
//! against golden data that mlx-lm wrote on that GPU (scripts/device_check.sh).

mod common;
use common::*;
use mlx::{Device, Dtype};
use qwen3::Storage;
use serde_json::Value;

/// float32: the stated bound (measured ≤ 2.2e-5 widened: BLAS and the fused CPU kernels
/// sum in another order than MLX; the packed kernels likewise). Half precision runs the same MLX kernels in the same order as
/// mlx-lm (measured: bit-identical).
fn tolerance(compute: &str) -> f32 {
    match compute {
        "float32" => 1e-4,
        _ => 1e-2,
    }
}

fn check_variant(variant: &str) -> Vec<String> {
    let dir = fixtures().join(variant);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden/meta.json")).unwrap()).unwrap();
    let prompts: Vec<Vec<u32>> = serde_json::from_value(meta["prompts"].clone()).unwrap();
    let mut report = vec![];
    let runs = meta["golden"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(compute, golden)| {
            let storages: &[Storage] = match compute.as_str() {
                "float32" => &[Storage::AsStored, Storage::Widened],
                _ => &[Storage::AsStored],
            };
            storages.iter().map(move |&s| (compute, golden, s))
        });
    let on_gpu = test_device() == Device::Gpu;
    for (compute, golden, storage) in runs {
        let dtype = match compute.as_str() {
            "float32" if on_gpu => Some(Dtype::Float32),
            "float32" => None, // the CPU default must be float32
            "bfloat16" => Some(Dtype::Bfloat16),
            "float16" => Some(Dtype::Float16),
            other => panic!("unknown compute {other}"),
        };
        let want_greedy: Vec<u32> = serde_json::from_value(golden["greedy"].clone()).unwrap();
        let want = read_f32s(&dir.join(golden["logits_file"].as_str().unwrap()));
        let (v, variant_name, prompts2) = (want.len() / prompts.len(), variant.to_string(), prompts.clone());
        let steps = want_greedy.len();
        let (got, greedy_tokens, model_dtype, packed) = on_device(move || {
            let model = load_as(&variant_name, dtype, Some(storage))?;
            let mut all = vec![];
            for p in &prompts2 {
                let mut cache = model.new_cache(1, 64)?;
                all.extend(f32s(&model.forward(&ids(p)?, &mut cache, true)?)?);
            }
            let packed = model.holds_packed();
            Ok((all, greedy(&model, &prompts2[0], steps)?, model.dtype, packed))
        });
        if variant.starts_with('q') && compute == "float32" {
            assert_eq!(
                packed,
                storage == Storage::AsStored,
                "{variant}: packed weights as stored, dequantized when widened"
            );
        }
        if dtype.is_none() && !on_gpu {
            assert_eq!(
                model_dtype,
                Dtype::Float32,
                "{variant}: CPU default compute dtype"
            );
        }
        let diff = (0..prompts.len())
            .map(|i| max_abs_diff(&got[i * v..(i + 1) * v], &want[i * v..(i + 1) * v]))
            .fold(0.0, f32::max);
        let equal = greedy_tokens
            .iter()
            .zip(&want_greedy)
            .take_while(|(a, b)| a == b)
            .count();
        let ok = diff <= tolerance(compute) && greedy_tokens == want_greedy;
        report.push(format!(
            "{} {variant:<26} {compute:<9} {:<8} max|Δlogit| = {diff:.3e} (bound {:.0e})  greedy {equal}/{} equal",
            if ok { "ok  " } else { "FAIL" },
            format!("{storage:?}"),
            tolerance(compute),
            want_greedy.len()
        ));
    }
    report
}

#[test]
fn every_variant_matches_mlx_lm() {
    let variants: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("variants.json")).unwrap()).unwrap();
    assert!(variants.len() >= 8);
    // QWEN3_PARITY_ONLY=a,b narrows the run (a GPU's first use of each kernel is slow).
    let only = std::env::var("QWEN3_PARITY_ONLY").ok();
    let variants: Vec<String> = match &only {
        Some(names) => variants
            .into_iter()
            .filter(|v| names.split(',').any(|n| n == v))
            .collect(),
        None => variants,
    };
    assert!(
        !variants.is_empty(),
        "QWEN3_PARITY_ONLY={only:?} names no variant"
    );
    // Every variant runs before the verdict, so one report shows all that differ.
    let report: Vec<String> = variants.iter().flat_map(|v| check_variant(v)).collect();
    for line in &report {
        println!("{line}");
    }
    let failed: Vec<&String> = report.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        failed.is_empty(),
        "{} of {} runs differ from mlx-lm:\n{}",
        failed.len(),
        report.len(),
        failed.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n")
    );
}

/// A cache storing keys and values quantized (8 and 4 bits, groups of 64) against mlx-lm's
/// QuantizedKVCache on the same checkpoint in float32: mlx-lm multiplies by the packed
/// values (`quantized_matmul`), this project dequantizes them for its attention; the same
/// quantized numbers either way, summed in another order. Bound: 1e-4, as float32 above.
#[test]
fn quantized_kv_cache_matches_mlx_lm() {
    let dir = fixtures().join("dense-f32-tied");
    let prompts: Vec<Vec<u32>> = std::fs::read_to_string(dir.join("golden/prompts.txt"))
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    for bits in [8, 4] {
        let want_greedy = read_tokens(&dir.join(format!("golden/kv{bits}-greedy.txt")));
        let want = read_f32s(&dir.join(format!("golden/kv{bits}-logits.f32")));
        let (p, steps) = (prompts.clone(), want_greedy.len());
        let (got, greedy_tokens, quantized_bytes, plain_bytes) = on_device(move || {
            let model = load("dense-f32-tied", Some(Dtype::Float32))?;
            let quant = Some(qwen3::kv_buffer::KvQuant { bits, group_size: 64 });
            let mut all = vec![];
            for prompt in &p {
                let mut cache = model.new_cache_quantized(1, 64, quant)?;
                all.extend(f32s(&model.forward(&ids(prompt)?, &mut cache, true)?)?);
            }
            let mut cache = model.new_cache_quantized(1, 64, quant)?;
            let mut logits = model.forward(&ids(&p[0])?, &mut cache, true)?;
            let mut tokens = vec![];
            for _ in 0..steps {
                tokens.push(qwen3::sampler::greedy(&logits)?.to_vec::<u32>()?[0]);
                logits = model.forward(&ids(&tokens[tokens.len() - 1..])?, &mut cache, true)?;
            }
            let plain = model.new_cache(1, 64)?.nbytes();
            Ok((all, tokens, cache.nbytes(), plain))
        });
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= 1e-4, "{bits}-bit KV: max |Δlogit| {diff}");
        assert_eq!(greedy_tokens, want_greedy, "{bits}-bit KV: greedy tokens");
        // f32 values: 32 bits; packed: `bits` plus a f32 scale and bias per 64 values.
        let ratio = quantized_bytes as f64 / plain_bytes as f64;
        let expected = (bits as f64 + 64.0 / 64.0) / 32.0;
        assert!(
            (ratio - expected).abs() < 1e-6,
            "{bits}-bit KV takes {ratio} of f32's bytes"
        );
    }
}
