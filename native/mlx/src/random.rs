//! Random numbers from explicit keys, so each request owns a reproducible stream.

use crate::array::{wrap, Array};
use crate::dtype::Dtype;
use crate::error::Result;
use crate::ffi::bridge;
use crate::ops::unpack;

pub fn key(seed: u64) -> Result<Array> {
    wrap(bridge::random_key(seed))
}

/// Splits a key into two independent keys.
pub fn split(key: &Array) -> Result<(Array, Array)> {
    let mut v = unpack(bridge::random_split(&key.raw))?;
    let b = v.pop().expect("split returns two keys");
    let a = v.pop().expect("split returns two keys");
    Ok((a, b))
}

/// Samples indices from unnormalised log-probabilities along `axis`.
pub fn categorical(logits: &Array, axis: i32, key: &Array) -> Result<Array> {
    wrap(bridge::random_categorical(&logits.raw, axis, &key.raw))
}

pub fn uniform(shape: &[i32], dtype: Dtype, key: &Array) -> Result<Array> {
    wrap(bridge::random_uniform(shape, dtype as u8, &key.raw))
}
