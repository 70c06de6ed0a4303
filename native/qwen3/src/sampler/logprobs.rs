//! Log-probabilities of the tokens taken, from the model's own distribution: the log-softmax
//! of the raw logits the sampler was given (before penalties and temperature), as OpenAI's
//! API reports them. Computed on the host in f64 from the evaluated last-position logits.

use super::last_logits;
use crate::error::{bail, Result};
use mlx::{Array, Dtype};

/// One row's answer: the taken token's log-probability and the `top` most likely tokens
/// (id, log-probability), most likely first, ties by id.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprobs {
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// For each row of `logits` (`[B, V]` or `[B, L, V]`), the log-probability of `tokens[row]`
/// and the row's `top` alternatives (at most 20, as OpenAI allows).
pub fn logprobs(logits: &Array, tokens: &[u32], top: usize) -> Result<Vec<TokenLogprobs>> {
    let logits = last_logits(logits)?.astype(Dtype::Float32)?;
    let shape = logits.shape();
    let (rows, vocab) = (shape[0] as usize, shape[1] as usize);
    if tokens.len() != rows || tokens.iter().any(|&t| t as usize >= vocab) || top > 20 {
        bail!(
            InvalidArgument,
            "logprobs of {} tokens (each < {vocab}, top ≤ 20) for {rows} rows",
            tokens.len()
        );
    }
    let values = logits.to_vec::<f32>()?;
    Ok(values
        .chunks(vocab)
        .zip(tokens)
        .map(|(row, &token)| row_logprobs(row, token, top))
        .collect())
}

fn row_logprobs(row: &[f32], token: u32, top: usize) -> TokenLogprobs {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_total = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
    let lp = |id: usize| (row[id] as f64 - log_total) as f32;
    // Most likely first, ties by id: only the first `top` are sorted.
    let by_score = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
    let mut ids: Vec<usize> = (0..row.len()).collect();
    if top > 0 && top < ids.len() {
        ids.select_nth_unstable_by(top - 1, by_score);
        ids.truncate(top);
    }
    ids.truncate(top);
    ids.sort_unstable_by(by_score);
    TokenLogprobs {
        logprob: lp(token as usize),
        top: ids.into_iter().map(|id| (id as u32, lp(id))).collect(),
    }
}
