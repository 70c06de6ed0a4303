//! The products of one decode step of a Qwen3-0.6B-shaped model (28 layers of q, k, v, o,
//! gate, up, down, and the tied 151,936-row LM head), one input row, with the weights in
//! each stored form: float32 (BLAS sgemv, today's widened path), bf16, 8-bit and 4-bit
//! (the packed kernels, each build this CPU runs). Random weights; the products are
//! evaluated as one graph, as a decode step is. Prints ms per step and the rate the weight
//! bytes were read at. "int8" rows run `quantized_linear_int8` (AVX-512 VNNI CPUs).
//!   cargo run --release -p mlx --example packed_products [-- ROWS]
//! LAYERS=n (default 28; 0: the LM head alone) and FORMS=f32,bf16,8-bit,4-bit narrow it.

use mlx::fast::{quantize, quantized_linear, quantized_linear_int8, use_packed_isa};
use mlx::{Array, Device, Dtype, Result, Worker};
use std::time::Instant;

const HIDDEN: i32 = 1024;
const SHAPES: [(i32, i32); 7] = [
    (2048, HIDDEN),
    (1024, HIDDEN),
    (1024, HIDDEN),
    (HIDDEN, 2048),
    (3072, HIDDEN),
    (3072, HIDDEN),
    (HIDDEN, 3072),
];

enum Weight {
    Dense(Array),
    Packed(Array, Array, Array, i32),
}

thread_local! {
    /// Whether packed products run the int8 kernels (`quantized_linear_int8`).
    static INT8: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Weight {
    fn times(&self, x: &Array) -> Result<Array> {
        match self {
            Weight::Dense(w) => x.linear(w),
            Weight::Packed(w, s, b, bits) if INT8.get() => quantized_linear_int8(x, w, s, b, 64, *bits),
            Weight::Packed(w, s, b, bits) => quantized_linear(x, w, s, b, 64, *bits),
        }
    }
    fn bytes(&self) -> usize {
        match self {
            Weight::Dense(w) => w.nbytes(),
            Weight::Packed(w, s, b, _) => w.nbytes() + s.nbytes() + b.nbytes(),
        }
    }
}

/// Uniform in [-scale/2, scale/2).
fn random(shape: &[i32], seed: u64, scale: f32) -> Result<Array> {
    let u = mlx::random::uniform(shape, Dtype::Float32, &mlx::random::key(seed)?)?;
    u.add(&Array::from_slice(&[-0.5f32], &[1])?)?
        .multiply(&Array::from_slice(&[scale], &[1])?)
}

fn weights(form: &str) -> Result<Vec<Weight>> {
    let layers: usize = std::env::var("LAYERS").map_or(28, |v| v.parse().unwrap());
    let mut shapes: Vec<(i32, i32)> = (0..layers).flat_map(|_| SHAPES).collect();
    shapes.push((151_936, HIDDEN));
    shapes
        .iter()
        .enumerate()
        .map(|(i, &(n, k))| {
            let w = random(&[n, k], i as u64, 0.1)?;
            let weight = match form {
                "f32" => Weight::Dense(w),
                "bf16" => Weight::Dense(w.astype(Dtype::Bfloat16)?),
                bits => {
                    let bits: i32 = bits.trim_end_matches("-bit").parse().expect("bits");
                    let q = quantize(&w, 64, bits)?;
                    let s = q[1].astype(Dtype::Bfloat16)?;
                    let b = q[2].astype(Dtype::Bfloat16)?;
                    Weight::Packed(q[0].clone(), s, b, bits)
                }
            };
            match &weight {
                Weight::Dense(a) => mlx::eval(&[a])?,
                Weight::Packed(a, s, b, _) => mlx::eval(&[a, s, b])?,
            }
            Ok(weight)
        })
        .collect()
}

/// Median ms of one step (all products of `rows` rows, one eval), over 15 steps.
fn step_ms(weights: &[Weight], rows: i32) -> Result<f64> {
    let xs = [
        random(&[rows, HIDDEN], 7, 2.0)?,
        random(&[rows, 2048], 8, 2.0)?,
        random(&[rows, 3072], 9, 2.0)?,
    ];
    let mut times = vec![];
    for _ in 0..16 {
        let start = Instant::now();
        let outs = weights
            .iter()
            .map(|w| {
                let x = xs.iter().find(|x| x.dim(1).ok() == Some(in_features(w))).unwrap();
                w.times(x)
            })
            .collect::<Result<Vec<_>>>()?;
        mlx::eval(&outs.iter().collect::<Vec<_>>())?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.remove(0);
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn in_features(w: &Weight) -> i32 {
    match w {
        Weight::Dense(a) => a.dim(1).unwrap(),
        Weight::Packed(a, _, _, bits) => a.dim(1).unwrap() * 32 / bits,
    }
}

fn main() {
    let rows: i32 = std::env::args().nth(1).map_or(1, |r| r.parse().expect("rows"));
    let report = Worker::for_device(Device::Cpu)
        .unwrap()
        .run(move || {
            let mut lines = vec![];
            for form in std::env::var("FORMS")
                .unwrap_or("f32,bf16,8-bit,4-bit".into())
                .split(",")
            {
                let ws = weights(form)?;
                let bytes: usize = ws.iter().map(Weight::bytes).sum();
                let isas: &[&str] = match form {
                    "f32" => &[""],
                    "bf16" => &["avx512", "avx2", "portable"],
                    _ => &["int8", "avx512", "avx2", "portable"],
                };
                for isa in isas {
                    INT8.set(*isa == "int8");
                    if !use_packed_isa(if *isa == "int8" { "" } else { isa }) {
                        continue;
                    }
                    let ms = step_ms(&ws, rows)?;
                    lines.push(format!(
                        "{form:>6} {:>9}: {ms:7.2} ms per step, {:6.1} MB read at {:5.1} GB/s",
                        if isa.is_empty() { "blas" } else { isa },
                        bytes as f64 / 1e6,
                        bytes as f64 / ms / 1e6
                    ));
                }
                use_packed_isa("");
            }
            Ok(lines)
        })
        .unwrap();
    println!("{rows} row(s) per product");
    for line in report {
        println!("{line}");
    }
}
