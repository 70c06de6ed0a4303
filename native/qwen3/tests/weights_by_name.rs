//! Layer weights are found by their safetensors names. `k_proj` and `v_proj` have the same
//! shape, so a loader that took tensors by position or mixed the two up would pass every
//! shape check: each field must hold the file's tensor of its own name, and swapping two
//! tensors' data in the file must reach the model and change its logits.

mod common;
use common::*;
use mlx::safetensors::SafetensorsFile;
use qwen3::Model;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const K: &str = "model.layers.0.self_attn.k_proj.weight";
const V: &str = "model.layers.0.self_attn.v_proj.weight";

/// The fixture with layer 0's key and value weights exchanged (their headers' data offsets
/// swapped: same names, same shapes, the other tensor's bytes).
fn swapped_checkpoint() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qwen3-swapped-kv-{}", std::process::id()));
    copy_dir(&fixtures().join("dense-f32-tied"), &dir);
    let file = first_weights_file(&dir);
    let (mut header, data) = read_header(&file);
    let offsets = |h: &BTreeMap<String, Value>, name: &str| h[name]["data_offsets"].clone();
    let (k, v) = (offsets(&header, K), offsets(&header, V));
    assert_eq!(
        header[K]["shape"], header[V]["shape"],
        "the swap passes every shape check"
    );
    header.get_mut(K).unwrap()["data_offsets"] = v;
    header.get_mut(V).unwrap()["data_offsets"] = k;
    write_header(&file, &header, &data);
    dir
}

/// Whether every matrix and vector of every layer equals the file's tensor of its name.
fn fields_match_their_tensors(model: &Model, dir: &Path) -> qwen3::Result<Vec<String>> {
    let file = SafetensorsFile::open(first_weights_file(dir))?;
    let tensor = |name: String| -> qwen3::Result<Vec<f32>> { f32s(&file.load(&name)?) };
    let mut wrong = vec![];
    for (i, l) in model.layers.iter().enumerate() {
        let key = |name: &str| format!("model.layers.{i}.{name}");
        let matrices = [
            ("self_attn.q_proj.weight", &l.q_proj),
            ("self_attn.k_proj.weight", &l.k_proj),
            ("self_attn.v_proj.weight", &l.v_proj),
            ("self_attn.o_proj.weight", &l.o_proj),
            ("mlp.gate_proj.weight", &l.gate_proj),
            ("mlp.up_proj.weight", &l.up_proj),
            ("mlp.down_proj.weight", &l.down_proj),
        ];
        for (name, m) in matrices {
            if weights(m) != tensor(key(name))? {
                wrong.push(key(name));
            }
        }
        let vectors = [
            ("input_layernorm.weight", &l.input_layernorm),
            ("self_attn.q_norm.weight", &l.q_norm),
            ("self_attn.k_norm.weight", &l.k_norm),
            ("post_attention_layernorm.weight", &l.post_attention_layernorm),
        ];
        for (name, v) in vectors {
            if f32s(v)? != tensor(key(name))? {
                wrong.push(key(name));
            }
        }
    }
    Ok(wrong)
}

#[test]
fn every_layer_field_holds_the_tensor_of_its_name() {
    let wrong = on_device(|| {
        let model = load("dense-f32-tied", None)?;
        fields_match_their_tensors(&model, &fixtures().join("dense-f32-tied"))
    });
    assert!(wrong.is_empty(), "fields loaded from other tensors: {wrong:?}");
}

#[test]
fn swapping_two_same_shaped_tensors_in_the_file_changes_the_model() {
    let dir = swapped_checkpoint();
    let swapped_dir = dir.clone();
    let (original, swapped, wrong) = on_device(move || {
        let prompt = [3u32, 14, 15, 92, 65];
        let run = |model: &Model| -> qwen3::Result<Vec<f32>> {
            let mut cache = model.new_cache(1, 16)?;
            f32s(&model.forward(&ids(&prompt)?, &mut cache, true)?)
        };
        let original = load("dense-f32-tied", None)?;
        let swapped = Model::load(&swapped_dir, mlx::Device::Cpu, Default::default(), |_| {})?;
        let wrong = fields_match_their_tensors(&swapped, &swapped_dir)?;
        Ok((run(&original)?, run(&swapped)?, wrong))
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert!(wrong.is_empty(), "fields loaded from other tensors: {wrong:?}");
    let diff = max_abs_diff(&original, &swapped);
    assert!(
        diff > 1e-2,
        "swapping k and v left the logits unchanged (max |Δ| {diff})"
    );
}
