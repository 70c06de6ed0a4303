//! The sampling filters as lazy MLX operations on `[B, V]` float32 logits.
//! A filtered-out token gets `-inf`, so softmax and categorical ignore it.

use super::SamplerSpec;
use crate::error::Result;
use mlx::{concatenate, Array, Binary, Dtype, Reduce, Unary};

fn scalar(x: f32) -> Result<Array> {
    Ok(Array::scalar(x)?)
}

/// Logits after the penalties, temperature, top-k, top-p and min-p (`recent`: `[B, n]`
/// token ids; `counts`: `[B, V]` how often each was generated).
pub fn filtered_logits(
    spec: &SamplerSpec,
    logits: &Array,
    recent: Option<&Array>,
    counts: Option<&Array>,
) -> Result<Array> {
    let mut x = logits.clone();
    if let Some(recent) = recent.filter(|_| spec.repetition_penalty != 1.0) {
        x = repetition_penalty(&x, recent, spec.repetition_penalty)?;
    }
    if let Some(counts) = counts.filter(|_| spec.counts_tokens()) {
        x = count_penalties(&x, counts, spec.presence_penalty, spec.frequency_penalty)?;
    }
    if spec.is_greedy() {
        return Ok(x);
    }
    if spec.temperature != 1.0 {
        x = x.multiply(&scalar(1.0 / spec.temperature)?)?;
    }
    let vocab = x.dim(-1)?;
    if spec.top_k > 0 && (spec.top_k as i32) < vocab {
        x = top_k(&x, spec.top_k as i32)?;
    }
    if spec.top_p < 1.0 {
        x = top_p(&x, spec.top_p)?;
    }
    if spec.min_p > 0.0 {
        x = min_p(&x, spec.min_p)?;
    }
    Ok(x)
}

/// Seen tokens: negative logits are multiplied by the penalty, positive ones divided.
fn repetition_penalty(x: &Array, recent: &Array, penalty: f32) -> Result<Array> {
    let seen = x.take_along_axis(recent, -1)?;
    let negative = seen.binary(Binary::Less, &scalar(0.0)?)?;
    let penalised = Array::select(
        &negative,
        &seen.multiply(&scalar(penalty)?)?,
        &seen.binary(Binary::Divide, &scalar(penalty)?)?,
    )?;
    Ok(x.put_along_axis(recent, &penalised, -1)?)
}

/// OpenAI's: `frequency` per time a token was generated, `presence` once if it was.
fn count_penalties(x: &Array, counts: &Array, presence: f32, frequency: f32) -> Result<Array> {
    let seen = counts
        .binary(Binary::Greater, &scalar(0.0)?)?
        .astype(Dtype::Float32)?;
    let penalty = counts
        .multiply(&scalar(frequency)?)?
        .add(&seen.multiply(&scalar(presence)?)?)?;
    Ok(x.binary(Binary::Subtract, &penalty)?)
}

/// `counts` (`[B, V]`) with one more for each row's token in `tokens` (`[B]`).
pub fn count(counts: &Array, tokens: &Array) -> Result<Array> {
    let rows = counts.dim(0)?;
    let tokens = tokens.astype(Dtype::Uint32)?.reshape(&[rows, 1])?;
    let bumped = counts.take_along_axis(&tokens, -1)?.add(&scalar(1.0)?)?;
    Ok(counts.put_along_axis(&tokens, &bumped, -1)?)
}

fn top_k(x: &Array, k: i32) -> Result<Array> {
    let shape = x.shape();
    let (rows, vocab) = (shape[0], shape[1]);
    // After partitioning the negated logits, positions k.. hold the tokens to drop.
    let order = x.unary(Unary::Negative)?.argpartition(k - 1, -1)?;
    let dropped = order.slice(&[0, k], &[rows, vocab])?;
    let minus_inf = Array::full(&[rows, vocab - k], f64::NEG_INFINITY, Dtype::Float32)?;
    Ok(x.put_along_axis(&dropped, &minus_inf, -1)?)
}

/// Nucleus: in ascending order, a token stays when the mass up to and including it exceeds
/// `1 - p` (equivalently: the mass of the more likely tokens is below `p`). On the CPU one
/// fused node selects the nucleus without sorting the vocabulary.
fn top_p(x: &Array, p: f32) -> Result<Array> {
    if let Some(filtered) = mlx::fast::top_p_filter(x, p)? {
        return Ok(filtered);
    }
    let order = x.argsort(-1)?;
    let sorted = x.take_along_axis(&order, -1)?;
    let mass = sorted.unary(Unary::Softmax)?.cumsum(-1, false, true)?;
    let keep = mass.binary(Binary::Greater, &scalar(1.0 - p)?)?;
    let kept = Array::select(&keep, &sorted, &scalar(f32::NEG_INFINITY)?)?;
    Ok(x.put_along_axis(&order, &kept, -1)?)
}

/// Keeps tokens with probability >= `min_p` × the largest; compared in log space.
fn min_p(x: &Array, min_p: f32) -> Result<Array> {
    let max = x.reduce(Reduce::Max, -1, true)?;
    let keep = x
        .binary(Binary::Subtract, &max)?
        .binary(Binary::GreaterEqual, &scalar(min_p.ln())?)?;
    Ok(Array::select(&keep, x, &scalar(f32::NEG_INFINITY)?)?)
}

/// `history` with `tokens` (`[B]`) appended, keeping the last `context` per row.
pub fn push_history(history: &Array, tokens: &Array, context: usize) -> Result<Array> {
    let shape = history.shape();
    let (rows, n) = (shape[0], shape[1]);
    let keep_from = (n + 1 - context as i32).max(0);
    let kept = history.slice(&[0, keep_from], &[rows, n])?;
    let tokens = tokens.astype(history.dtype())?.reshape(&[rows, 1])?;
    Ok(concatenate(&[&kept, &tokens], 1)?)
}
