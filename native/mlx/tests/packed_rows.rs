//! The embedding lookup from packed rows (cpp/packed_rows.cc, `mlx::fast::packed_rows`)
//! against MLX's own `take` + `dequantize` on the same packed weights: 2, 4 and 8 bits,
//! groups of 32/64/128, scales stored as f32, bf16 and f16, ids of int32, uint32 and int64,
//! shaped [1, 1], [2, 3] and as a strided view. Both compute scale · q + bias in float32:
//! the rows must be equal to the bit. An id outside
//! the matrix gives zeros (MLX's take would read outside it); 3 bits go to MLX's ops.

use mlx::fast::{dequantize, packed_rows, quantize, set_fused_cpu_kernels};
mod common;
use common::{max_abs_diff, on_cpu, values};
use mlx::{Array, Dtype};

const N: i32 = 40;
const K: i32 = 256;

/// (ours, MLX's, our node's name) for `ids` picked from a [N, K] matrix.
fn lookup(
    bits: i32,
    group: i32,
    scales: Dtype,
    ids: fn() -> mlx::Result<Array>,
) -> (Vec<f32>, Vec<f32>, String) {
    on_cpu(move || {
        let packed = quantize(&values(&[N, K], 0.37)?, group, bits)?;
        let (w, s, b) = (&packed[0], &packed[1].astype(scales)?, &packed[2].astype(scales)?);
        mlx::eval(&[w, s, b])?; // loaded weights, as a model holds them
        let ids = ids()?;
        let ours = packed_rows(&ids, (w, s, b), group, bits)?.expect("the node applies");
        let widened = |a: &Array| a.take(&ids, 0)?.astype(Dtype::Float32);
        let want = dequantize(
            &w.take(&ids, 0)?,
            &widened(s)?,
            &widened(b)?,
            group,
            bits,
            Dtype::Float32,
        )?;
        assert_eq!(ours.shape(), want.shape());
        let name = ours.primitive_name();
        Ok((ours.to_vec::<f32>()?, want.to_vec::<f32>()?, name))
    })
}

#[test]
fn rows_equal_take_then_dequantize_to_the_bit() {
    let id_sets: [fn() -> mlx::Result<Array>; 4] = [
        || Array::from_slice(&[17i32], &[1, 1]),
        || Array::from_slice(&[3u32, 0, 39, 17, 5, 5], &[2, 3]),
        || Array::from_slice(&[39i64, 1, 2, 38, 0, 7], &[2, 3]),
        || Array::from_slice(&[3i32, 0, 39, 17, 5, 6], &[3, 2])?.transpose(&[1, 0]),
    ];
    for bits in [2, 4, 8] {
        for group in [32, 64, 128] {
            for scales in [Dtype::Float32, Dtype::Bfloat16, Dtype::Float16] {
                for (i, ids) in id_sets.into_iter().enumerate() {
                    let (ours, want, name) = lookup(bits, group, scales, ids);
                    assert_eq!(name, "PackedRows");
                    let diff = max_abs_diff(&ours, &want);
                    assert!(
                        diff == 0.0,
                        "{bits} bits, group {group}, {scales:?}, ids {i}: max |Δ| {diff:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn an_id_outside_the_matrix_gives_zeros() {
    let rows = on_cpu(|| {
        let packed = quantize(&values(&[N, K], 0.37)?, 64, 4)?;
        mlx::eval(&packed.iter().collect::<Vec<_>>())?;
        let ids = Array::from_slice(&[N, -1, 2], &[3])?;
        let rows = packed_rows(&ids, (&packed[0], &packed[1], &packed[2]), 64, 4)?.expect("the node applies");
        rows.to_vec::<f32>()
    });
    assert!(rows[..2 * K as usize].iter().all(|&v| v == 0.0));
    assert!(rows[2 * K as usize..].iter().any(|&v| v != 0.0));
}

#[test]
fn three_bits_and_fused_kernels_off_go_to_mlx() {
    let declined = on_cpu(|| {
        let ids = Array::from_slice(&[1i32], &[1])?;
        let three = quantize(&values(&[N, K], 0.37)?, 64, 3)?;
        let four = quantize(&values(&[N, K], 0.37)?, 64, 4)?;
        mlx::eval(&three.iter().chain(&four).collect::<Vec<_>>())?;
        let three_bits = packed_rows(&ids, (&three[0], &three[1], &three[2]), 64, 3)?.is_none();
        let was = set_fused_cpu_kernels(false);
        let off = packed_rows(&ids, (&four[0], &four[1], &four[2]), 64, 4)?.is_none();
        set_fused_cpu_kernels(was);
        Ok(three_bits && off)
    });
    assert!(declined);
}
