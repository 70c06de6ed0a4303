//! Choosing the next token from logits (`[B, L, V]` or `[B, V]`; the last position is used).

use crate::error::{bail, Result};
use mlx::{Array, Reduce};

/// The last position's logits as `[B, V]`.
pub fn last_logits(logits: &Array) -> Result<Array> {
    let shape = logits.shape();
    match shape.len() {
        2 => Ok(logits.clone()),
        3 => Ok(logits
            .slice(&[0, shape[1] - 1, 0], &shape)?
            .reshape(&[shape[0], shape[2]])?),
        _ => bail!(
            InvalidArgument,
            "logits must be [B, V] or [B, L, V], got {shape:?}"
        ),
    }
}

/// Highest-scoring token per row: `[B]` uint32 (lazy).
pub fn greedy(logits: &Array) -> Result<Array> {
    Ok(last_logits(logits)?.reduce(Reduce::Argmax, -1, false)?)
}
