//! A KV cache stored as float16 (`KvQuant { bits: 16, .. }`, `kv_bits: 16`) against the
//! float32 cache on the same quantized fixtures, through the CPU's layer node and op by op
//! (a 12-token prompt, then steps of one token; the dense fixture goes op by op): each key
//! and value is rounded to 11 significant bits (relative error ≤ 2⁻¹², 2.4e-4), which moved
//! the logits by at most 0.06% of the largest |logit| here (measured 4.8e-3 to 7.9e-3 of
//! 10–15): bound 0.2%. The greedy tokens of 24 steps must be the same.

mod common;
use common::*;
use mlx::Array;
use qwen3::kv_buffer::KvQuant;
use qwen3::{sampler, KvCache, Model};

const HALF: Option<KvQuant> = Some(KvQuant {
    bits: 16,
    group_size: 64,
});

/// Logits of a 12-token prompt and 24 greedy steps, and the tokens chosen.
fn generate(model: &Model, kv: Option<KvQuant>) -> qwen3::Result<(Vec<f32>, Vec<u32>)> {
    let mut cache: KvCache = model.new_cache_quantized(1, 64, kv)?;
    let prompt = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8];
    let mut logits = model.forward(&ids(&prompt)?, &mut cache, true)?;
    let (mut all, mut tokens) = (vec![], vec![]);
    for _ in 0..24 {
        all.extend(f32s(&logits)?);
        let token = sampler::greedy(&logits)?.to_vec::<u32>()?[0];
        tokens.push(token);
        logits = model.forward(&Array::from_slice(&[token], &[1, 1])?, &mut cache, true)?;
    }
    Ok((all, tokens))
}

#[test]
fn a_float16_cache_keeps_the_float32_caches_logits_close_and_its_tokens() {
    for variant in ["q4-g64-tied", "q8-g128-untied", "dense-f32-tied"] {
        let ((half, half_tokens), (full, full_tokens)) = on_device(move || {
            let model = load(variant, None)?;
            Ok((generate(&model, HALF)?, generate(&model, None)?))
        });
        let scale = full.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(&half, &full);
        assert!(
            diff <= 0.002 * scale,
            "{variant}: max |Δlogit| {diff:e} > 0.2% of {scale}"
        );
        assert_eq!(half_tokens, full_tokens, "{variant}");
    }
}
