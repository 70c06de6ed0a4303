//! Qwen3-MoE's sparse MLP: a router picks `top_k` experts per token and only those run.
//! The experts' matrices are held as stacks (`Stack`): checked and loaded here, multiplied
//! through `mlx::fast::expert_linear`, which reads only the picked experts.

use crate::checkpoint::Checkpoint;
use crate::config::Moe;
use crate::error::{bail, Result};
use crate::linear::{Matrix, MatrixSpec, Stack};
use mlx::fast::{expert_linear, expert_quantized_linear, swiglu};
use mlx::{concatenate, Array, Reduce, Unary};

impl MatrixSpec {
    /// Checks a stack of `experts` `[rows, cols]` matrices, held either as one stacked
    /// tensor at `stacked` (mlx-lm, mlx-community) or as one module per expert at
    /// `per_expert(e)` (Hugging Face).
    pub fn check_experts(
        ckpt: &Checkpoint,
        stacked: &str,
        per_expert: impl Fn(i32) -> String,
        experts: i32,
        rows: i32,
        cols: i32,
    ) -> Result<MatrixSpec> {
        if ckpt.info(&format!("{stacked}.weight")).is_some() {
            return MatrixSpec::check_shaped(ckpt, stacked, &[experts], rows, cols);
        }
        if ckpt.info(&format!("{}.weight", per_expert(0))).is_none() {
            bail!(
                MissingTensor,
                "missing tensor {stacked}.weight (or {}.weight per expert)",
                per_expert(0)
            );
        }
        let specs = (0..experts)
            .map(|e| MatrixSpec::check(ckpt, &per_expert(e), rows, cols))
            .collect::<Result<Vec<_>>>()?;
        let first = &specs[0];
        if let Some(odd) = specs
            .iter()
            .find(|s| (s.quant, s.stored) != (first.quant, first.stored))
        {
            bail!(
                InvalidArgument,
                "{} is stored unlike {} ({:?} {} vs {:?} {}): experts are stacked, so they must match",
                odd.path,
                first.path,
                odd.quant,
                odd.stored.name(),
                first.quant,
                first.stored.name()
            );
        }
        Ok(MatrixSpec {
            path: stacked.into(),
            stack: Stack::PerExpert(specs.iter().map(|s| s.path.clone()).collect()),
            ..first.clone()
        })
    }

    /// One part (`weight`, `scales`, `biases`) as stored, per-expert tensors stacked.
    pub(crate) fn load_part(&self, ckpt: &Checkpoint, part: &str) -> Result<Array> {
        let Stack::PerExpert(paths) = &self.stack else {
            return ckpt.load(&format!("{}.{part}", self.path));
        };
        let each = paths
            .iter()
            .map(|p| Ok(ckpt.load(&format!("{p}.{part}"))?.expand_dims(0)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(concatenate(&each.iter().collect::<Vec<_>>(), 0)?)
    }
}

impl Matrix {
    /// Whether this is a stack of experts' matrices.
    pub fn is_stack(&self) -> bool {
        let (Matrix::Dense(w) | Matrix::Quantized { weight: w, .. }) = self;
        w.ndim() == 3
    }

    /// For a stack of experts: `x` `[..., X, cols]` (X = 1 or `top_k`) times the experts
    /// `indices` `[..., top_k]` picks → `[..., top_k, rows]`.
    pub fn experts_linear(&self, x: &Array, indices: &Array) -> Result<Array> {
        Ok(match self {
            Matrix::Dense(w) => expert_linear(x, w, indices)?,
            Matrix::Quantized {
                weight,
                scales,
                biases,
                params,
                ..
            } => expert_quantized_linear(x, weight, scales, biases, indices, params.group_size, params.bits)?,
        })
    }
}

/// The sparse MLP on a normed `x` `[B, L, hidden]`, as mlx-lm's Qwen3-MoE computes it:
/// softmax over the router's logits, the `top_k` most probable experts (their
/// probabilities renormalised when `norm_topk_prob`), each a SwiGLU, summed by probability.
pub fn sparse_mlp(x: &Array, router: &Matrix, [gate, up, down]: [&Matrix; 3], moe: &Moe) -> Result<Array> {
    let probs = router.linear(x)?.unary(Unary::Softmax)?;
    let (experts, k) = (moe.experts, moe.top_k);
    let end = probs.shape();
    let mut start = vec![0; end.len()];
    *start.last_mut().expect("[B, L, E]") = experts - k;
    let picked = probs.argpartition(experts - k, -1)?.slice(&start, &end)?;
    let mut weights = probs.take_along_axis(&picked, -1)?;
    if moe.norm_topk_prob {
        weights = weights.binary(mlx::Binary::Divide, &weights.reduce(Reduce::Sum, -1, true)?)?;
    }
    let x = x.expand_dims(-2)?;
    let hidden = swiglu(
        &gate.experts_linear(&x, &picked)?,
        &up.experts_linear(&x, &picked)?,
    )?;
    let out = down.experts_linear(&hidden, &picked)?;
    let dtype = out.dtype();
    let summed = out
        .multiply(&weights.expand_dims(-1)?)?
        .reduce(Reduce::Sum, -2, false)?;
    Ok(summed.astype(dtype)?)
}
