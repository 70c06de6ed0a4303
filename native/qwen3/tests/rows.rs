//! Continuous batching primitives: `Model::forward_rows` (rows with one cache each, at
//! different offsets) and `sampler::sample_rows` must give what each row gets on its own.
//! Tolerance 1e-4 absolute on float32 logits (batched vs one-row matrix products round
//! differently; the measured gap is ≈1.5e-5).

mod common;
use common::*;
use mlx::{Array, Dtype};
use qwen3::sampler::{sample_rows, Placement, Sampler, SamplerSpec};
use qwen3::{KvCache, Model};

const TOL: f32 = 1e-4;
const PROMPTS: [&[u32]; 3] = [&[5, 9, 2], &[17, 3, 3, 8, 40, 11, 2], &[1, 2, 3, 4, 5]];

/// One one-row cache per prompt, prefilled on its own.
fn prefilled(model: &Model) -> qwen3::Result<Vec<KvCache>> {
    PROMPTS
        .iter()
        .map(|p| {
            let mut cache = model.new_cache(1, 32)?;
            model.forward(&ids(p)?, &mut cache, true)?.eval()?;
            Ok(cache)
        })
        .collect()
}

#[test]
fn rows_at_different_offsets_match_one_row_steps() {
    for variant in ["dense-f32-tied", "moe-q4-g64", "moe-f32-step2-tied"] {
        rows_match_one_row_steps(variant);
    }
}

fn rows_match_one_row_steps(variant: &'static str) {
    let worst = on_device(move || {
        let model = load(variant, None)?;
        let mut alone = prefilled(&model)?;
        let mut batched = prefilled(&model)?;
        let mut worst = 0.0f32;
        for step in 0..4u32 {
            let tokens: Vec<u32> = (0..PROMPTS.len() as u32).map(|r| 7 * r + step + 1).collect();
            let mut rows: Vec<&mut KvCache> = batched.iter_mut().collect();
            let ids_b = Array::from_slice(&tokens, &[tokens.len() as i32, 1])?;
            let together = f32s(&model.forward_rows(&ids_b, &mut rows, true)?)?;
            let vocab = together.len() / tokens.len();
            for (r, cache) in alone.iter_mut().enumerate() {
                let own = f32s(&model.forward(&ids(&[tokens[r]])?, cache, true)?)?;
                worst = worst.max(max_abs_diff(&own, &together[r * vocab..(r + 1) * vocab]));
            }
        }
        for (a, b) in alone.iter().zip(&batched) {
            assert_eq!(a.offset(), b.offset());
        }
        Ok(worst)
    });
    assert!(
        worst <= TOL,
        "{variant}: batched rows differ from one-row steps by {worst}"
    );
}

#[test]
fn rows_reject_shared_shapes_they_cannot_hold() {
    let errors = on_device(|| {
        let model = load("dense-f32-tied", None)?;
        let mut two_row = model.new_cache(2, 8)?;
        let mut small = model.new_cache(1, 2)?;
        let mut fine = model.new_cache(1, 8)?;
        let one = Array::from_slice(&[1u32], &[1, 1])?;
        let three = Array::from_slice(&[1u32, 2, 3], &[1, 3])?;
        let pair = Array::from_slice(&[1u32, 2], &[2, 1])?;
        let kinds = [
            model.forward_rows(&one, &mut [&mut two_row], true),
            model.forward_rows(&three, &mut [&mut small], true),
            model.forward_rows(&pair, &mut [&mut fine], true),
        ]
        .map(|r| r.err().map(|e| e.kind()));
        // Nothing was written by the failed calls.
        Ok((kinds, small.offset(), fine.offset()))
    });
    let (kinds, small_offset, fine_offset) = errors;
    assert_eq!(
        kinds,
        [
            Some("invalid_argument"),
            Some("cache_overflow"),
            Some("invalid_argument")
        ]
    );
    assert_eq!((small_offset, fine_offset), (0, 0));
}

#[test]
fn each_row_keeps_its_own_sampler() {
    let (together, alone) = on_device(|| {
        let specs = [
            SamplerSpec::default(),
            SamplerSpec {
                temperature: 0.8,
                top_p: 0.9,
                seed: 7,
                ..SamplerSpec::default()
            },
            SamplerSpec {
                temperature: 1.0,
                top_k: 5,
                placement: Placement::Host,
                seed: 11,
                ..SamplerSpec::default()
            },
        ];
        let history = [vec![1u32, 2]];
        let logits: Vec<f32> = (0..3 * 64).map(|i| ((i * 37 % 101) as f32).sin() * 3.0).collect();
        let logits = Array::from_slice(&logits, &[3, 64])?.astype(Dtype::Float32)?;
        let mut batch: Vec<Sampler> = specs
            .iter()
            .map(|s| Sampler::new(s.clone(), &history))
            .collect::<qwen3::Result<_>>()?;
        let mut single: Vec<Sampler> = specs
            .iter()
            .map(|s| Sampler::new(s.clone(), &history))
            .collect::<qwen3::Result<_>>()?;
        let (mut together, mut alone) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let mut rows: Vec<&mut Sampler> = batch.iter_mut().collect();
            together.push(sample_rows(&mut rows, &logits)?.to_vec::<u32>()?);
            let mut each = Vec::new();
            for (r, s) in single.iter_mut().enumerate() {
                let row = logits.slice(&[r as i32, 0], &[r as i32 + 1, 64])?;
                each.push(s.sample(&row)?.to_vec::<u32>()?[0]);
            }
            alone.push(each);
        }
        Ok((together, alone))
    });
    assert_eq!(together, alone);
    // The sampled rows really sample: five draws are not all the same token.
    assert!(
        together
            .iter()
            .map(|t| t[1])
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
    );
}
