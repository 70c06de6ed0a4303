//! The int8-activation kernels (cpp/int8_kernels.cc for up to 8 rows, cpp/int8_tiles.cc for
//! more; `quantized_linear_int8`) against MLX's
//! own `dequantize` + `matmul` in float32 on the same packed weights: 4 and 8 bits, groups
//! of 32/64/128, scales stored as f32/bf16/f16, 1–9, 17, 33 and 300 input rows, strided
//! inputs, a product split across threads.
//!
//! The bound is what rounding x to int8 can move an output by, worked out from the inputs:
//! |Δy[r, j]| ≤ Σ_c |scale · q[j, c]| · s[r, g(c)] / 2 with s = max |x[r, g]| / 127 (the
//! biases' part, bias · Σ x, is taken from x itself, so it moves nothing), plus float32
//! sums in another order (1e-5 of the largest |y|). And where x is already int8 times a
//! power of two (every group's largest |x| is 127 · 2⁻³), nothing is rounded, so the
//! products must agree as the float kernels do: within 1e-5 of the largest |y|.
//! On a CPU without AVX-512 VNNI, and for one row of 8-bit weights, the call is the float
//! kernels' and the node's name says so.

use mlx::fast::{dequantize, int8_activations_supported, quantize, quantized_linear_int8};
mod common;
use common::{assert_close, on_cpu};
use mlx::{Array, Dtype};

struct Case {
    rows: i32,
    n: i32,
    k: i32,
    bits: i32,
    group: i32,
    scales: Dtype,
    transposed_x: bool,
    /// x already on the int8 grid (see above).
    exact: bool,
}

struct Outcome {
    got: Vec<f32>,
    want: Vec<f32>,
    x: Vec<f32>,
    /// scale · q: the weights without their biases.
    scaled: Vec<f32>,
    name: String,
}

/// Deterministic x: smooth values in (-2, 2), or integers in [-127, 127] · 2⁻³ with 127 in
/// every group of 32 (so in every group of 64 and 128 too).
fn x_values(rows: i32, k: i32, exact: bool) -> Vec<f32> {
    (0..rows * k)
        .map(|i| {
            let v = ((i as f32) * 0.731 + 0.4).sin();
            if !exact {
                2.0 * v
            } else if i % 32 == 5 {
                127.0 / 8.0
            } else {
                (v * 127.0).round() / 8.0
            }
        })
        .collect()
}

fn run(c: &Case) -> Outcome {
    let (rows, n, k, bits, group, scales_dtype, transposed, exact) = (
        c.rows,
        c.n,
        c.k,
        c.bits,
        c.group,
        c.scales,
        c.transposed_x,
        c.exact,
    );
    on_cpu(move || {
        let w: Vec<f32> = (0..n * k)
            .map(|i| 0.37 * ((i as f32) * 0.377 + 1.1).sin())
            .collect();
        let weights = Array::from_slice(&w, &[n, k])?;
        let packed = quantize(&weights, group, bits)?;
        let (wq, scales, biases) = (
            &packed[0],
            &packed[1].astype(scales_dtype)?,
            &packed[2].astype(scales_dtype)?,
        );
        let xs = x_values(rows, k, exact);
        let x = if transposed {
            // The same values, held transposed: a strided view.
            let t: Vec<f32> = (0..k * rows)
                .map(|i| xs[((i % rows) * k + i / rows) as usize])
                .collect();
            Array::from_slice(&t, &[k, rows])?.transpose(&[1, 0])?
        } else {
            Array::from_slice(&xs, &[rows, k])?
        };
        let ours = quantized_linear_int8(&x, wq, scales, biases, group, bits)?;
        let dense = dequantize(
            wq,
            &scales.astype(Dtype::Float32)?,
            &biases.astype(Dtype::Float32)?,
            group,
            bits,
            Dtype::Float32,
        )?;
        let reference = x.matmul(&dense.transpose(&[1, 0])?)?;
        let zeros = biases
            .astype(Dtype::Float32)?
            .multiply(&Array::from_slice(&[0.0f32], &[1])?)?;
        let scaled = dequantize(
            wq,
            &scales.astype(Dtype::Float32)?,
            &zeros,
            group,
            bits,
            Dtype::Float32,
        )?;
        Ok(Outcome {
            name: ours.primitive_name(),
            got: ours.to_vec::<f32>()?,
            want: reference.to_vec::<f32>()?,
            x: xs,
            scaled: scaled.to_vec::<f32>()?,
        })
    })
}

/// Each output within Σ_c |scale · q[j, c]| · s[r, g(c)] / 2 (+ 1e-5 of the largest |y|); returns
/// the largest share of its bound an output used.
fn assert_within_rounding(what: &str, c: &Case, o: &Outcome) -> f32 {
    let (rows, n, k, g) = (c.rows as usize, c.n as usize, c.k as usize, c.group as usize);
    let scale = o.want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut used = 0.0f32;
    for r in 0..rows {
        let step: Vec<f32> = o.x[r * k..(r + 1) * k]
            .chunks(g)
            .map(|grp| grp.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0)
            .collect();
        for j in 0..n {
            let bound: f32 = (0..k)
                .map(|col| o.scaled[j * k + col].abs() * step[col / g] / 2.0)
                .sum::<f32>()
                * 1.001
                + 1e-5 * scale;
            let delta = (o.got[r * n + j] - o.want[r * n + j]).abs();
            assert!(
                delta <= bound,
                "{what}: y[{r}, {j}] off by {delta} > bound {bound}"
            );
            used = used.max(delta / bound);
        }
    }
    used
}

fn supported(bits: i32, group: i32, k: i32) -> bool {
    on_cpu(move || Ok(int8_activations_supported(bits, group, k as i64)))
}

#[test]
fn int8_products_stay_within_the_rounding_of_x() {
    let mut used = 0.0f32;
    for bits in [4, 8] {
        for group in [32, 64, 128] {
            for scales in [Dtype::Bfloat16, Dtype::Float16, Dtype::Float32] {
                for rows in (1..=9).chain([17, 33, 300]) {
                    let case = Case {
                        rows,
                        n: if rows == 300 { 300 } else { 37 },
                        k: 256,
                        bits,
                        group,
                        scales,
                        transposed_x: rows % 2 == 0,
                        exact: false,
                    };
                    let what = format!("{bits}-bit g{group} {scales:?} scales, {rows} rows");
                    let o = run(&case);
                    let want_name = if supported(bits, group, case.k) && !(bits == 8 && rows == 1) {
                        "PackedAffineLinearInt8"
                    } else {
                        "PackedAffineLinear"
                    };
                    assert_eq!(o.name, want_name, "{what}");
                    used = used.max(assert_within_rounding(&what, &case, &o));
                }
            }
        }
    }
    // The rounding did happen (the bound is not met by running the float kernels).
    if supported(4, 64, 256) {
        assert!(used > 0.01, "largest share of the bound used: {used}");
    }
    eprintln!("largest share of the rounding bound used: {used:.3}");
}

#[test]
fn x_on_the_int8_grid_gives_the_float_products() {
    for bits in [4, 8] {
        for group in [32, 64, 128] {
            for rows in [1, 2, 5, 8, 9, 40] {
                let case = Case {
                    rows,
                    n: 45,
                    k: 512,
                    bits,
                    group,
                    scales: Dtype::Bfloat16,
                    transposed_x: false,
                    exact: true,
                };
                let o = run(&case);
                assert_close(
                    &format!("{bits}-bit g{group}, {rows} rows, exact x"),
                    &o.got,
                    &o.want,
                );
            }
        }
    }
}

#[test]
fn an_int8_product_split_across_threads() {
    for rows in [1, 3, 8, 64] {
        let case = Case {
            rows,
            n: 4099,
            k: 1024,
            bits: 4,
            group: 64,
            scales: Dtype::Bfloat16,
            transposed_x: false,
            exact: false,
        };
        let o = run(&case);
        assert_within_rounding(&format!("4099 × 1024, {rows} rows"), &case, &o);
    }
}

#[test]
fn layouts_the_int8_kernels_do_not_take_use_the_float_ones() {
    // 2 bits, and k not a multiple of a 64-byte run (4-bit: 128 values).
    for (bits, group, k) in [(2, 64, 256), (4, 32, 96)] {
        assert!(!supported(bits, group, k), "{bits}-bit g{group} k {k}");
        let case = Case {
            rows: 3,
            n: 20,
            k,
            bits,
            group,
            scales: Dtype::Bfloat16,
            transposed_x: false,
            exact: false,
        };
        let o = run(&case);
        assert_eq!(o.name, "PackedAffineLinear");
        assert_close(&format!("{bits}-bit g{group} k {k}"), &o.got, &o.want);
    }
}
