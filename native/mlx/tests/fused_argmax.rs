//! The greedy sampler's argmax node (cpp/fused_argmax.cc, `mlx::fast::argmax_last`) against
//! MLX's own argmax, which must pick the same index in every row: ties (the first wins),
//! NaNs (never picked, unless a row starts with one: then MLX keeps index 0), ±inf, signed
//! zeros, rows shorter than its 16 lanes and of a vocabulary's length, a strided view.

use mlx::fast::argmax_last;
mod common;
use common::on_cpu;
use mlx::{Array, Reduce};

/// Rows of `len` values from a seed; every row is a case.
fn rows(len: usize) -> Vec<Vec<f32>> {
    let wave = |seed: f32| -> Vec<f32> { (0..len).map(|i| (i as f32 * 0.61 + seed).sin() * 4.0).collect() };
    let mut cases = vec![wave(0.3), wave(1.7)];
    let mut tie = wave(2.2);
    let top = tie.iter().cloned().fold(f32::MIN, f32::max);
    tie[len / 3] = top; // an earlier copy of the maximum
    cases.push(tie);
    let mut nans = wave(0.9);
    for i in (0..len).step_by(5) {
        nans[i] = f32::NAN;
    }
    cases.push(nans);
    let mut first_nan = wave(1.1);
    first_nan[0] = f32::NAN;
    cases.push(first_nan);
    let mut infinities = wave(0.5);
    infinities[len / 2] = f32::INFINITY;
    infinities[len - 1] = f32::INFINITY;
    cases.push(infinities);
    cases.push((0..len).map(|i| if i % 3 == 0 { 0.0 } else { -0.0 }).collect());
    cases.push(vec![f32::NEG_INFINITY; len]);
    cases.push(vec![f32::NAN; len]);
    cases
}

fn both(values: Vec<f32>, shape: [i32; 2], transposed: bool) -> (Vec<u32>, Vec<u32>, String) {
    on_cpu(move || {
        let x = Array::from_slice(&values, &shape)?;
        let x = if transposed { x.transpose(&[1, 0])? } else { x };
        let ours = argmax_last(&x)?.expect("the node applies");
        let name = ours.primitive_name();
        let want = x.reduce(Reduce::Argmax, -1, false)?;
        Ok((ours.to_vec::<u32>()?, want.to_vec::<u32>()?, name))
    })
}

#[test]
fn the_node_picks_mlxs_index_in_every_row() {
    for len in [1, 7, 16, 33, 151_936] {
        let cases = rows(len);
        let count = cases.len() as i32;
        let (ours, want, name) = both(cases.concat(), [count, len as i32], false);
        assert_eq!(name, "FusedArgmax");
        assert_eq!(ours, want, "rows of {len}");
    }
}

#[test]
fn a_strided_view_reads_its_own_rows() {
    // Stored [len, rows] and read transposed: each row's values lie `rows` apart.
    let cases = rows(40);
    let count = cases.len();
    let stored: Vec<f32> = (0..40).flat_map(|i| cases.iter().map(move |c| c[i])).collect();
    let (ours, want, _) = both(stored, [40, count as i32], true);
    assert_eq!(ours, want);
}
