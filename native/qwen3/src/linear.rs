//! Weight matrices, dense or affine-quantized, used as linear layers and embeddings.

use crate::checkpoint::Checkpoint;
use crate::config::QuantParams;
use crate::error::{bail, Result};
use mlx::fast::{dequantize, quantized_linear, quantized_linear_int8, quantized_linears};
use mlx::{Array, Dtype};

/// How a checkpoint's weight matrices are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// As the checkpoint stores them wherever the device computes from that form: packed
    /// stays packed and bf16/f16 stays so (on the CPU this project's packed kernels compute
    /// from them in float32; on a GPU, MLX's kernels in the compute dtype).
    AsStored,
    /// Widened once at load into the compute dtype (quantized ones dequantized): the CPU
    /// path before the packed kernels, kept for comparison.
    Widened,
}

/// What decides each matrix's resident form: the compute dtype, the storage asked for, and
/// whether the model computes on the CPU.
#[derive(Debug, Clone, Copy)]
pub struct Residency {
    pub dtype: Dtype,
    pub storage: Storage,
    pub cpu: bool,
    /// Packed products quantize their float32 input to int8 per group (CPU, 4/8 bits).
    pub int8_activations: bool,
}

/// The form a matrix is held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Its stored float dtype (bf16/f16 on the CPU in float32: the packed kernels read it).
    Stored(Dtype),
    /// Widened or dequantized to the compute dtype.
    Widened(Dtype),
    /// Packed, scales and biases in this dtype.
    Packed(Dtype),
}

impl Residency {
    /// Whether products run the CPU's packed kernels (float32 activations).
    fn packed_kernels(&self) -> bool {
        self.cpu && self.dtype == Dtype::Float32 && self.storage == Storage::AsStored
    }

    fn form(&self, spec: &MatrixSpec) -> Form {
        match spec.quant {
            None if self.packed_kernels() && matches!(spec.stored, Dtype::Bfloat16 | Dtype::Float16) => {
                Form::Stored(spec.stored)
            }
            None => Form::Widened(self.dtype),
            Some(_) if self.storage == Storage::Widened => Form::Widened(self.dtype),
            // 3/5/6 bits: the CPU kernels do not read them, and MLX's CPU quantized_matmul
            // runs at ~0.2 GFLOP/s, so they are widened as before.
            Some(q) if self.packed_kernels() && !mlx::fast::packed_supported(q.bits, q.group_size) => {
                Form::Widened(self.dtype)
            }
            Some(_) if self.packed_kernels() => Form::Packed(spec.stored),
            Some(_) => Form::Packed(self.dtype),
        }
    }
}

/// A `[rows, cols]` weight (rows = output features, or vocabulary for embeddings).
pub enum Matrix {
    Dense(Array),
    Quantized {
        weight: Array,
        scales: Array,
        biases: Array,
        params: QuantParams,
        /// Products run `quantized_linear_int8` (the load's `int8_activations`).
        int8: bool,
    },
}

/// Shape/dtype facts about one matrix module (or a stack of experts' matrices), checked
/// before anything is loaded.
#[derive(Debug, Clone)]
pub struct MatrixSpec {
    pub path: String,
    pub stack: Stack,
    pub rows: i32,
    pub cols: i32,
    pub quant: Option<QuantParams>,
    /// The weight's dtype, or the scales' when quantized.
    pub stored: Dtype,
}

/// Whether a spec is one matrix or a stack of experts' matrices, and how the checkpoint
/// holds the stack (see `experts.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stack {
    Single,
    /// One `[experts, rows, cols]` tensor (mlx-lm's `switch_mlp` layout).
    Stacked(i32),
    /// One `[rows, cols]` module per expert at these paths (Hugging Face's
    /// `experts.{e}.…`), stacked at load.
    PerExpert(Vec<String>),
}

impl Stack {
    pub fn experts(&self) -> i32 {
        match self {
            Stack::Single => 1,
            Stack::Stacked(n) => *n,
            Stack::PerExpert(paths) => paths.len() as i32,
        }
    }
}

impl MatrixSpec {
    /// Checks that `{path}.weight` (and `.scales`/`.biases` when quantized) exist with the
    /// right shapes and dtypes.
    pub fn check(ckpt: &Checkpoint, path: &str, rows: i32, cols: i32) -> Result<MatrixSpec> {
        Self::check_shaped(ckpt, path, &[], rows, cols)
    }

    /// Like [`MatrixSpec::check`] for tensors shaped `[lead.., rows, cols]` (packed
    /// columns and groups likewise).
    pub(crate) fn check_shaped(
        ckpt: &Checkpoint,
        path: &str,
        lead: &[i32],
        rows: i32,
        cols: i32,
    ) -> Result<MatrixSpec> {
        let shaped = |last: i32| [lead, &[rows, last]].concat();
        let stack = match lead {
            [] => Stack::Single,
            [n] => Stack::Stacked(*n),
            _ => bail!(InvalidArgument, "{path}: a matrix stack has one leading axis"),
        };
        let weight = format!("{path}.weight");
        let Some(w) = ckpt.info(&weight) else {
            bail!(MissingTensor, "missing tensor {weight}")
        };
        let quantized = ckpt.info(&format!("{path}.scales")).is_some();
        if !quantized {
            if !w.dtype.is_float() || w.shape != shaped(cols) {
                bail!(
                    InvalidArgument,
                    "{weight}: expected a float {:?} matrix, found {} {:?}",
                    shaped(cols),
                    w.dtype.name(),
                    w.shape
                );
            }
            return Ok(MatrixSpec {
                path: path.into(),
                stack,
                rows,
                cols,
                quant: None,
                stored: w.dtype,
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
        let packed = shaped(cols * q.bits / 32);
        if w.dtype != Dtype::Uint32 || w.shape != packed {
            bail!(
                InvalidArgument,
                "{weight}: expected uint32 {packed:?} for {}-bit weights, found {} {:?} (check bits/group_size)",
                q.bits,
                w.dtype.name(),
                w.shape
            );
        }
        let mut stored = None;
        for part in ["scales", "biases"] {
            let name = format!("{path}.{part}");
            let Some(info) = ckpt.info(&name) else {
                bail!(MissingTensor, "missing tensor {name}")
            };
            let want = shaped(cols / q.group_size);
            if stored.is_some_and(|d| d != info.dtype) {
                bail!(InvalidArgument, "{path}: scales and biases of different dtypes");
            }
            stored = Some(info.dtype);
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
            stack,
            rows,
            cols,
            quant: Some(q),
            stored: stored.unwrap_or(Dtype::Float32),
        })
    }

    /// The parts this module has: `weight`, and `scales`, `biases` when quantized.
    fn parts(&self) -> &'static [&'static str] {
        match self.quant {
            Some(_) => &["weight", "scales", "biases"],
            None => &["weight"],
        }
    }

    /// Tensor names this module reads.
    pub fn tensor_names(&self) -> Vec<String> {
        let paths = match &self.stack {
            Stack::PerExpert(paths) => paths.clone(),
            _ => vec![self.path.clone()],
        };
        let parts = self.parts();
        paths
            .iter()
            .flat_map(|path| parts.iter().map(move |p| format!("{path}.{p}")))
            .collect()
    }

    /// Bytes the matrix takes in memory once loaded as `residency` decides.
    pub fn resident_bytes(&self, residency: &Residency) -> u64 {
        let (rows, cols) = (self.rows as u64 * self.stack.experts() as u64, self.cols as u64);
        match (residency.form(self), self.quant) {
            (Form::Stored(d) | Form::Widened(d), _) => rows * cols * d.size() as u64,
            (Form::Packed(d), Some(q)) => {
                rows * cols * q.bits as u64 / 8 + 2 * rows * (cols / q.group_size as u64) * d.size() as u64
            }
            (Form::Packed(_), None) => unreachable!("only quantized matrices are packed"),
        }
    }

    /// Loads it in the form `residency` decides; the result is evaluated (the file's copy
    /// is released).
    pub fn load(&self, ckpt: &Checkpoint, residency: &Residency) -> Result<Matrix> {
        let weight = self.load_part(ckpt, "weight")?;
        let part =
            |name: &str, dtype: Dtype| -> Result<Array> { Ok(self.load_part(ckpt, name)?.astype(dtype)?) };
        let matrix = match (residency.form(self), self.quant) {
            (Form::Stored(_), _) => Matrix::Dense(weight),
            (Form::Widened(dtype), None) => Matrix::Dense(weight.astype(dtype)?),
            (Form::Widened(dtype), Some(q)) => Matrix::Dense(dequantize(
                &weight,
                &part("scales", dtype)?,
                &part("biases", dtype)?,
                q.group_size,
                q.bits,
                dtype,
            )?),
            (Form::Packed(dtype), Some(params)) => Matrix::Quantized {
                weight,
                scales: part("scales", dtype)?,
                biases: part("biases", dtype)?,
                params,
                int8: residency.int8_activations && residency.packed_kernels(),
            },
            (Form::Packed(_), None) => unreachable!("only quantized matrices are packed"),
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
                int8,
            } => {
                let product = if *int8 {
                    quantized_linear_int8
                } else {
                    quantized_linear
                };
                product(x, weight, scales, biases, params.group_size, params.bits)?
            }
        })
    }

    /// `x · Wᵢᵀ` for matrices that share the input `x` (q/k/v, gate/up), one output each:
    /// packed matrices of one layout as one product (x prepared once, their rows split
    /// across the cores together), others one by one.
    pub fn linears<const N: usize>(x: &Array, matrices: [&Matrix; N]) -> Result<[Array; N]> {
        let outputs = match Matrix::packed_alike(&matrices) {
            Some((params, int8, parts)) => {
                quantized_linears(x, &parts, params.group_size, params.bits, int8)?
            }
            None => matrices.iter().map(|m| m.linear(x)).collect::<Result<Vec<_>>>()?,
        };
        match outputs.try_into() {
            Ok(all) => Ok(all),
            Err(v) => Err(mlx::Error::Mlx(format!("expected {N} products, got {}", v.len())).into()),
        }
    }

    /// The packing and int8 choice all `matrices` share, with each one's weight, scales
    /// and biases, if all are packed alike.
    pub(crate) fn packed_alike<'a>(
        matrices: &[&'a Matrix],
    ) -> Option<(QuantParams, bool, Vec<[&'a Array; 3]>)> {
        let mut parts = Vec::with_capacity(matrices.len());
        let mut shared = None;
        for m in matrices {
            let Matrix::Quantized {
                weight,
                scales,
                biases,
                params,
                int8,
            } = m
            else {
                return None;
            };
            if *shared.get_or_insert((*params, *int8)) != (*params, *int8) {
                return None;
            }
            parts.push([weight, scales, biases]);
        }
        shared.map(|(params, int8)| (params, int8, parts))
    }

    /// Each matrix's weight, if all are dense and stored in one half-precision dtype
    /// (bf16 or f16, as the CPU's product kernels read them).
    pub(crate) fn half_alike<'a>(matrices: &[&'a Matrix]) -> Option<Vec<&'a Array>> {
        let mut dtype = None;
        matrices
            .iter()
            .map(|m| match m {
                Matrix::Dense(w) if matches!(w.dtype(), Dtype::Bfloat16 | Dtype::Float16) => {
                    (*dtype.get_or_insert(w.dtype()) == w.dtype()).then_some(w)
                }
                _ => None,
            })
            .collect()
    }

    /// Rows of `W` picked by integer `ids` (any shape), in `dtype`: an embedding lookup.
    pub fn rows(&self, ids: &Array, dtype: Dtype) -> Result<Array> {
        // In float32 on the CPU, one node instead of take and dequantize's ~10.
        if let (
            Matrix::Quantized {
                weight,
                scales,
                biases,
                params,
                ..
            },
            Dtype::Float32,
        ) = (self, dtype)
        {
            let parts = (weight, scales, biases);
            if let Some(rows) = mlx::fast::packed_rows(ids, parts, params.group_size, params.bits)? {
                return Ok(rows);
            }
        }
        Ok(match self {
            Matrix::Dense(w) => w.take(ids, 0)?.astype(dtype)?,
            Matrix::Quantized {
                weight,
                scales,
                biases,
                params,
                ..
            } => dequantize(
                &weight.take(ids, 0)?,
                // MLX dequantizes in the scales' dtype: widen them first, as a widened
                // matrix had them.
                &scales.take(ids, 0)?.astype(dtype)?,
                &biases.take(ids, 0)?.astype(dtype)?,
                params.group_size,
                params.bits,
                dtype,
            )?,
        })
    }

    pub fn nbytes(&self) -> usize {
        self.arrays().iter().map(|a| a.nbytes()).sum()
    }
}
