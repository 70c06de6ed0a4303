//! The fused CPU kernels (cpp/fused_*.cc) against MLX's own graphs for the same calls
//! (`set_fused_cpu_kernels(false)`), on views with odd strides, GQA, causal masks and
//! per-row RoPE offsets. Bound: 2e-5 absolute on values of order 1 (float32 rounding in a
//! different order; measured ≤ 2e-6); RoPE at position 1000 gets 1e-4 (measured 4e-5), as
//! its angles carry ~6e-5 rad of float32 rounding on either side.

use mlx::fast::{
    norm_rope, rms_norm, rope, rope_freqs, rope_offsets, sdpa, sdpa_merged, set_fused_cpu_kernels, swiglu,
    Mask,
};
use mlx::{Array, Device, Dtype, Result, Worker};

/// Deterministic values in (-2, 2), in a `shape` array.
fn values(shape: &[i32], seed: f32) -> Result<Array> {
    let n: i32 = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| 2.0 * ((i as f32) * 0.731 + seed).sin()).collect();
    Array::from_slice(&data, shape)
}

/// `build` with the fused kernels and with MLX's graphs: (fused, reference, fused node name).
fn both(build: impl Fn() -> Result<Array> + Send + 'static) -> (Vec<f32>, Vec<f32>, String) {
    Worker::for_device(Device::Cpu)
        .unwrap()
        .run(move || {
            let was = set_fused_cpu_kernels(true);
            let fused = build();
            set_fused_cpu_kernels(false);
            let reference = build();
            set_fused_cpu_kernels(was);
            let (fused, reference) = (fused?, reference?);
            let name = fused.primitive_name();
            let floats = |a: Array| a.astype(Dtype::Float32)?.to_vec::<f32>();
            Ok((floats(fused)?, floats(reference)?, name))
        })
        .unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    // A NaN difference counts as infinite (f32::max would drop it).
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| if g == w { 0.0 } else { (g - w).abs() })
        .map(|d| if d.is_nan() { f32::INFINITY } else { d })
        .fold(0.0, f32::max);
    assert!(worst <= tol, "{what}: max |Δ| {worst} > {tol}");
}

#[test]
fn rms_norm_on_a_transposed_view() {
    let (got, want, name) = both(|| {
        let x = values(&[2, 4, 3, 16], 0.3)?.transpose(&[0, 2, 1, 3])?;
        rms_norm(&x, &values(&[16], 1.1)?, 1e-6)
    });
    assert_eq!(name, "FusedRmsNorm");
    assert_close("rms_norm", &got, &want, 2e-5);
}

#[test]
fn rope_with_one_offset_and_with_one_per_row() {
    let (got, want, name) = both(|| {
        let x = values(&[2, 3, 4, 16], 0.7)?.transpose(&[0, 2, 1, 3])?;
        rope(&x, 16, false, 1_000_000.0, 1.0, 1000)
    });
    assert_eq!(name, "FusedRope");
    assert_close("rope at 1000", &got, &want, 1e-4);

    let (got, want, name) = both(|| {
        let x = values(&[2, 4, 3, 16], 0.9)?;
        rope_offsets(
            &x,
            16,
            false,
            10_000.0,
            1.0,
            &Array::from_slice(&[5i32, 37], &[2])?,
        )
    });
    assert_eq!(name, "FusedRope");
    assert_close("rope per row", &got, &want, 2e-5);
}

#[test]
fn rope_with_given_wavelengths() {
    // YaRN-like: wavelengths from 1 to ~1e5, some stretched; one offset, then one per row.
    let freqs: Vec<f32> = (0..8)
        .map(|i| 10_000f32.powf(i as f32 / 8.0) * if i > 4 { 4.0 } else { 1.0 })
        .collect();
    let f = freqs.clone();
    let (got, want, name) = both(move || {
        let x = values(&[2, 3, 4, 16], 0.4)?.transpose(&[0, 2, 1, 3])?;
        rope_freqs(
            &x,
            16,
            false,
            1.0,
            &Array::from_slice(&[300i32], &[1])?,
            &Array::from_slice(&f, &[8])?,
        )
    });
    assert_eq!(name, "FusedRope");
    assert_close("rope with freqs at 300", &got, &want, 1e-4);

    let (got, want, name) = both(move || {
        let x = values(&[2, 4, 3, 16], 0.6)?;
        rope_freqs(
            &x,
            16,
            false,
            1.0,
            &Array::from_slice(&[5i32, 37], &[2])?,
            &Array::from_slice(&freqs, &[8])?,
        )
    });
    assert_eq!(name, "FusedRope");
    assert_close("rope with freqs per row", &got, &want, 2e-5);
}

#[test]
fn norm_rope_from_a_projection() {
    // [B = 2, T = 3, 4 heads · 16] → [2, 4, 3, 16]: one start, one per row, YaRN's
    // wavelengths and factor; the projection as a strided view once.
    let freqs: Vec<f32> = (0..8).map(|i| 10_000f32.powf(i as f32 / 8.0) * 1.5).collect();
    for (per_row, yarn, strided) in [(false, false, false), (true, false, true), (true, true, false)] {
        let f = freqs.clone();
        let (got, want, name) = both(move || {
            let x = if strided {
                values(&[3, 2, 64], 0.2)?.transpose(&[1, 0, 2])?
            } else {
                values(&[2, 3, 64], 0.2)?
            };
            let starts = if per_row {
                Array::from_slice(&[7i32, 260], &[2])?
            } else {
                Array::from_slice(&[41i32], &[1])?
            };
            let freqs = Array::from_slice(&f, &[8])?;
            let (freqs, factor) = if yarn { (Some(&freqs), 1.2) } else { (None, 1.0) };
            norm_rope(
                &x,
                &values(&[16], 1.7)?,
                1e-6,
                4,
                1_000_000.0,
                &starts,
                freqs,
                factor,
            )
        });
        assert_eq!(name, "FusedNormRope");
        assert_close(
            &format!("norm + rope, per row {per_row}, yarn {yarn}, strided {strided}"),
            &got,
            &want,
            1e-4,
        );
    }
}

/// q: `[2, 8, L, D]` against the first `keys` slots of a `[2, 4, keys + 9, D]` cache (a
/// strided view).
fn attention(queries: i32, keys: i32, d: i32, mask: bool) -> (Vec<f32>, Vec<f32>, String) {
    both(move || {
        let q = values(&[2, 8, queries, d], 0.2)?;
        let cache = |seed| values(&[2, 4, keys + 9, d], seed)?.slice(&[0, 0, 0, 0], &[2, 4, keys, d]);
        let (k, v) = (cache(1.3)?, cache(2.9)?);
        sdpa(&q, &k, &v, 0.25, if mask { Mask::Causal } else { Mask::None })
    })
}

#[test]
fn attention_over_a_cache_view_with_grouped_heads() {
    // Dot products for up to 8 queries (split across threads by head from 2,048 key rows
    // read, vector code for 64 columns at a time and the rest), BLAS blocks of 256 queries
    // beyond.
    for (queries, keys, d, causal) in [
        (1, 11, 16, false),
        (3, 11, 16, true),
        (9, 11, 16, true),
        (300, 310, 16, true),
        (260, 270, 16, false),
        (1, 2053, 128, false),
        (2, 1501, 80, true),
        (5, 7, 130, true),
    ] {
        let (got, want, name) = attention(queries, keys, d, causal);
        assert_eq!(name, "FusedAttention");
        assert_close(
            &format!("{queries} queries, {keys} keys, head dim {d}, causal {causal}"),
            &got,
            &want,
            2e-5,
        );
    }
}

/// `sdpa_merged` (`[B, L, Hq·D]`) from the fused kernel against MLX's attention transposed
/// and reshaped, and bit for bit against the fused kernel's own `[B, Hq, L, D]` so laid out:
/// the same arithmetic, only the rows written elsewhere (dot products and BLAS blocks).
#[test]
fn attention_with_the_heads_side_by_side() {
    for (queries, keys, d, causal) in [(1, 11, 16, false), (3, 40, 130, true), (300, 310, 16, true)] {
        let build = move |merged: bool| {
            let q = values(&[2, 8, queries, d], 0.2)?;
            let cache = |seed| values(&[2, 4, keys + 9, d], seed)?.slice(&[0, 0, 0, 0], &[2, 4, keys, d]);
            let (k, v) = (cache(1.3)?, cache(2.9)?);
            let mask = if causal { Mask::Causal } else { Mask::None };
            match merged {
                true => sdpa_merged(&q, &k, &v, 0.25, mask),
                false => {
                    sdpa(&q, &k, &v, 0.25, mask)?
                        .transpose(&[0, 2, 1, 3])?
                        .reshape(&[2, queries, 8 * d])
                }
            }
        };
        let what = format!("{queries} queries, {keys} keys, head dim {d}, causal {causal}");
        let (got, want, name) = both(move || build(true));
        assert_eq!(name, "FusedAttention", "{what}");
        assert_close(&what, &got, &want, 2e-5);
        let (unmerged, _, _) = both(move || build(false));
        assert_eq!(got, unmerged, "{what}: merged against transposed");
    }
}

#[test]
fn swiglu_on_contiguous_and_transposed_inputs() {
    let (got, want, name) = both(|| swiglu(&values(&[3, 40], 0.1)?, &values(&[3, 40], 0.5)?));
    assert_eq!(name, "FusedSwiGLU");
    assert_close("swiglu", &got, &want, 2e-5);

    let (got, want, _) = both(|| {
        let t = |seed| values(&[40, 3], seed)?.transpose(&[1, 0]);
        swiglu(&t(0.1)?, &t(0.5)?)
    });
    assert_close("swiglu, transposed", &got, &want, 2e-5);
}

#[test]
fn other_dtypes_use_mlx_kernels() {
    let (got, want, name) = both(|| {
        let x = values(&[2, 16], 0.4)?.astype(Dtype::Bfloat16)?;
        rms_norm(&x, &values(&[16], 0.8)?.astype(Dtype::Bfloat16)?, 1e-6)
    });
    assert_ne!(name, "FusedRmsNorm");
    assert_close("bfloat16 rms_norm", &got, &want, 0.0);
}

#[test]
fn top_p_breaks_ties_by_id_and_survives_nan_and_infinite_rows() {
    let rows: Vec<f32> = vec![
        1.0,
        1.0,
        1.0,
        1.0, // ties: ids 0 and 1 hold 0.5 before id 2
        0.0,
        f32::NAN,
        3.0,
        f32::NEG_INFINITY, // 3.0 alone holds 0.95
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
    ];
    let got = Worker::for_device(Device::Cpu)
        .unwrap()
        .run(move || {
            let x = Array::from_slice(&rows, &[3, 4])?;
            let p = |p| mlx::fast::top_p_filter(&x, p).map(|f| f.expect("fused on the CPU"));
            Ok((p(0.5)?.to_vec::<f32>()?, p(0.9)?.to_vec::<f32>()?))
        })
        .unwrap();
    let inf = f32::NEG_INFINITY;
    assert_eq!(&got.0[..4], &[1.0, 1.0, inf, inf]);
    assert_eq!(&got.1[4..8], &[inf, inf, 3.0, inf]);
    assert!(got.0[8..].iter().chain(&got.1[8..]).all(|&v| v == inf));
}

#[test]
fn kv_dequantize_equals_mlx_on_cache_slices() {
    for bits in [8, 4] {
        for group in [32, 64, 128] {
            // A [1, 3, 10, 128] cache of which 7 slots are read: rows strided by the capacity.
            let (ours, reference, name) = both(move || {
                let cache = values(&[1, 3, 10, 128], 0.3)?;
                let q = mlx::fast::quantize(&cache, group, bits)?;
                let slice = |a: &Array| a.slice(&[0, 0, 0, 0], &[1, 3, 7, a.dim(3)?]);
                mlx::fast::dequantize_kv(&slice(&q[0])?, &slice(&q[1])?, &slice(&q[2])?, group, bits)
            });
            assert_eq!(name, "KvDequantize");
            assert_close(&format!("{bits}-bit g{group}"), &ours, &reference, 1e-6);
        }
    }
}
