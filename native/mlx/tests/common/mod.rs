//! What the packed-kernel tests share: deterministic inputs, the CPU worker, the kernel
//! builds this CPU runs, and the bound they are held to.
#![allow(dead_code)]

use mlx::fast::use_packed_isa;
use mlx::{Array, Device, Result, Worker};

/// Deterministic values in (-2, 2), in a `shape` array.
pub fn values(shape: &[i32], seed: f32) -> Result<Array> {
    let n: i32 = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| 2.0 * ((i as f32) * 0.731 + seed).sin()).collect();
    Array::from_slice(&data, shape)
}

pub fn on_cpu<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> T {
    Worker::for_device(Device::Cpu).unwrap().run(f).unwrap()
}

/// The builds this CPU runs: the portable one always, AVX2 and AVX-512 where present.
pub fn isas() -> Vec<&'static str> {
    on_cpu(|| {
        let found = ["avx512", "avx2", "portable"]
            .into_iter()
            .filter(|isa| use_packed_isa(isa))
            .collect();
        use_packed_isa("");
        Ok(found)
    })
}

mod diff;
#[allow(unused_imports)] // not every test uses it
pub use diff::max_abs_diff;

/// Within 1e-5 of the largest |want| (float32 sums in another order).
pub fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = max_abs_diff(got, want);
    assert!(worst <= 1e-5 * scale, "{what}: max |Δ| {worst} > 1e-5 · {scale}");
}
