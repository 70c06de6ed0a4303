//! `Model::pooled_embeddings` on a Qwen3-Embedding-shaped checkpoint (a bare backbone: no
//! `model.` prefix, no LM head) against mlx-lm's final hidden state at each text's last
//! token, L2-normalised (scripts/make_fixtures.py): every text alone, and all of them in one
//! left-padded batch, within 1e-4. A bare backbone whose config says its head is untied
//! loads, embeds, and refuses logits by name.

mod common;
use common::*;
use mlx::Array;
use qwen3::Model;
use serde_json::Value;

const TOL: f32 = 1e-4;

fn golden() -> (Vec<Vec<u32>>, Vec<Vec<f32>>) {
    let dir = fixtures().join("tiny-embedding/golden");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("embeddings.json")).unwrap()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(meta["ids"].clone()).unwrap();
    let flat = read_f32s(&dir.join("embeddings.f32"));
    let width = flat.len() / ids.len();
    (ids, flat.chunks(width).map(<[f32]>::to_vec).collect())
}

/// Rows left-padded into one `[B, L]` batch, and the padding of each.
fn batch(rows: &[Vec<u32>]) -> qwen3::Result<(Array, Vec<i32>)> {
    let width = rows.iter().map(Vec::len).max().unwrap();
    let padding: Vec<i32> = rows.iter().map(|r| (width - r.len()) as i32).collect();
    let flat: Vec<u32> = rows
        .iter()
        .flat_map(|r| std::iter::repeat_n(0, width - r.len()).chain(r.iter().copied()))
        .collect();
    Ok((
        Array::from_slice(&flat, &[rows.len() as i32, width as i32])?,
        padding,
    ))
}

#[test]
fn embeddings_alone_and_batched_equal_mlx_lm() {
    let (ids, want) = golden();
    let (alone, together) = on_device(move || {
        let model = Model::load(
            fixtures().join("tiny-embedding"),
            test_device(),
            Default::default(),
            |_| {},
        )?;
        let mut alone = vec![];
        for row in &ids {
            let (x, pad) = batch(std::slice::from_ref(row))?;
            alone.push(f32s(&model.pooled_embeddings(&x, &pad)?)?);
        }
        let (x, pad) = batch(&ids)?;
        assert!(pad.iter().any(|&p| p > 0), "the batch must be padded");
        Ok((alone, f32s(&model.pooled_embeddings(&x, &pad)?)?))
    });
    let width = want[0].len();
    for (i, w) in want.iter().enumerate() {
        let d = max_abs_diff(&alone[i], w);
        assert!(d <= TOL, "text {i} alone: max |Δ| {d}");
        let d = max_abs_diff(&together[i * width..(i + 1) * width], w);
        assert!(d <= TOL, "text {i} in the batch: max |Δ| {d}");
        let norm: f32 = alone[i].iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit length, got {norm}");
    }
}

#[test]
fn a_headless_backbone_embeds_and_refuses_logits() {
    let dir = std::env::temp_dir().join(format!("qwen3-headless-{}", std::process::id()));
    copy_dir(&fixtures().join("tiny-embedding"), &dir);
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false"),
    )
    .unwrap();
    let (embedded, logits) = on_device(move || {
        let model = Model::load(&dir, test_device(), Default::default(), |_| {})?;
        assert!(model.lm_head.is_none());
        let (x, pad) = batch(&[vec![1, 2, 3]])?;
        let embedded = model.pooled_embeddings(&x, &pad)?.shape();
        let mut cache = model.new_cache(1, 8)?;
        Ok((embedded, model.forward(&x, &mut cache, true).err()))
    });
    assert_eq!(embedded, vec![1, 64]);
    let e = logits.expect("no LM head: no logits");
    assert_eq!(e.kind(), "invalid_argument");
    assert!(e.to_string().contains("without an LM head"), "{e}");
}

#[test]
fn bad_padding_is_refused() {
    let kinds = on_device(|| {
        let model = Model::load(
            fixtures().join("tiny-embedding"),
            test_device(),
            Default::default(),
            |_| {},
        )?;
        let (x, _) = batch(&[vec![1, 2, 3], vec![4, 5, 6]])?;
        Ok([vec![0], vec![0, 3], vec![0, -1]]
            .map(|pad| model.pooled_embeddings(&x, &pad).err().map(|e| e.kind())))
    });
    assert_eq!(kinds, [Some("invalid_argument"); 3]);
}
