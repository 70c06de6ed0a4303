//! Products that share their input (`quantized_linears`: q/k/v, gate/up) against the same
//! products made one by one (`quantized_linear`, `quantized_linear_int8`): bit for bit, since
//! each output feature runs the same kernel on the same prepared rows whichever thread
//! computes it. 4 and 8 bits, float and int8 activations, 1, 3, 9, 32 rows (the packed
//! kernels directly) and 33 (dequantized tiles), matrices of 64 to 2,048 rows (the larger
//! ones split across threads); matrices packed differently fall back to one product each.

use mlx::fast::{quantize, quantized_linear, quantized_linear_int8, quantized_linears};
mod common;
use common::{on_cpu, values};
use mlx::{Array, Dtype, Result};

/// Three matrices of `k` columns (`rows` each) in one layout: weight, scales, biases.
fn packed(rows: [i32; 3], k: i32, group: i32, bits: i32) -> Result<Vec<[Array; 3]>> {
    rows.iter()
        .enumerate()
        .map(|(i, &n)| {
            let w = values(&[n, k], 0.7 + i as f32)?;
            let mut p = quantize(&w, group, bits)?.into_iter();
            let (q, s, b) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
            Ok([q, s.astype(Dtype::Bfloat16)?, b.astype(Dtype::Bfloat16)?])
        })
        .collect()
}

/// (shared node's outputs, one-by-one outputs, the shared node's name).
fn both(x_rows: i32, bits: i32, int8: bool) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, String) {
    on_cpu(move || {
        let (k, group) = (512, 64);
        let mats = packed([2048, 64, 700], k, group, bits)?;
        let x = values(&[x_rows, k], 0.3)?;
        let parts: Vec<[&Array; 3]> = mats.iter().map(|[w, s, b]| [w, s, b]).collect();
        let shared = quantized_linears(&x, &parts, group, bits, int8)?;
        let single = if int8 {
            quantized_linear_int8
        } else {
            quantized_linear
        };
        let alone = mats
            .iter()
            .map(|[w, s, b]| single(&x, w, s, b, group, bits)?.to_vec::<f32>())
            .collect::<Result<Vec<_>>>()?;
        let name = shared[0].primitive_name();
        let shared = shared
            .iter()
            .map(|a| a.to_vec::<f32>())
            .collect::<Result<Vec<_>>>()?;
        Ok((shared, alone, name))
    })
}

#[test]
fn shared_input_products_equal_the_products_one_by_one() {
    for bits in [4, 8] {
        for int8 in [false, true] {
            for x_rows in [1, 3, 9, 32, 33] {
                let (shared, alone, name) = both(x_rows, bits, int8);
                let what = format!("{bits} bits, int8 {int8}, {x_rows} rows");
                assert!(name.starts_with("PackedAffineLinear"), "{what}: {name}");
                assert_eq!(shared.len(), 3, "{what}");
                for (i, (s, a)) in shared.iter().zip(&alone).enumerate() {
                    assert_eq!(s.len(), a.len(), "{what}, matrix {i}");
                    let differ = s
                        .iter()
                        .zip(a)
                        .filter(|(p, q)| p.to_bits() != q.to_bits())
                        .count();
                    assert_eq!(differ, 0, "{what}, matrix {i}: {differ} outputs differ");
                }
            }
        }
    }
}

#[test]
fn matrices_packed_differently_run_one_by_one() {
    let (got, want) = on_cpu(|| {
        let (k, group) = (256, 64);
        let four = packed([96, 32, 32], k, group, 4)?;
        // The third matrix's scales in float32: not the layout of the first.
        let [w, s, b] = &four[2];
        let (s32, b32) = (s.astype(Dtype::Float32)?, b.astype(Dtype::Float32)?);
        let x = values(&[2, k], 0.9)?;
        let parts = [
            [&four[0][0], &four[0][1], &four[0][2]],
            [&four[1][0], &four[1][1], &four[1][2]],
            [w, &s32, &b32],
        ];
        let got = quantized_linears(&x, &parts, group, 4, false)?;
        let want = parts
            .iter()
            .map(|[w, s, b]| quantized_linear(&x, w, s, b, group, 4)?.to_vec::<f32>())
            .collect::<Result<Vec<_>>>()?;
        let got = got
            .iter()
            .map(|a| a.to_vec::<f32>())
            .collect::<Result<Vec<_>>>()?;
        Ok((got, want))
    });
    assert_eq!(got, want);
}
