use mlx::{Array, Binary, Device, Dtype, Pinned, Reduce, Worker};

fn cpu() -> std::sync::Arc<Worker> {
    Worker::for_device(Device::Cpu).unwrap()
}

#[test]
fn every_dtype_round_trips_through_bytes() {
    for dtype in Dtype::ALL {
        let bytes: Vec<u8> = (0..6 * dtype.size()).map(|i| (i * 37 % 251) as u8).collect();
        let bytes = if dtype == Dtype::Bool {
            bytes.iter().map(|b| b & 1).collect()
        } else {
            bytes
        };
        let expected = bytes.clone();
        let (back, shape, got) = cpu()
            .run(move || {
                let a = Array::from_bytes(&bytes, &[2, 3], dtype)?;
                Ok((a.to_bytes()?, a.shape(), a.dtype()))
            })
            .unwrap();
        assert_eq!((back, shape, got), (expected, vec![2, 3], dtype), "{dtype:?}");
    }
}

#[test]
fn matmul_matches_a_plain_rust_product() {
    let a: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
    let b: Vec<f32> = (0..20).map(|i| (i as f32).sin()).collect();
    let mut want = vec![0f32; 15];
    for i in 0..3 {
        for j in 0..5 {
            want[i * 5 + j] = (0..4).map(|k| a[i * 4 + k] * b[k * 5 + j]).sum();
        }
    }
    let got = cpu()
        .run(move || {
            let x = Array::from_slice(&a, &[3, 4])?;
            let y = Array::from_slice(&b, &[4, 5])?;
            x.matmul(&y)?.to_vec::<f32>()
        })
        .unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}

/// `x · Wᵀ` on every path of `linear`: the sgemv primitive (one f32 row, also from a
/// non-contiguous view), the few-rows kernel (3 rows) and the matmul fallback (a weight not
/// yet evaluated).
#[test]
fn linear_matches_a_plain_rust_product_on_every_path() {
    let (n, k) = (37, 19);
    let w: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 8.0).collect();
    let xs: Vec<f32> = (0..3 * k).map(|i| (i as f32 * 0.37).cos()).collect();
    let reference = |row: &[f32]| -> Vec<f32> {
        (0..n)
            .map(|j| (0..k).map(|c| row[c] * w[j * k + c]).sum())
            .collect()
    };
    let want_rows: Vec<f32> = xs.chunks(k).flat_map(reference).collect();
    let (wc, xc) = (w.clone(), xs.clone());
    let (k32, n32) = (k as i32, n as i32);
    let got = cpu()
        .run(move || {
            let w = Array::from_slice(&wc, &[n32, k32])?;
            w.eval()?;
            let rows = Array::from_slice(&xc, &[3, k32])?;
            let one = rows.slice(&[0, 0], &[1, k32])?.reshape(&[1, 1, k32])?;
            // Row 2 of the transpose of a [k, 3] array: a strided, non-contiguous row.
            let columns: Vec<f32> = (0..k * 3).map(|i| xc[(i % 3) * k + i / 3]).collect();
            let strided = Array::from_slice(&columns, &[k32, 3])?
                .transpose(&[1, 0])?
                .slice(&[2, 0], &[3, k32])?;
            let lazy_w = w.multiply(&Array::scalar(1.0f32)?)?;
            Ok(vec![
                one.linear(&w)?.to_vec::<f32>()?,
                strided.linear(&w)?.to_vec::<f32>()?,
                rows.linear(&w)?.to_vec::<f32>()?,
                rows.slice(&[1, 0], &[2, k32])?.linear(&lazy_w)?.to_vec::<f32>()?,
            ])
        })
        .unwrap();
    let wants = [
        reference(&xs[..k]),
        reference(&xs[2 * k..]),
        want_rows,
        reference(&xs[k..2 * k]),
    ];
    for (case, (g, want)) in got.iter().zip(&wants).enumerate() {
        assert_eq!(g.len(), want.len(), "case {case}");
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "case {case}: {g:?} vs {want:?}");
        }
    }
    assert!(Array::has_blas_gemv(), "this CPU build should find cblas_sgemv");
}

/// The few-rows kernel for every row count it takes (2–8) and the fallbacks around it (1 and
/// 9 rows), on a weight big enough to be split across threads and a width with a tail
/// beyond the 8-wide vectors. Reference: f64 sums in plain Rust; tolerance 1e-3 absolute
/// (sums of 1,030 products of magnitude ≤ 1).
#[test]
fn linear_with_one_to_nine_rows_matches_a_plain_rust_product() {
    let (n, k) = (2053usize, 1030usize);
    let w: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7919 % 2003) as f32 / 1001.5) - 1.0)
        .collect();
    let xs: Vec<f32> = (0..9 * k).map(|i| (i as f32 * 0.013).sin()).collect();
    let want = |rows: usize| -> Vec<f32> {
        (0..rows)
            .flat_map(|r| {
                let (x, w) = (&xs[r * k..(r + 1) * k], &w);
                (0..n).map(move |j| (0..k).map(|c| x[c] as f64 * w[j * k + c] as f64).sum::<f64>() as f32)
            })
            .collect()
    };
    let (wc, xc) = (w.clone(), xs.clone());
    let got = cpu()
        .run(move || {
            let w = Array::from_slice(&wc, &[n as i32, k as i32])?;
            w.eval()?;
            (1..=9)
                .map(|rows| {
                    let x = Array::from_slice(&xc[..rows * k], &[rows as i32, k as i32])?;
                    x.linear(&w)?.to_vec::<f32>()
                })
                .collect::<mlx::Result<Vec<_>>>()
        })
        .unwrap();
    for (rows, g) in (1..=9).zip(&got) {
        let worst = g
            .iter()
            .zip(want(rows))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            worst < 1e-3 && g.iter().all(|v| v.is_finite()),
            "{rows} rows: off by {worst}"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        assert!(
            Array::has_few_rows_kernel(),
            "this CPU has AVX2 and FMA: the kernel should run"
        );
    }
}

#[test]
fn reductions_and_broadcasting() {
    let (sum, argmax) = cpu()
        .run(|| {
            let x = Array::from_slice(&[1i32, 5, 2, 7, 3, 0], &[2, 3])?;
            let y = x.binary(Binary::Multiply, &Array::from_slice(&[2i32], &[1])?)?;
            Ok((
                y.reduce(Reduce::Sum, 1, false)?.to_vec::<i32>()?,
                x.reduce(Reduce::Argmax, 1, false)?.to_vec::<u32>()?,
            ))
        })
        .unwrap();
    assert_eq!(sum, vec![16, 20]);
    assert_eq!(argmax, vec![1, 0]);
}

#[test]
fn bad_input_is_a_tagged_error_not_a_crash() {
    let err = cpu()
        .run(|| Array::from_bytes(&[0u8; 7], &[2, 1], Dtype::Float32).map(drop))
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_argument");
    let err = cpu()
        .run(|| Array::from_bytes(&[], &[-1], Dtype::Float32).map(drop))
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_argument");
    // Shape mismatch detected inside MLX: a C++ exception, caught in the bridge.
    let err = cpu()
        .run(|| {
            let a = Array::zeros(&[2, 3], Dtype::Float32)?;
            let b = Array::zeros(&[4, 5], Dtype::Float32)?;
            a.matmul(&b).map(drop)
        })
        .unwrap_err();
    assert_eq!(err.kind(), "mlx");
    assert!(
        err.to_string().contains("matmul") || err.to_string().contains("shape"),
        "{err}"
    );
}

#[test]
fn a_panicking_job_becomes_an_error_and_the_worker_lives_on() {
    let err = cpu().run(|| -> mlx::Result<()> { panic!("boom") }).unwrap_err();
    assert!(err.to_string().contains("boom"));
    assert_eq!(cpu().run(|| Ok(1 + 1)).unwrap(), 2);
}

#[test]
fn pinned_values_are_only_readable_on_their_worker() {
    let w = cpu();
    let w2 = w.clone();
    let pinned = w
        .run(move || Pinned::new(Array::zeros(&[4], Dtype::Float32)?, &w2))
        .unwrap();
    assert_eq!(pinned.get().unwrap_err().kind(), "wrong_device");
    let pinned = std::sync::Arc::new(pinned);
    let p = pinned.clone();
    assert_eq!(w.run(move || Ok(p.get()?.shape())).unwrap(), vec![4]);
}

#[test]
fn gpu_is_reported_unavailable_on_a_cpu_build() {
    if !Device::Gpu.is_available() {
        assert_eq!(
            Worker::for_device(Device::Gpu).err().unwrap().kind(),
            "device_unavailable"
        );
    }
}
