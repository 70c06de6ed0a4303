//! What the mlx and qwen3 tests compare float32 results with (qwen3's tests include this
//! file by path).

/// The largest |a - b| of two slices of one length; a difference that is not a number
/// counts as infinite (f32::max would drop it).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let gap = |(x, y): (&f32, &f32)| if x == y { 0.0 } else { (x - y).abs() };
    a.iter()
        .zip(b)
        .map(gap)
        .map(|d| if d.is_nan() { f32::INFINITY } else { d })
        .fold(0.0, f32::max)
}
