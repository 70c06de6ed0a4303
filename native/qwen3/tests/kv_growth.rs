//! KV buffers start with `KV_STEP` slots and grow by whole steps as tokens arrive, up to
//! the capacity: what was written survives each growth, reads see exactly the tokens
//! written, `nbytes` is the full cache's size throughout, and a copied prefix longer than
//! the destination's first step grows it too. Plain, float16 and 8-bit quantized buffers.

mod common;
use common::on_device;
use mlx::{Array, Dtype};
use qwen3::kv_buffer::{KvQuant, KV_STEP};
use qwen3::KvCache;

/// Token t's keys: every value t + c/1000 (c the position along D), as `[1, 2, n, 64]`.
fn tokens(from: i32, n: i32) -> qwen3::Result<Array> {
    let data: Vec<f32> = (0..2)
        .flat_map(|_| (from..from + n).flat_map(|t| (0..64).map(move |c| t as f32 + c as f32 / 1000.0)))
        .collect();
    Ok(Array::from_slice(&data, &[1, 2, n, 64])?)
}

#[test]
fn buffers_grow_by_steps_and_keep_what_they_hold() {
    for quant in [
        None,
        Some(KvQuant {
            bits: 16,
            group_size: 64,
        }),
        Some(KvQuant {
            bits: 8,
            group_size: 64,
        }),
    ] {
        let (slots, sizes, held, want) = on_device(move || {
            let capacity = 2 * KV_STEP + 88;
            let mut cache = KvCache::new(1, 1, 2, capacity, 64, Dtype::Float32, quant)?;
            let full = cache.nbytes();
            let mut slots = vec![cache.layer_slots(0)];
            let mut sizes = vec![full];
            // 300 tokens in three writes, then one by one to the capacity.
            let mut at = 0;
            for n in [1, 150, 149] {
                cache.update(0, &tokens(at, n)?, &tokens(at, n)?)?;
                at += n;
                slots.push(cache.layer_slots(0));
                sizes.push(cache.nbytes());
            }
            while at < capacity {
                cache.update(0, &tokens(at, 1)?, &tokens(at, 1)?)?;
                at += 1;
            }
            slots.push(cache.layer_slots(0));
            let (keys, _) = cache.held()?.remove(0);
            Ok((
                slots,
                sizes,
                keys.to_vec::<f32>()?,
                tokens(0, capacity)?.to_vec::<f32>()?,
            ))
        });
        assert_eq!(
            slots,
            vec![KV_STEP, KV_STEP, KV_STEP, 2 * KV_STEP, 2 * KV_STEP + 88],
            "{quant:?}"
        );
        assert!(
            sizes.iter().all(|&s| s == sizes[0]),
            "{quant:?}: nbytes {sizes:?}"
        );
        // 8-bit groups of 64 round each value to 1/255 of its group's range (≤ 0.063 here);
        // float16 to 11 significant bits (values up to 600 here: within 600 · 2⁻¹¹ = 0.29).
        let bound = match quant {
            None => 0.0,
            Some(q) if q.bits == 16 => 0.3,
            Some(_) => 0.002,
        };
        let worst = common::max_abs_diff(&held, &want);
        assert_eq!(held.len(), want.len());
        assert!(worst <= bound, "{quant:?}: off by {worst}");
    }
}

#[test]
fn a_copied_prefix_grows_the_destination() {
    let (slots, held, want) = on_device(|| {
        let mut src = KvCache::new(1, 1, 2, 1024, 64, Dtype::Float32, None)?;
        src.update(0, &tokens(0, 400)?, &tokens(0, 400)?)?;
        let mut dst = KvCache::new(1, 1, 2, 1024, 64, Dtype::Float32, None)?;
        dst.copy_prefix(&src, 300)?;
        let (keys, _) = dst.held()?.remove(0);
        Ok((
            dst.layer_slots(0),
            keys.to_vec::<f32>()?,
            tokens(0, 300)?.to_vec::<f32>()?,
        ))
    });
    assert_eq!(slots, 2 * KV_STEP);
    assert_eq!(held, want);
}
