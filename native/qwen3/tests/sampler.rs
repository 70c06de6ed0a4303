//! The samplers: the in-graph filters against the independent host implementation, the
//! sampled frequencies against the filtered distribution, seeding, and invalid specs.

mod common;

use common::on_device;
use mlx::Array;
use qwen3::sampler::{graph_filtered_logits, host_filtered_logits, Placement, Sampler, SamplerSpec};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

fn random_logits(rows: usize, vocab: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows * vocab)
        .map(|_| (rng.next_u32() as f32 / u32::MAX as f32) * 8.0 - 4.0)
        .collect()
}

fn spec(temperature: f32, top_k: usize, top_p: f32, min_p: f32, penalty: f32) -> SamplerSpec {
    SamplerSpec {
        temperature,
        top_k,
        top_p,
        min_p,
        repetition_penalty: penalty,
        ..SamplerSpec::default()
    }
}

fn specs() -> Vec<SamplerSpec> {
    vec![
        spec(1.0, 0, 1.0, 0.0, 1.0),
        spec(0.7, 0, 0.9, 0.0, 1.0),
        spec(1.3, 10, 1.0, 0.0, 1.0),
        spec(0.8, 0, 1.0, 0.05, 1.0),
        spec(0.6, 20, 0.8, 0.02, 1.3),
        spec(0.0, 0, 1.0, 0.0, 1.5),
        SamplerSpec {
            presence_penalty: 0.7,
            frequency_penalty: 0.4,
            ..spec(0.9, 0, 0.95, 0.0, 1.0)
        },
        SamplerSpec {
            frequency_penalty: -1.5,
            ..spec(0.0, 0, 1.0, 0.0, 1.2)
        },
    ]
}

/// Generated-token counts for the presence and frequency penalties: as the host takes them
/// and as the `[rows, vocab]` array the graph does.
fn counts(rows: usize, vocab: usize) -> (HashMap<u32, u32>, Vec<f32>) {
    let counts = HashMap::from([(5, 1), (17, 2), (40, 3), (2, 1)]);
    let mut dense = vec![0.0f32; rows * vocab];
    for r in 0..rows {
        for (&t, &n) in &counts {
            dense[r * vocab + t as usize] = n as f32;
        }
    }
    (counts, dense)
}

/// The graph filters (with the fused CPU kernels, and as MLX graphs) against the host's on
/// `rows` × `vocab` random logits: the same tokens kept, kept values within 1e-5.
fn check_graph_against_host(specs: &[SamplerSpec], rows: usize, vocab: usize) {
    let specs = specs.to_vec();
    on_device(move || {
        let recent: Vec<u32> = vec![5, 17, 17, 40, 96, 2];
        let (counted, dense) = counts(rows, vocab);
        for (i, spec) in specs.iter().enumerate() {
            let logits = random_logits(rows, vocab, i as u64);
            let mut host = logits.clone();
            for row in host.chunks_mut(vocab) {
                host_filtered_logits(spec, row, &recent, &counted);
            }
            let kept = host.iter().filter(|v| v.is_finite()).count();
            assert!(kept >= rows, "{spec:?} keeps at least one token per row");
            if spec.top_k > 0 || spec.top_p < 1.0 || spec.min_p > 0.0 {
                assert!(kept < rows * vocab, "{spec:?} drops something");
            }
            for fused in [true, false] {
                let was = mlx::fast::set_fused_cpu_kernels(fused);
                let x = Array::from_slice(&logits, &[rows as i32, vocab as i32])?;
                let hist: Vec<u32> = (0..rows).flat_map(|_| recent.iter().copied()).collect();
                let hist = Array::from_slice(&hist, &[rows as i32, recent.len() as i32])?;
                let generated = Array::from_slice(&dense, &[rows as i32, vocab as i32])?;
                let graph = graph_filtered_logits(spec, &x, Some(&hist), Some(&generated))?.to_vec::<f32>();
                mlx::fast::set_fused_cpu_kernels(was);
                for (j, (g, h)) in graph?.iter().zip(&host).enumerate() {
                    assert_eq!(
                        g.is_finite(),
                        h.is_finite(),
                        "{spec:?} (fused {fused}): token {j} kept differently"
                    );
                    if h.is_finite() {
                        assert!(
                            (g - h).abs() <= 1e-5 * h.abs().max(1.0),
                            "{spec:?} (fused {fused}): {g} vs {h} at {j}"
                        );
                    }
                }
            }
        }
        Ok(())
    });
}

#[test]
fn graph_filters_match_the_host_implementation() {
    check_graph_against_host(&specs(), 3, 97);
}

/// A real vocabulary's width: the fused top-p selects its nucleus (≈44,000 tokens of these
/// flat logits at temperature 1, ≈650 at 0.05) in several growing batches.
#[test]
fn top_p_over_a_full_vocabulary_matches_the_host_implementation() {
    check_graph_against_host(
        &[spec(1.0, 0, 0.9, 0.0, 1.0), spec(0.05, 0, 0.5, 0.0, 1.0)],
        2,
        151_936,
    );
}

/// Draws `n` tokens at once (one row each) and compares the frequencies with the filtered
/// distribution: every count within 5 standard deviations, dropped tokens never drawn.
fn check_frequencies(placement: Placement) {
    on_device(move || {
        let base = [2.0f32, 1.5, 1.0, 0.5, 0.0, -1.0, -3.0];
        let vocab = base.len();
        let spec = SamplerSpec {
            placement,
            seed: 7,
            ..spec(0.8, 5, 0.9, 0.0, 1.0)
        };
        let mut expected = base.to_vec();
        host_filtered_logits(&spec, &mut expected, &[], &HashMap::new());
        let probs = qwen3::sampler::host_probabilities(&expected);
        let n: i32 = 4000;
        let logits: Vec<f32> = (0..n).flat_map(|_| base).collect();
        let x = Array::from_slice(&logits, &[n, vocab as i32])?;
        let drawn = Sampler::new(spec, &[])?.sample(&x)?.to_vec::<u32>()?;
        let mut counts = vec![0usize; vocab];
        drawn.iter().for_each(|&t| counts[t as usize] += 1);
        for (t, (&c, &p)) in counts.iter().zip(&probs).enumerate() {
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            let freq = c as f64 / n as f64;
            if p == 0.0 {
                assert_eq!(c, 0, "{placement:?}: dropped token {t} was drawn");
            } else {
                assert!(
                    (freq - p).abs() <= 5.0 * sd,
                    "{placement:?}: token {t} {freq} vs {p}"
                );
            }
        }
        assert!(
            probs.iter().filter(|&&p| p == 0.0).count() >= 2,
            "the filters dropped tokens"
        );
        Ok(())
    });
}

#[test]
fn graph_sampler_frequencies_follow_the_filtered_distribution() {
    check_frequencies(Placement::Graph);
}

#[test]
fn host_sampler_frequencies_follow_the_filtered_distribution() {
    check_frequencies(Placement::Host);
}

fn sequence(placement: Placement, seed: u64, penalty: f32) -> Vec<u32> {
    on_device(move || {
        let vocab = 50;
        let logits = random_logits(1, vocab, 99)
            .iter()
            .map(|v| v * 0.2)
            .collect::<Vec<_>>();
        let x = Array::from_slice(&logits, &[1, vocab as i32])?;
        let spec = SamplerSpec {
            placement,
            seed,
            ..spec(1.0, 0, 1.0, 0.0, penalty)
        };
        let mut sampler = Sampler::new(spec, &[vec![1, 2, 3]])?;
        let mut out = Vec::new();
        for _ in 0..24 {
            out.push(sampler.sample(&x)?.to_vec::<u32>()?[0]);
        }
        Ok(out)
    })
}

#[test]
fn same_seed_same_tokens_other_seed_other_tokens() {
    for placement in [Placement::Graph, Placement::Host] {
        for penalty in [1.0, 1.2] {
            let a = sequence(placement, 42, penalty);
            assert_eq!(
                a,
                sequence(placement, 42, penalty),
                "{placement:?} is reproducible"
            );
            assert_ne!(a, sequence(placement, 43, penalty), "{placement:?} seeds differ");
        }
    }
}

/// Greedy with a frequency penalty: a token's logit drops by the penalty each time it is
/// taken, so on flat-ish logits the argmax moves on after a predictable number of repeats.
#[test]
fn frequency_and_presence_penalties_count_generated_tokens() {
    for placement in [Placement::Graph, Placement::Host] {
        let picks = on_device(move || {
            let x = Array::from_slice(&[3.0f32, 2.5, 1.0], &[1, 3])?;
            let spec = SamplerSpec {
                placement,
                frequency_penalty: 0.3,
                presence_penalty: 0.1,
                ..spec(0.0, 0, 1.0, 0.0, 1.0)
            };
            // The prompt does not count: token 0 stays first despite being in it.
            let mut sampler = Sampler::new(spec, &[vec![0, 0, 0]])?;
            (0..4)
                .map(|_| Ok(sampler.sample(&x)?.to_vec::<u32>()?[0]))
                .collect::<qwen3::Result<Vec<_>>>()
        });
        // 3.0; then 3.0 - 0.4 = 2.6 > 2.5; then 3.0 - 0.7 = 2.3 < 2.5: token 1; then 2.3 vs 2.1.
        assert_eq!(picks, vec![0, 0, 1, 0], "{placement:?}");
    }
}

#[test]
fn greedy_with_penalty_avoids_recent_tokens() {
    for placement in [Placement::Graph, Placement::Host] {
        let picks = on_device(move || {
            let x = Array::from_slice(&[1.0f32, 3.0, 2.5, -1.0], &[1, 4])?;
            let spec = SamplerSpec {
                placement,
                ..spec(0.0, 0, 1.0, 0.0, 1.5)
            };
            let mut sampler = Sampler::new(spec, &[vec![1]])?;
            // 3.0 / 1.5 = 2.0 < 2.5: token 2 wins, then token 2 is penalised too (1.67 < 2.0).
            let first = sampler.sample(&x)?.to_vec::<u32>()?[0];
            let second = sampler.sample(&x)?.to_vec::<u32>()?[0];
            Ok((first, second))
        });
        assert_eq!(picks, (2, 1), "{placement:?}");
    }
}

#[test]
fn invalid_specs_are_rejected() {
    let bad = [
        spec(-0.1, 0, 1.0, 0.0, 1.0),
        spec(f32::NAN, 0, 1.0, 0.0, 1.0),
        spec(1.0, 0, 0.0, 0.0, 1.0),
        spec(1.0, 0, 1.5, 0.0, 1.0),
        spec(1.0, 0, 1.0, 1.0, 1.0),
        spec(1.0, 0, 1.0, -0.5, 1.0),
        spec(1.0, 0, 1.0, 0.0, 0.0),
        spec(1.0, 0, 1.0, 0.0, f32::INFINITY),
        SamplerSpec {
            presence_penalty: 2.5,
            ..spec(1.0, 0, 1.0, 0.0, 1.0)
        },
        SamplerSpec {
            frequency_penalty: f32::NAN,
            ..spec(1.0, 0, 1.0, 0.0, 1.0)
        },
    ];
    for s in bad {
        let err = s.validate().expect_err(&format!("{s:?} must be rejected"));
        assert_eq!(err.kind(), "invalid_argument");
    }
}

#[test]
fn a_spec_takes_the_call_then_generation_config_then_the_defaults() {
    use qwen3::sampler::{SamplerKind, SamplerOptions};
    use qwen3::GenerationConfig;
    let qwen = GenerationConfig {
        temperature: Some(0.6),
        top_p: Some(0.95),
        top_k: Some(20),
        ..GenerationConfig::default()
    };
    let sample = SamplerOptions {
        sampler: Some(SamplerKind::Sample),
        ..SamplerOptions::default()
    };
    let resolve = |asked: &SamplerOptions, gen: &GenerationConfig| SamplerSpec::resolve(asked, gen).unwrap();

    // Unset: the checkpoint's generation config.
    let from_config = resolve(&sample, &qwen);
    assert_eq!(
        (from_config.temperature, from_config.top_p, from_config.top_k),
        (0.6, 0.95, 20)
    );
    // Set in the call: the call wins, setting by setting; 0 turns top-k off.
    let asked = SamplerOptions {
        temperature: Some(1.2),
        top_k: Some(0),
        ..sample.clone()
    };
    let from_call = resolve(&asked, &qwen);
    assert_eq!(
        (from_call.temperature, from_call.top_p, from_call.top_k),
        (1.2, 0.95, 0)
    );
    // Neither: temperature 1 and every filter off.
    let defaults = resolve(&sample, &GenerationConfig::default());
    assert_eq!(
        (
            defaults.temperature,
            defaults.top_p,
            defaults.top_k,
            defaults.min_p
        ),
        (1.0, 1.0, 0, 0.0)
    );
    assert_eq!(defaults.repetition_penalty, 1.0);
    // Greedy unless asked otherwise, whatever the config says; the host sampler by name.
    assert!(resolve(&SamplerOptions::default(), &qwen).is_greedy());
    let host = SamplerOptions {
        sampler: Some(SamplerKind::SampleHost),
        ..SamplerOptions::default()
    };
    assert_eq!(resolve(&host, &qwen).placement, Placement::Host);
    assert_eq!(resolve(&host, &qwen).kind(), SamplerKind::SampleHost);
    // A bad value from either source is refused at resolution.
    let hot = SamplerOptions {
        temperature: Some(-1.0),
        ..sample.clone()
    };
    assert!(SamplerSpec::resolve(&hot, &qwen).is_err());
    let broken = GenerationConfig {
        top_p: Some(1.5),
        ..GenerationConfig::default()
    };
    assert!(SamplerSpec::resolve(&sample, &broken).is_err());
}

/// Against a direct f64 log-softmax: the taken token's value and the top alternatives in
/// order; rows are independent; bad requests are refused.
#[test]
fn logprobs_are_the_log_softmax_of_the_raw_logits() {
    let (got, rows, vocab, logits) = on_device(|| {
        let (rows, vocab) = (2, 97);
        let logits = random_logits(rows, vocab, 5);
        let x = Array::from_slice(&logits, &[rows as i32, vocab as i32])?;
        let got = qwen3::sampler::logprobs(&x, &[3, 90], 5)?;
        assert!(qwen3::sampler::logprobs(&x, &[3], 5).is_err());
        assert!(qwen3::sampler::logprobs(&x, &[3, 97], 5).is_err());
        assert!(qwen3::sampler::logprobs(&x, &[3, 4], 21).is_err());
        Ok((got, rows, vocab, logits))
    });
    for r in 0..rows {
        let row: Vec<f64> = logits[r * vocab..(r + 1) * vocab]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let log_z = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        let taken = [3usize, 90][r];
        assert!((got[r].logprob as f64 - (row[taken] - log_z)).abs() < 1e-5);
        let mut order: Vec<usize> = (0..vocab).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let top: Vec<u32> = got[r].top.iter().map(|&(id, _)| id).collect();
        assert_eq!(top, order[..5].iter().map(|&i| i as u32).collect::<Vec<_>>());
        for &(id, lp) in &got[r].top {
            assert!((lp as f64 - (row[id as usize] - log_z)).abs() < 1e-5);
        }
    }
}
