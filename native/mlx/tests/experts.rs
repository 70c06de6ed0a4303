//! `expert_linear` / `expert_quantized_linear` (cpp/expert_linear.cc): each (row, picked
//! expert) product against MLX's own `dequantize` + `matmul` on that expert's weights, for
//! every build of the packed kernels this CPU runs, 2/4/8 bits in groups of 32/64/128,
//! bf16/f16 weights, 1–9, 17 and 300 rows (300 goes through dequantized tiles and BLAS), one
//! input row shared by the picked experts and one row per picked expert, strided inputs, and
//! an expert nobody picks. Bound: 1e-5 of the largest |y|, as for the one-matrix kernels.
//! Float32 weights and 3/5/6 bits go to MLX's `gather_mm` / `gather_qmm`, which must agree too.

use mlx::fast::{dequantize, expert_linear, expert_quantized_linear, quantize, use_packed_isa};
mod common;
use common::{assert_close, isas, max_abs_diff, on_cpu, values};
use mlx::{Array, Dtype, Result};

const EXPERTS: i32 = 6;
const TOP_K: i32 = 2;

/// Picks for `rows` rows: two distinct experts each, never expert 5.
fn picks(rows: i32) -> Result<Array> {
    let ids: Vec<u32> = (0..rows as u32)
        .flat_map(|r| [(r * 3) % 5, (r * 3 + 1 + r % 3) % 5])
        .collect();
    Array::from_slice(&ids, &[rows, TOP_K])
}

/// `x` `[rows, X, k]` (X = 1 or TOP_K), a view of a transposed array when `strided`.
fn input(rows: i32, per_expert: bool, k: i32, strided: bool) -> Result<Array> {
    let x_rows = if per_expert { TOP_K } else { 1 };
    match strided {
        true => values(&[k, x_rows, rows], 1.3)?.transpose(&[2, 1, 0]),
        false => values(&[rows, x_rows, k], 1.3),
    }
}

/// Each (row, slot): x's row times the picked expert of `dense` `[E, n, k]`, by MLX's matmul.
fn reference(x: &Array, dense: &Array, picked: &Array) -> Result<Array> {
    let (rows, n, k) = (picked.dim(0)?, dense.dim(1)?, dense.dim(2)?);
    let w = dense.take(&picked.reshape(&[rows * TOP_K])?, 0)?; // [rows·top_k, n, k]
    let x = x
        .broadcast_to(&[rows, TOP_K, k])?
        .reshape(&[rows * TOP_K, 1, k])?;
    x.matmul(&w.transpose(&[0, 2, 1])?)?.reshape(&[rows, TOP_K, n])
}

/// (ours, reference, our node's name) for affine weights.
fn affine(
    isa: &'static str,
    bits: i32,
    group: i32,
    rows: i32,
    per_expert: bool,
) -> (Vec<f32>, Vec<f32>, String) {
    on_cpu(move || {
        assert!(use_packed_isa(isa), "{isa}");
        let (n, k) = (if rows == 300 { 160 } else { 37 }, 256);
        let packed = quantize(&values(&[EXPERTS, n, k], 0.37)?, group, bits)?;
        let scales = packed[1].astype(Dtype::Bfloat16)?;
        let biases = packed[2].astype(Dtype::Bfloat16)?;
        let (x, picked) = (input(rows, per_expert, k, rows % 2 == 0)?, picks(rows)?);
        let ours = expert_quantized_linear(&x, &packed[0], &scales, &biases, &picked, group, bits)?;
        let wide = |a: &Array| a.astype(Dtype::Float32);
        let dense = dequantize(
            &packed[0],
            &wide(&scales)?,
            &wide(&biases)?,
            group,
            bits,
            Dtype::Float32,
        )?;
        let want = reference(&x, &dense, &picked)?;
        let name = ours.primitive_name();
        use_packed_isa("");
        Ok((ours.to_vec::<f32>()?, want.to_vec::<f32>()?, name))
    })
}

#[test]
fn affine_experts_equal_dequantize_then_matmul() {
    for isa in isas() {
        for (bits, group) in [
            (2, 64),
            (4, 32),
            (4, 64),
            (4, 128),
            (8, 64),
            (8, 128),
            (3, 64),
            (6, 64),
        ] {
            for rows in (1..=9).chain([17, 300]) {
                for per_expert in [false, true] {
                    let what = format!("{isa} {bits}-bit g{group}, {rows} rows, row per expert {per_expert}");
                    let (got, want, name) = affine(isa, bits, group, rows, per_expert);
                    let want_name = if [2, 4, 8].contains(&bits) {
                        "ExpertLinear"
                    } else {
                        "Squeeze"
                    };
                    assert_eq!(name, want_name, "{what}");
                    assert_close(&what, &got, &want);
                }
            }
        }
    }
}

#[test]
fn half_and_float_experts_equal_widening_then_matmul() {
    for isa in isas() {
        for dtype in [Dtype::Bfloat16, Dtype::Float16, Dtype::Float32] {
            for rows in (1..=9).chain([17, 300]) {
                for per_expert in [false, true] {
                    let (got, want, name) = on_cpu(move || {
                        assert!(use_packed_isa(isa));
                        // k = 100: not a multiple of any vector width, so the tails run too.
                        let w = values(&[EXPERTS, if rows == 300 { 160 } else { 45 }, 100], 0.11)?
                            .astype(dtype)?;
                        let (x, picked) = (input(rows, per_expert, 100, rows % 2 == 1)?, picks(rows)?);
                        let ours = expert_linear(&x, &w, &picked)?;
                        let want = reference(&x, &w.astype(Dtype::Float32)?, &picked)?;
                        let name = ours.primitive_name();
                        use_packed_isa("");
                        Ok((ours.to_vec::<f32>()?, want.to_vec::<f32>()?, name))
                    });
                    let what = format!("{isa} {dtype:?}, {rows} rows, row per expert {per_expert}");
                    let want_name = if dtype == Dtype::Float32 {
                        "Squeeze"
                    } else {
                        "ExpertLinear"
                    };
                    assert_eq!(name, want_name, "{what}");
                    assert_close(&what, &got, &want);
                }
            }
        }
    }
}

#[test]
fn half_precision_activations_run_through_float32_on_the_cpu() {
    let (got, want) = on_cpu(|| {
        let w = values(&[EXPERTS, 24, 64], 0.5)?.astype(Dtype::Bfloat16)?;
        let (x, picked) = (values(&[3, 1, 64], 0.9)?.astype(Dtype::Bfloat16)?, picks(3)?);
        let ours = expert_linear(&x, &w, &picked)?;
        assert_eq!(ours.dtype(), Dtype::Bfloat16);
        let want = reference(&x.astype(Dtype::Float32)?, &w.astype(Dtype::Float32)?, &picked)?;
        Ok((
            ours.astype(Dtype::Float32)?.to_vec::<f32>()?,
            want.to_vec::<f32>()?,
        ))
    });
    // Rounded once to bf16 (8 bits of mantissa) at the end.
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = max_abs_diff(&got, &want);
    assert!(worst <= scale / 128.0, "max |Δ| {worst} vs scale {scale}");
}

#[test]
fn mismatched_shapes_are_errors() {
    on_cpu(|| {
        let w = values(&[EXPERTS, 8, 64], 0.5)?;
        let x = values(&[3, 1, 64], 0.9)?;
        assert!(
            expert_linear(&x, &values(&[8, 64], 0.5)?, &picks(3)?).is_err(),
            "2-D weights"
        );
        assert!(
            expert_linear(&values(&[3, 1, 32], 0.9)?, &w, &picks(3)?).is_err(),
            "k differs"
        );
        assert!(
            expert_linear(&values(&[3, 3, 64], 0.9)?, &w, &picks(3)?).is_err(),
            "X not 1 or top_k"
        );
        Ok(())
    })
}
