//! A decoder layer as one CPU node (`mlx::fast::decoder_layer`), and a decode step's layers
//! as one (`mlx::fast::decoder_stack`, what `Model::forward` builds for ≤ 8 tokens), against
//! the same layers built op by op: the node runs the same kernels in the same order, so the logits must be equal
//! to the bit, through prompts short enough for the node (≤ 8 tokens) and longer ones that
//! go op by op and read what the node wrote, steps chained lazily (each step's token the
//! unevaluated argmax of the last, as generation queues them), int8 products on and off,
//! a windowed cache that drops tokens while the node writes in place, the cache read and
//! copied (`held`, `copy_prefix`) after a step whose output was never evaluated, and a cache
//! stored as float16.

mod common;
use common::*;
use mlx::Array;
use qwen3::kv_buffer::KvQuant;
use qwen3::{sampler, KvCache, LoadOptions, Model};

const VARIANTS: [&str; 5] = [
    "q4-g32-untied",
    "q4-g64-tied",
    "q8-g128-untied",
    "dense-bf16-untied",
    "dense-f16-untied",
];

/// A float16 cache: the node writes and reads it where it lies, op by op it is rounded on
/// write and widened on read, and the logits must still agree to the bit.
const HALF: Option<KvQuant> = Some(KvQuant {
    bits: 16,
    group_size: 64,
});

/// Every logit of a fixed sequence of calls: a 5-token prompt, 3 one-token steps, a
/// 2-token step, a 12-token chunk, then 4 steps chained lazily and evaluated together.
fn sequence(model: &Model, cache: &mut KvCache) -> qwen3::Result<Vec<f32>> {
    let mut all = vec![];
    let step = |tokens: &[u32], cache: &mut KvCache| -> qwen3::Result<Vec<f32>> {
        f32s(&model.forward(&ids(tokens)?, cache, false)?)
    };
    all.extend(step(&[5, 9, 2, 77, 31], cache)?);
    for t in [4, 18, 250] {
        all.extend(step(&[t], cache)?);
    }
    all.extend(step(&[12, 6], cache)?);
    all.extend(step(&[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8], cache)?);
    let mut token = Array::from_slice(&[7u32], &[1, 1])?;
    let mut lazy = vec![];
    for _ in 0..4 {
        let logits = model.forward(&token, cache, true)?;
        token = sampler::greedy(&logits)?.reshape(&[1, 1])?;
        lazy.push(logits);
    }
    for logits in &lazy {
        all.extend(f32s(logits)?);
    }
    Ok(all)
}

/// One token at a time through a window of 12 slots keeping 2, past where it drops tokens.
fn windowed(model: &Model, kv: Option<KvQuant>) -> qwen3::Result<Vec<f32>> {
    let mut cache = model.new_cache_quantized(1, 12, kv)?;
    cache.set_window(2)?;
    let mut all = vec![];
    for t in 0..20u32 {
        all.extend(f32s(&model.forward(
            &ids(&[(t * 37 + 5) % 200])?,
            &mut cache,
            true,
        )?)?);
    }
    Ok(all)
}

/// Every key and value `cache` holds, and those of a cache its prefix is copied into, after
/// a step that nothing evaluates (the writes must still come before the reads).
fn read_after_a_lazy_step(
    model: &Model,
    cache: &mut KvCache,
    kv: Option<KvQuant>,
) -> qwen3::Result<Vec<f32>> {
    let _never_evaluated = model.forward(&ids(&[9])?, cache, true)?;
    let mut copy = model.new_cache_quantized(1, 64, kv)?;
    copy.copy_prefix(cache, cache.offset())?;
    let _never_evaluated = model.forward(&ids(&[21])?, cache, true)?;
    let mut all = vec![];
    for (keys, values) in cache.held()?.iter().chain(&copy.held()?) {
        all.extend(f32s(keys)?);
        all.extend(f32s(values)?);
    }
    Ok(all)
}

/// The sequence's and the window's logits, and the primitive layer 0's output comes from,
/// with keys and values stored as `kv` says (None: float32).
fn run(
    variant: &'static str,
    int8: bool,
    one_node: bool,
    kv: Option<KvQuant>,
) -> (Vec<f32>, Vec<f32>, [String; 2]) {
    on_device(move || {
        let was = mlx::fast::set_fused_layer(one_node);
        let opts = LoadOptions {
            int8_activations: int8,
            ..LoadOptions::default()
        };
        let model = Model::load(fixtures().join(variant), test_device(), opts, |_| {})?;
        let mut cache = model.new_cache_quantized(1, 64, kv)?;
        let mut logits = sequence(&model, &mut cache)?;
        logits.extend(read_after_a_lazy_step(&model, &mut cache, kv)?);
        let window = windowed(&model, kv)?;
        let stack = model.layers(&model.embed(&ids(&[12])?)?, &mut cache)?;
        let h = model.embed(&ids(&[11])?)?;
        let names = [
            stack.primitive_name(),
            model.layer(0, &h, &mut cache)?.primitive_name(),
        ];
        mlx::fast::set_fused_layer(was);
        Ok((logits, window, names))
    })
}

#[test]
fn one_node_layers_give_the_op_by_op_logits_to_the_bit() {
    if test_device() != mlx::Device::Cpu {
        return; // the node is a CPU kernel
    }
    for variant in VARIANTS {
        for (int8, kv) in [(false, None), (true, None), (true, HALF)] {
            let (fused, fused_window, names) = run(variant, int8, true, kv);
            let (reference, reference_window, reference_names) = run(variant, int8, false, kv);
            assert_eq!(
                names,
                ["FusedDecoderStack", "FusedDecoderLayer"],
                "{variant} int8 {int8} {kv:?}: the step's layers were not one node, or a layer not one"
            );
            assert!(!reference_names.iter().any(|n| n.starts_with("FusedDecoder")));
            assert_eq!(fused.len(), reference.len());
            let diff = max_abs_diff(&fused, &reference);
            let window_diff = max_abs_diff(&fused_window, &reference_window);
            assert!(
                diff == 0.0 && window_diff == 0.0,
                "{variant} int8 {int8} {kv:?}: max |Δlogit| {diff:e}, windowed {window_diff:e}"
            );
        }
    }
}

#[test]
fn the_node_is_not_built_where_it_does_not_apply() {
    // A quantized KV cache, a layer whose matrices are packed differently (q-mixed-tied's
    // layer 1 has an 8-bit down_proj) and float32-widened weights go op by op.
    let names = on_device(|| {
        let mut names = vec![];
        let quantized = load("q4-g64-tied", None)?;
        let quant = KvQuant {
            bits: 8,
            group_size: 32,
        };
        let mut cache = quantized.new_cache_quantized(1, 16, Some(quant))?;
        let h = quantized.embed(&ids(&[11])?)?;
        names.push(quantized.layer(0, &h, &mut cache)?.primitive_name());
        let mut cache = quantized.new_cache_quantized(1, 16, Some(quant))?;
        names.push(quantized.layers(&h, &mut cache)?.primitive_name());
        for (variant, storage, layer) in [
            ("q-mixed-tied", None, 1),
            ("q4-g64-tied", Some(qwen3::Storage::Widened), 0),
        ] {
            let model = load_as(variant, None, storage)?;
            let mut cache = model.new_cache(1, 16)?;
            let h = model.embed(&ids(&[11])?)?;
            names.push(model.layer(layer, &h, &mut cache)?.primitive_name());
            let mut cache = model.new_cache(1, 16)?;
            names.push(model.layers(&h, &mut cache)?.primitive_name());
        }
        Ok(names)
    });
    assert_eq!(names.len(), 6);
    assert!(names.iter().all(|n| !n.starts_with("FusedDecoder")), "{names:?}");
}

/// The node holds its layer's norms and matrices itself (they are not graph inputs): a step
/// built, then its model dropped and the freed memory written over, must still give the
/// logits of the same step with the model kept.
#[test]
fn a_step_outlives_the_model_it_was_built_from() {
    if test_device() != mlx::Device::Cpu {
        return;
    }
    let step = |drop_model: bool| -> qwen3::Result<Vec<f32>> {
        let model = load("q4-g64-tied", None)?;
        let mut cache = model.new_cache(1, 16)?;
        model.forward(&ids(&[5, 9, 2])?, &mut cache, true)?.eval()?;
        let logits = model.forward(&ids(&[7])?, &mut cache, true)?;
        let mut other = model.new_cache(1, 16)?;
        let h = model.embed(&ids(&[7])?)?;
        assert_eq!(
            model.layer(0, &h, &mut other)?.primitive_name(),
            "FusedDecoderLayer"
        );
        let mut scribbles = vec![];
        if drop_model {
            drop(model);
            for size in (4..22).map(|shift| 1usize << shift) {
                for _ in 0..8 {
                    scribbles.push(Array::from_slice(&vec![0x7fu8; size], &[size as i32])?);
                }
            }
        }
        f32s(&logits)
    };
    let (kept, dropped) = on_device(move || Ok((step(false)?, step(true)?)));
    let diff = max_abs_diff(&kept, &dropped);
    assert!(diff == 0.0, "max |Δlogit| {diff:e} with the model dropped");
}
