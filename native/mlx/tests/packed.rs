//! The packed-weight CPU kernels (cpp/packed_kernels.inc, each build this CPU runs) against
//! MLX's own `dequantize` + `matmul` on the same packed weights, and bf16/f16 weights
//! against MLX's widening + matmul: every bit width the kernels take (2, 4, 8), groups of
//! 32/64/128, scales stored as f32, bf16 and f16, 1–9, 17, 32, 33 and 300 input rows (33
//! and 300 go through the dequantized tiles and BLAS), strided inputs, and a product large
//! enough to be split across threads. Bound: 1e-5 of the largest |y| (float32 sums in another order;
//! measured below 1e-6). 3/5/6 bits are not packed on the CPU: they go to MLX's
//! `quantized_matmul`, which must agree too.

use mlx::fast::{dequantize, packed_isa, packed_supported, quantize, quantized_linear, use_packed_isa};
mod common;
use common::{assert_close, isas, on_cpu, values};
use mlx::Dtype;

struct Case {
    rows: i32,
    n: i32,
    k: i32,
    bits: i32,
    group: i32,
    scales: Dtype,
    transposed_x: bool,
}

/// (ours, reference, our node's name).
fn affine(isa: &'static str, c: Case) -> (Vec<f32>, Vec<f32>, String) {
    on_cpu(move || {
        assert!(use_packed_isa(isa), "{isa}");
        let weights = values(&[c.n, c.k], 0.37)?;
        let packed = quantize(&weights, c.group, c.bits)?;
        let (w, scales, biases) = (
            &packed[0],
            &packed[1].astype(c.scales)?,
            &packed[2].astype(c.scales)?,
        );
        let x = if c.transposed_x {
            values(&[c.k, c.rows], 1.3)?.transpose(&[1, 0])?
        } else {
            values(&[c.rows, c.k], 1.3)?
        };
        let ours = quantized_linear(&x, w, scales, biases, c.group, c.bits)?;
        let f32_scales = (scales.astype(Dtype::Float32)?, biases.astype(Dtype::Float32)?);
        let dense = dequantize(w, &f32_scales.0, &f32_scales.1, c.group, c.bits, Dtype::Float32)?;
        let reference = x.matmul(&dense.transpose(&[1, 0])?)?;
        let name = ours.primitive_name();
        let out = (ours.to_vec::<f32>()?, reference.to_vec::<f32>()?, name);
        use_packed_isa("");
        Ok(out)
    })
}

#[test]
fn affine_products_equal_dequantize_then_matmul() {
    for isa in isas() {
        for bits in [2, 4, 8] {
            for group in [32, 64, 128] {
                for scales in [Dtype::Bfloat16, Dtype::Float16, Dtype::Float32] {
                    for rows in (1..=9).chain([17, 32, 33, 300]) {
                        let case = Case {
                            rows,
                            n: if rows == 300 { 300 } else { 37 },
                            // 640: more than one of the many-row kernels' 256-column chunks.
                            k: if rows % 3 == 0 { 640 } else { 256 },
                            bits,
                            group,
                            scales,
                            transposed_x: rows % 2 == 0,
                        };
                        let what = format!("{isa} {bits}-bit g{group} {scales:?} scales, {rows} rows");
                        let expect_packed = on_cpu(move || {
                            use_packed_isa(isa);
                            let ok = packed_supported(bits, group);
                            use_packed_isa("");
                            Ok(ok)
                        });
                        let (got, want, name) = affine(isa, case);
                        let want_name = if expect_packed {
                            "PackedAffineLinear"
                        } else {
                            "QuantizedMatmul"
                        };
                        assert_eq!(name, want_name, "{what}");
                        assert_close(&what, &got, &want);
                    }
                }
            }
        }
    }
}

#[test]
fn every_build_takes_4_and_8_bits_in_every_group_size() {
    for isa in isas() {
        let supported = on_cpu(move || {
            use_packed_isa(isa);
            let all = [
                (4, 32),
                (4, 64),
                (4, 128),
                (8, 32),
                (8, 64),
                (8, 128),
                (2, 64),
                (2, 128),
            ]
            .iter()
            .all(|&(b, g)| packed_supported(b, g));
            let name = packed_isa();
            use_packed_isa("");
            Ok((all, name))
        });
        assert_eq!(supported, (true, isa.to_string()));
    }
}

#[test]
fn a_product_split_across_threads() {
    for isa in isas() {
        for rows in [1, 3, 8] {
            let case = Case {
                rows,
                n: 4099,
                k: 1024,
                bits: 4,
                group: 64,
                scales: Dtype::Bfloat16,
                transposed_x: false,
            };
            let (got, want, name) = affine(isa, case);
            assert_eq!(name, "PackedAffineLinear");
            assert_close(&format!("{isa}: 4099 × 1024, {rows} rows"), &got, &want);
        }
    }
}

#[test]
fn three_five_and_six_bits_go_to_mlx() {
    for bits in [3, 5, 6] {
        let case = Case {
            rows: 2,
            n: 40,
            k: 256,
            bits,
            group: 64,
            scales: Dtype::Bfloat16,
            transposed_x: false,
        };
        let (got, want, name) = affine("portable", case);
        assert_eq!(name, "QuantizedMatmul", "{bits} bits");
        assert_close(&format!("{bits} bits"), &got, &want);
    }
}

#[test]
fn half_weights_equal_widening_then_matmul() {
    for isa in isas() {
        for dtype in [Dtype::Bfloat16, Dtype::Float16] {
            for rows in (1..=9).chain([17, 32, 33, 300]) {
                // k = 100 or 300: not a multiple of any vector width, so the tails run too;
                // 300 is more than one of the many-row kernels' 256-column chunks.
                let k = if rows % 3 == 0 { 300 } else { 100 };
                let (got, want, name) = on_cpu(move || {
                    assert!(use_packed_isa(isa));
                    let w = values(&[if rows == 300 { 300 } else { 45 }, k], 0.11)?.astype(dtype)?;
                    let x = values(&[rows, k], 2.9)?;
                    let ours = x.linear(&w)?;
                    let reference = x.matmul(&w.astype(Dtype::Float32)?.transpose(&[1, 0])?)?;
                    let name = ours.primitive_name();
                    use_packed_isa("");
                    Ok((ours.to_vec::<f32>()?, reference.to_vec::<f32>()?, name))
                });
                assert_eq!(name, "PackedHalfLinear");
                assert_close(&format!("{isa} {dtype:?}, {rows} rows"), &got, &want);
            }
        }
    }
}
