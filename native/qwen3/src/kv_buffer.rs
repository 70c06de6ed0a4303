//! One layer's keys or values, `[B, N_kv, T_max, D]` by slot: as computed (float), as
//! float16 (16 "bits": half of a float32 cache's bytes, as llama.cpp keeps its cache), or
//! quantized along D as mlx-lm's QuantizedKVCache keeps them (affine: packed uint32, a scale
//! and a bias per group), which takes 8/16 (8-bit) or 5/16 (4-bit, groups of 64) of bf16's
//! bytes. Attention reads a float16 or quantized buffer widened, one layer at a time (the
//! CPU's layer node reads float16 where it lies).
//!
//! A buffer holds `KV_STEP` slots at first and grows by whole steps as it is written, up to
//! the cache's capacity (as mlx-lm's caches grow): MLX's CPU allocator keeps no freed
//! buffers, so a cache allocated whole was zero-filled page by page on every request
//! (0.6B, 2,048 slots: 470 MB, 0.3–1.2 s of page faults on a VM).

use crate::error::{bail, Result};
use mlx::fast::{dequantize_kv, quantize};
use mlx::{concatenate, Array, Dtype};

/// Slots a buffer starts with and grows by.
pub const KV_STEP: i32 = 256;

/// How a KV cache stores its values: `bits` 4 or 8 (quantized in groups of `group_size`
/// along D), or 16 (float16; the group is not used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuant {
    pub bits: i32,
    pub group_size: i32,
}

pub enum KvBuffer {
    Plain(Array),
    /// float16 values of a cache computed in `compute`.
    Half {
        data: Array,
        compute: Dtype,
    },
    Packed {
        data: Array,
        scales: Array,
        biases: Array,
        quant: KvQuant,
    },
}

impl KvBuffer {
    /// A buffer for `shape` (`[B, H, T_max, D]`), holding `min(T_max, KV_STEP)` slots yet.
    pub fn new(shape: [i32; 4], dtype: Dtype, quant: Option<KvQuant>) -> Result<KvBuffer> {
        let shape = [shape[0], shape[1], shape[2].min(KV_STEP), shape[3]];
        let Some(q) = quant else {
            return Ok(KvBuffer::Plain(Array::zeros(&shape, dtype)?));
        };
        if q.bits == 16 {
            return Ok(KvBuffer::Half {
                data: Array::zeros(&shape, Dtype::Float16)?,
                compute: dtype,
            });
        }
        let [b, h, t, d] = shape;
        if ![4, 8].contains(&q.bits) || ![32, 64, 128].contains(&q.group_size) || d % q.group_size != 0 {
            bail!(
                InvalidArgument,
                "a KV cache stores 16 bits (float16), or 4 or 8 in groups of 32, 64 or 128 that divide head_dim {d}, not {} bits in groups of {}",
                q.bits,
                q.group_size
            );
        }
        Ok(KvBuffer::Packed {
            data: Array::zeros(&[b, h, t, d * q.bits / 32], Dtype::Uint32)?,
            scales: Array::zeros(&[b, h, t, d / q.group_size], dtype)?,
            biases: Array::zeros(&[b, h, t, d / q.group_size], dtype)?,
            quant: q,
        })
    }

    /// Whether `other` stores its values as this buffer does (float, float16, or quantized
    /// with the same bits and groups).
    fn stores_like(&self, other: &KvBuffer) -> bool {
        match (self, other) {
            (KvBuffer::Plain(_), KvBuffer::Plain(_)) | (KvBuffer::Half { .. }, KvBuffer::Half { .. }) => true,
            (KvBuffer::Packed { quant: a, .. }, KvBuffer::Packed { quant: b, .. }) => a == b,
            _ => false,
        }
    }

    /// The one array of values by slot (a float or float16 buffer), unless quantized.
    pub fn whole(&self) -> Option<&Array> {
        match self {
            KvBuffer::Plain(a) | KvBuffer::Half { data: a, .. } => Some(a),
            KvBuffer::Packed { .. } => None,
        }
    }

    /// The same kind of buffer holding `a` (what [`KvBuffer::whole`] gave, written).
    pub fn with_whole(&self, a: Array) -> KvBuffer {
        match self {
            KvBuffer::Half { compute, .. } => KvBuffer::Half {
                data: a,
                compute: *compute,
            },
            _ => KvBuffer::Plain(a),
        }
    }

    /// Slots allocated so far.
    pub fn slots(&self) -> i32 {
        self.arrays()[0].dim(2).unwrap_or(0)
    }

    /// Grows the buffer (by whole `KV_STEP`s, to at most `max` slots) until it has `slots`.
    pub fn reserve(&mut self, slots: i32, max: i32) -> Result<()> {
        let have = self.slots();
        if slots <= have {
            return Ok(());
        }
        let want = ((slots + KV_STEP - 1) / KV_STEP * KV_STEP).min(max).max(slots);
        for buffer in self.arrays_mut() {
            let more = Array::zeros(
                &[buffer.dim(0)?, buffer.dim(1)?, want - have, buffer.dim(3)?],
                buffer.dtype(),
            )?;
            *buffer = concatenate(&[buffer, &more], 2)?;
        }
        Ok(())
    }

    /// Every array the buffer holds.
    pub fn arrays(&self) -> Vec<&Array> {
        match self {
            KvBuffer::Plain(a) | KvBuffer::Half { data: a, .. } => vec![a],
            KvBuffer::Packed {
                data, scales, biases, ..
            } => vec![data, scales, biases],
        }
    }

    fn arrays_mut(&mut self) -> Vec<&mut Array> {
        match self {
            KvBuffer::Plain(a) | KvBuffer::Half { data: a, .. } => vec![a],
            KvBuffer::Packed {
                data, scales, biases, ..
            } => vec![data, scales, biases],
        }
    }

    /// Writes `x` (`[B, H, L, D]`, float) at slots `at..at + L`.
    pub fn write(&mut self, x: &Array, at: i32) -> Result<()> {
        let parts = match self {
            KvBuffer::Plain(_) => vec![x.clone()],
            KvBuffer::Half { .. } => vec![x.astype(Dtype::Float16)?],
            KvBuffer::Packed { quant: q, .. } => quantize(x, q.group_size, q.bits)?,
        };
        for (buffer, part) in self.arrays_mut().into_iter().zip(&parts) {
            *buffer = put(buffer, part, at)?;
        }
        Ok(())
    }

    /// Slots `..upto` as float `[B, H, upto, D]` (widened from float16, dequantized from a
    /// packed buffer).
    pub fn read(&self, upto: i32) -> Result<Array> {
        match self {
            KvBuffer::Plain(a) => slots(a, 0, upto),
            KvBuffer::Half { data, compute, .. } => Ok(slots(data, 0, upto)?.astype(*compute)?),
            KvBuffer::Packed {
                data,
                scales,
                biases,
                quant,
            } => Ok(dequantize_kv(
                &slots(data, 0, upto)?,
                &slots(scales, 0, upto)?,
                &slots(biases, 0, upto)?,
                quant.group_size,
                quant.bits,
            )?),
        }
    }

    /// Moves slots `from..from + len` to `to..` (a window dropping its oldest tokens).
    pub fn move_slots(&mut self, from: i32, to: i32, len: i32) -> Result<()> {
        for buffer in self.arrays_mut() {
            *buffer = put(buffer, &slots(buffer, from, from + len)?, to)?;
        }
        Ok(())
    }

    /// Copies `src`'s slots `..len` into this buffer's (same layout).
    pub fn copy_from(&mut self, src: &KvBuffer, len: i32) -> Result<()> {
        if !self.stores_like(src) {
            bail!(
                IncompatibleCache,
                "the caches store their keys and values differently"
            );
        }
        for (buffer, from) in self.arrays_mut().into_iter().zip(src.arrays()) {
            *buffer = put(buffer, &slots(from, 0, len)?, 0)?;
        }
        Ok(())
    }
}

/// Slots `from..to` of a `[B, H, T, ·]` array.
fn slots(a: &Array, from: i32, to: i32) -> Result<Array> {
    Ok(a.slice(&[0, 0, from, 0], &[a.dim(0)?, a.dim(1)?, to, a.dim(3)?])?)
}

/// `a` with `update` written at slot `at`; the buffer is donated to MLX, which then writes
/// in place.
fn put(a: &Array, update: &Array, at: i32) -> Result<Array> {
    let len = update.dim(2)?;
    if len == 0 {
        return Ok(a.clone());
    }
    let stop = [a.dim(0)?, a.dim(1)?, at + len, a.dim(3)?];
    Ok(a.slice_update(update, &[0, 0, at, 0], &stop)?)
}
