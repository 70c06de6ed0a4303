//! Weight matrices, dense or affine-quantized, used as linear layers and embeddings.

use crate::checkpoint::Checkpoint;
use crate::config::QuantParams;
use crate::error::{bail, Result};
use mlx::fast::{dequantize, quantized_matmul};
use mlx::{Array, Dtype};

/// How quantized weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantizedAs {
    /// Kept packed; products use `quantized_matmul` (fast on Metal/CUDA).
    Packed,
    /// Dequantized once at load into the compute dtype (fast on CPU with float32 BLAS).
    Dense,
}

/// A `[rows, cols]` weight (rows = output features, or vocabulary for embeddings).
pub enum Matrix {
    Dense(Array),
    Quantized {
        weight: Array,
        scales: Array,
        biases: Array,
        params: QuantParams,
    },
}

/// Shape/dtype facts about one matrix module, checked before anything is loaded.
#[derive(Debug, Clone)]
pub struct MatrixSpec {
    pub path: String,
    pub rows: i32,
    pub cols: i32,
    pub quant: Option<QuantParams>,
}

impl MatrixSpec {
    /// Checks that `{path}.weight` (and `.scales`/`.biases` when quantized) exist with the
    /// right shapes and dtypes.
    pub fn check(ckpt: &Checkpoint, path: &str, rows: i32, cols: i32) -> Result<MatrixSpec> {
        let weight = format!("{path}.weight");
        let Some(w) = ckpt.info(&weight) else {
            bail!(MissingTensor, "missing tensor {weight}")
        };
        let quantized = ckpt.info(&format!("{path}.scales")).is_some();
        if !quantized {
            if !w.dtype.is_float() || w.shape != [rows, cols] {
                bail!(
                    InvalidArgument,
                    "{weight}: expected a float [{rows}, {cols}] matrix, found {} {:?}",
                    w.dtype.name(),
                    w.shape
                );
            }
            return Ok(MatrixSpec {
                path: path.into(),
                rows,
                cols,
                quant: None,
            });
        }
        let Some(q) = ckpt.config.quant_for(path)? else {
            bail!(
                InvalidConfig,
                "{path} has quantization scales but the config does not quantize it"
            )
        };
        if cols % q.group_size != 0 || (cols * q.bits) % 32 != 0 {
            bail!(
                InvalidConfig,
                "{path}: {cols} columns do not split into groups of {}",
                q.group_size
            );
        }
        let packed = [rows, cols * q.bits / 32];
        if w.dtype != Dtype::Uint32 || w.shape != packed {
            bail!(
                InvalidArgument,
                "{weight}: expected uint32 {packed:?} for {}-bit weights, found {} {:?} (check bits/group_size)",
                q.bits,
                w.dtype.name(),
                w.shape
            );
        }
        for part in ["scales", "biases"] {
            let name = format!("{path}.{part}");
            let Some(info) = ckpt.info(&name) else {
                bail!(MissingTensor, "missing tensor {name}")
            };
            let want = [rows, cols / q.group_size];
            if !info.dtype.is_float() || info.shape != want {
                bail!(
                    InvalidArgument,
                    "{name}: expected float {want:?} for group size {}, found {} {:?}",
                    q.group_size,
                    info.dtype.name(),
                    info.shape
                );
            }
        }
        Ok(MatrixSpec {
            path: path.into(),
            rows,
            cols,
            quant: Some(q),
        })
    }

    /// Tensor names this module reads.
    pub fn tensor_names(&self) -> Vec<String> {
        let parts: &[&str] = if self.quant.is_some() {
            &["weight", "scales", "biases"]
        } else {
            &["weight"]
        };
        parts.iter().map(|p| format!("{}.{p}", self.path)).collect()
    }

    /// Loads and converts to `dtype`; the result is evaluated (the file copy is released).
    pub fn load(&self, ckpt: &Checkpoint, dtype: Dtype, quantized_as: QuantizedAs) -> Result<Matrix> {
        let weight = ckpt.load(&format!("{}.weight", self.path))?;
        let matrix = match self.quant {
            None => Matrix::Dense(weight.astype(dtype)?),
            Some(params) => {
                let scales = ckpt.load(&format!("{}.scales", self.path))?.astype(dtype)?;
                let biases = ckpt.load(&format!("{}.biases", self.path))?.astype(dtype)?;
                match quantized_as {
                    QuantizedAs::Dense => Matrix::Dense(dequantize(
                        &weight,
                        &scales,
                        &biases,
                        params.group_size,
                        params.bits,
                        dtype,
                    )?),
                    QuantizedAs::Packed => Matrix::Quantized {
                        weight,
                        scales,
                        biases,
                        params,
                    },
                }
            }
        };
        mlx::eval(&matrix.arrays())?;
        Ok(matrix)
    }
}

impl Matrix {
    fn arrays(&self) -> Vec<&Array> {
        match self {
            Matrix::Dense(w) => vec![w],
            Matrix::Quantized {
                weight,
                scales,
                biases,
                ..
            } => vec![weight, scales, biases],
        }
    }

    /// `x · Wᵀ` over the last axis of `x`.
    pub fn linear(&self, x: &Array) -> Result<Array> {
        Ok(match self {
            Matrix::Dense(w) => x.linear(w)?,
            Matrix::Quantized {
                weight,
                scales,
                biases,
                params,
            } => quantized_matmul(x, weight, scales, biases, true, params.group_size, params.bits)?,
        })
    }

    /// Rows of `W` picked by integer `ids` (any shape): an embedding lookup.
    pub fn rows(&self, ids: &Array) -> Result<Array> {
        Ok(match self {
            Matrix::Dense(w) => w.take(ids, 0)?,
            Matrix::Quantized {
                weight,
                scales,
                biases,
                params,
            } => dequantize(
                &weight.take(ids, 0)?,
                &scales.take(ids, 0)?,
                &biases.take(ids, 0)?,
                params.group_size,
                params.bits,
                scales.dtype(),
            )?,
        })
    }

    pub fn nbytes(&self) -> usize {
        self.arrays().iter().map(|a| a.nbytes()).sum()
    }
}
