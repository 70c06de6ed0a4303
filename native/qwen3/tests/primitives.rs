//! Each fused primitive against a plain-Rust float32 reference written from the Qwen3
//! equations (no MLX): MLP, attention with GQA + RoPE + KV cache at offset 0 and at a
//! nonzero offset, batch 2, and a whole decoder layer. Tolerance 1e-4 absolute.

mod common;
use common::*;
use mlx::Array;
use qwen3::Model;

const TOL: f32 = 1e-4;

/// `y = W x` for W `[rows, cols]` row-major.
fn matvec(w: &[f32], x: &[f32]) -> Vec<f32> {
    w.chunks(x.len())
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, g)| v * inv * g).collect()
}

/// Rotate pairs (i, i + d/2) by pos · θ^(-2i/d) (the non-interleaved Qwen3 layout).
fn rope(x: &mut [f32], pos: usize, theta: f32) {
    let half = x.len() / 2;
    for i in 0..half {
        let angle = pos as f32 * theta.powf(-2.0 * i as f32 / x.len() as f32);
        let (s, c) = angle.sin_cos();
        let (a, b) = (x[i], x[i + half]);
        x[i] = a * c - b * s;
        x[i + half] = a * s + b * c;
    }
}

fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

type Positions = Vec<Vec<f32>>;

struct Reference {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    o: Vec<f32>,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    in_norm: Vec<f32>,
    post_norm: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
    theta: f32,
    /// Per batch row: cached (rotated) keys and values, one vector per position.
    cache: Vec<(Positions, Positions)>,
}

impl Reference {
    fn new(model: &Model, batch: usize) -> Reference {
        let l = &model.layers[0];
        let c = &model.config;
        Reference {
            q: weights(&l.q_proj),
            k: weights(&l.k_proj),
            v: weights(&l.v_proj),
            o: weights(&l.o_proj),
            q_norm: l.q_norm.to_vec().unwrap(),
            k_norm: l.k_norm.to_vec().unwrap(),
            in_norm: l.input_layernorm.to_vec().unwrap(),
            post_norm: l.post_attention_layernorm.to_vec().unwrap(),
            gate: weights(&l.gate_proj),
            up: weights(&l.up_proj),
            down: weights(&l.down_proj),
            heads: c.num_attention_heads as usize,
            kv_heads: c.num_key_value_heads as usize,
            head_dim: c.head_dim as usize,
            eps: c.rms_norm_eps,
            theta: c.rope_theta(),
            cache: vec![(vec![], vec![]); batch],
        }
    }

    fn mlp(&self, x: &[f32]) -> Vec<f32> {
        let g = matvec(&self.gate, x);
        let u = matvec(&self.up, x);
        let hidden: Vec<f32> = g.iter().zip(&u).map(|(g, u)| silu(*g) * u).collect();
        matvec(&self.down, &hidden)
    }

    /// Attention for row `b` over its new tokens `xs` (already normed), extending the cache.
    fn attention(&mut self, b: usize, xs: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let (hd, group) = (self.head_dim, self.heads / self.kv_heads);
        let mut out = vec![];
        for x in xs {
            let pos = self.cache[b].0.len();
            let heads_of = |w: &[f32], norm: Option<&[f32]>, n: usize| -> Vec<Vec<f32>> {
                let y = matvec(w, x);
                (0..n)
                    .map(|h| {
                        let mut v = y[h * hd..(h + 1) * hd].to_vec();
                        if let Some(g) = norm {
                            v = rms_norm(&v, g, self.eps);
                            rope(&mut v, pos, self.theta);
                        }
                        v
                    })
                    .collect()
            };
            let q = heads_of(&self.q, Some(&self.q_norm), self.heads);
            let k = heads_of(&self.k, Some(&self.k_norm), self.kv_heads);
            let v = heads_of(&self.v, None, self.kv_heads);
            self.cache[b].0.push(k.concat());
            self.cache[b].1.push(v.concat());
            let (keys, values) = &self.cache[b];
            let mut attended = vec![];
            for (h, qh) in q.iter().enumerate() {
                let kvh = h / group;
                let scores: Vec<f32> = keys
                    .iter()
                    .map(|k| {
                        qh.iter()
                            .zip(&k[kvh * hd..(kvh + 1) * hd])
                            .map(|(a, b)| a * b)
                            .sum::<f32>()
                            / (hd as f32).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f32::MIN, f32::max);
                let e: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f32 = e.iter().sum();
                attended.extend((0..hd).map(|d| {
                    values
                        .iter()
                        .zip(&e)
                        .map(|(v, w)| v[kvh * hd + d] * w / z)
                        .sum::<f32>()
                }));
            }
            out.push(matvec(&self.o, &attended));
        }
        out
    }

    fn layer(&mut self, b: usize, xs: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let normed: Vec<Vec<f32>> = xs.iter().map(|x| rms_norm(x, &self.in_norm, self.eps)).collect();
        let attn = self.attention(b, &normed);
        xs.iter()
            .zip(attn)
            .map(|(x, a)| {
                let h: Vec<f32> = x.iter().zip(&a).map(|(x, a)| x + a).collect();
                let m = self.mlp(&rms_norm(&h, &self.post_norm, self.eps));
                h.iter().zip(&m).map(|(h, m)| h + m).collect()
            })
            .collect()
    }
}

/// Deterministic inputs `[batch][len][hidden]`.
fn inputs(batch: usize, len: usize, hidden: usize, seed: u32) -> Vec<Vec<Vec<f32>>> {
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(12345);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state as f32 / u32::MAX as f32) * 2.0 - 1.0
    };
    (0..batch)
        .map(|_| (0..len).map(|_| (0..hidden).map(|_| next()).collect()).collect())
        .collect()
}

fn to_array(x: &[Vec<Vec<f32>>]) -> Array {
    let (b, l, h) = (x.len() as i32, x[0].len() as i32, x[0][0].len() as i32);
    Array::from_slice(&x.concat().concat(), &[b, l, h]).unwrap()
}

fn assert_close(got: &Array, want: &[Vec<Vec<f32>>], what: &str) {
    let got = got.to_vec::<f32>().unwrap();
    let diff = max_abs_diff(&got, &want.concat().concat());
    assert!(diff <= TOL, "{what}: max |Δ| = {diff}");
}

#[test]
fn mlp_matches_the_reference() {
    on_device(|| {
        let model = load("dense-f32-tied", None)?;
        let r = Reference::new(&model, 1);
        let x = inputs(2, 3, model.dims.hidden as usize, 1);
        let want: Vec<Vec<Vec<f32>>> = x
            .iter()
            .map(|row| row.iter().map(|t| r.mlp(t)).collect())
            .collect();
        assert_close(&model.mlp(0, &to_array(&x))?, &want, "mlp");
        Ok(())
    });
}

#[test]
fn attention_with_gqa_at_offset_zero_and_after_a_prefix_batch_2() {
    on_device(|| {
        let model = load("dense-f32-tied", None)?;
        assert!(
            model.dims.heads > model.dims.kv_heads,
            "fixture must exercise GQA"
        );
        let hidden = model.dims.hidden as usize;
        let mut r = Reference::new(&model, 2);
        let mut cache = model.new_cache(2, 16)?;
        // Offset 0: a 3-token prefill (causal within the chunk).
        let first = inputs(2, 3, hidden, 2);
        let want: Vec<_> = (0..2).map(|b| r.attention(b, &first[b])).collect();
        assert_close(
            &model.attention(0, &to_array(&first), &mut cache)?,
            &want,
            "attention @0",
        );
        // Offset 3: four more tokens attend to the cached three and causally to each other.
        let second = inputs(2, 4, hidden, 3);
        let want: Vec<_> = (0..2).map(|b| r.attention(b, &second[b])).collect();
        assert_close(
            &model.attention(0, &to_array(&second), &mut cache)?,
            &want,
            "attention @3",
        );
        // One decode step at offset 7.
        let third = inputs(2, 1, hidden, 4);
        let want: Vec<_> = (0..2).map(|b| r.attention(b, &third[b])).collect();
        assert_close(
            &model.attention(0, &to_array(&third), &mut cache)?,
            &want,
            "attention @7",
        );
        assert_eq!(cache.layer_offset(0), 8);
        Ok(())
    });
}

#[test]
fn whole_layer_matches_the_reference() {
    on_device(|| {
        let model = load("dense-f32-tied", None)?;
        let hidden = model.dims.hidden as usize;
        let mut r = Reference::new(&model, 2);
        let mut cache = model.new_cache(2, 16)?;
        for (step, len) in [(5, 4), (6, 1)] {
            let x = inputs(2, len, hidden, step);
            let want: Vec<_> = (0..2).map(|b| r.layer(b, &x[b])).collect();
            assert_close(&model.layer(0, &to_array(&x), &mut cache)?, &want, "layer");
        }
        Ok(())
    });
}

#[test]
fn cache_overflow_and_bad_shapes_are_rejected_before_graph_building() {
    on_device(|| {
        let model = load("dense-f32-tied", None)?;
        let hidden = model.dims.hidden as usize;
        let mut cache = model.new_cache(1, 4)?;
        let err = model
            .layer(0, &to_array(&inputs(1, 5, hidden, 1)), &mut cache)
            .unwrap_err();
        assert_eq!(err.kind(), "cache_overflow");
        assert_eq!(
            cache.layer_offset(0),
            0,
            "a refused write must not move the offset"
        );
        let err = model
            .layer(0, &to_array(&inputs(2, 1, hidden, 1)), &mut cache)
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_argument");
        let err = model
            .layer(9, &to_array(&inputs(1, 1, hidden, 1)), &mut cache)
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_argument");
        Ok(())
    });
}
