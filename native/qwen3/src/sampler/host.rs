//! The sampling filters in plain Rust over one row of float32 logits. Written independently
//! of the graph version (sorting instead of partition/cumsum) so each checks the other.

use super::SamplerSpec;
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap};

/// Applies the penalties, temperature, top-k, top-p and min-p to `row` in place (dropped →
/// -inf). `counts`: how often each token was generated.
pub fn filtered_logits(spec: &SamplerSpec, row: &mut [f32], recent: &[u32], counts: &HashMap<u32, u32>) {
    if spec.repetition_penalty != 1.0 {
        let vocab = row.len();
        let seen: BTreeSet<usize> = recent
            .iter()
            .map(|&t| t as usize)
            .filter(|&t| t < vocab)
            .collect();
        for id in seen {
            let v = row[id];
            row[id] = if v < 0.0 {
                v * spec.repetition_penalty
            } else {
                v / spec.repetition_penalty
            };
        }
    }
    if spec.counts_tokens() {
        for (&id, &n) in counts {
            if let Some(v) = row.get_mut(id as usize) {
                *v -= spec.frequency_penalty * n as f32 + spec.presence_penalty;
            }
        }
    }
    if spec.is_greedy() {
        return;
    }
    let inv_t = 1.0 / spec.temperature;
    row.iter_mut().for_each(|v| *v *= inv_t);

    // Most likely first, ties by id: a total order, so an unstable sort gives the same.
    let mut by_score: Vec<usize> = Vec::new();
    if spec.top_k > 0 || spec.top_p < 1.0 {
        by_score.extend(0..row.len());
        by_score.sort_unstable_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    }
    if spec.top_k > 0 {
        for &id in by_score.iter().skip(spec.top_k) {
            row[id] = f32::NEG_INFINITY;
        }
    }
    if spec.top_p < 1.0 {
        let probs = softmax(row);
        let mut before = 0.0f64;
        for &id in &by_score {
            if before >= spec.top_p as f64 {
                row[id] = f32::NEG_INFINITY;
            }
            before += probs[id];
        }
    }
    if spec.min_p > 0.0 {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = spec.min_p.ln();
        for v in row.iter_mut().filter(|v| **v - max < floor) {
            *v = f32::NEG_INFINITY;
        }
    }
}

/// Probabilities of a row of logits, in f64.
pub fn softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / total).collect()
}

/// The first index of the largest value.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Draws an index with probability softmax(row) by inverting the cumulative distribution.
pub fn draw(row: &[f32], rng: &mut ChaCha8Rng) -> u32 {
    let probs = softmax(row);
    // 53 random bits: a uniform f64 in [0, 1).
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut acc = 0.0;
    let mut last_possible = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            last_possible = i;
            acc += p;
            if u < acc {
                return i as u32;
            }
        }
    }
    last_possible as u32
}
