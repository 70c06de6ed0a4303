//! Qwen3-MoE checkpoints as the hub holds them: Hugging Face's one module per expert is
//! stacked in expert order (expert e of the stack is the file's `experts.{e}` tensor), a
//! missing or unknown expert is refused by name, and packed experts stay packed (resident
//! bytes equal the file's).

mod common;
use common::*;
use mlx::safetensors::SafetensorsFile;
use mlx::Dtype;
use qwen3::{Model, Storage};
use std::path::PathBuf;

const EXPERTS: usize = 8;

/// The per-expert fixture with one tensor renamed from `from` to `to`.
fn renamed(from: &str, to: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qwen3-moe-{tag}-{}", std::process::id()));
    copy_dir(&fixtures().join("moe-bf16-per-expert"), &dir);
    let file = first_weights_file(&dir);
    let (mut header, data) = read_header(&file);
    let entry = header.remove(from).expect("fixture tensor");
    header.insert(to.to_string(), entry);
    write_header(&file, &header, &data);
    dir
}

#[test]
fn per_expert_tensors_are_stacked_in_expert_order() {
    let mismatched = on_device(|| {
        let dir = fixtures().join("moe-bf16-per-expert");
        let model = Model::load(&dir, test_device(), load_options(Dtype::Float32), |_| {})?;
        let file = SafetensorsFile::open(first_weights_file(&dir))?;
        let mut wrong = vec![];
        for (i, layer) in model.layers.iter().enumerate() {
            for (name, m) in [
                ("gate_proj", &layer.gate_proj),
                ("up_proj", &layer.up_proj),
                ("down_proj", &layer.down_proj),
            ] {
                let stack = weights(m);
                let each = stack.len() / EXPERTS;
                for e in 0..EXPERTS {
                    let key = format!("model.layers.{i}.mlp.experts.{e}.{name}.weight");
                    let want = f32s(&file.load(&key)?.astype(Dtype::Float32)?)?;
                    if stack[e * each..(e + 1) * each] != want[..] {
                        wrong.push(key);
                    }
                }
            }
        }
        Ok(wrong)
    });
    assert!(
        mismatched.is_empty(),
        "stack slices differ from their tensors: {mismatched:?}"
    );
}

fn load_options(dtype: Dtype) -> qwen3::LoadOptions {
    qwen3::LoadOptions {
        dtype: Some(dtype),
        storage: Some(Storage::Widened),
        ..Default::default()
    }
}

#[test]
fn a_missing_or_unknown_expert_is_refused_by_name() {
    let missing = renamed(
        "model.layers.1.mlp.experts.3.up_proj.weight",
        "model.layers.1.mlp.experts.3.up_projection.weight",
        "missing",
    );
    let extra = renamed(
        "model.layers.0.mlp.experts.7.down_proj.weight",
        "model.layers.0.mlp.experts.8.down_proj.weight",
        "extra",
    );
    let (missing_err, extra_err) = on_device(move || {
        let load = |dir: &PathBuf| Model::load(dir, test_device(), Default::default(), |_| {}).err();
        Ok((load(&missing), load(&extra)))
    });
    let e = missing_err.expect("a missing expert must fail the load");
    assert_eq!(e.kind(), "missing_tensor", "{e}");
    assert!(e.to_string().contains("experts.3.up_proj"), "{e}");
    // Expert 7 is now missing too; the first error names it.
    let e = extra_err.expect("an expert past num_experts must fail the load");
    assert!(e.to_string().contains("experts.7.down_proj"), "{e}");
}

#[test]
fn packed_experts_stay_packed_on_the_cpu() {
    let (resident, file_bytes) = on_device(|| {
        let dir = fixtures().join("moe-q4-g64");
        let model = Model::load(&dir, test_device(), Default::default(), |_| {})?;
        let file = SafetensorsFile::open(first_weights_file(&dir))?;
        let bytes: usize = file.tensors().iter().map(|t| t.nbytes).sum();
        Ok((model.weight_bytes(), bytes))
    });
    if test_device() == mlx::Device::Cpu {
        // Within 5% of the file (the norms, a few KiB, are float32 here and bf16 there);
        // widened to float32 the experts would take about 7 times as much.
        let ratio = resident as f64 / file_bytes as f64;
        assert!(
            (0.95..1.05).contains(&ratio),
            "resident {resident} vs file {file_bytes} bytes"
        );
    }
}
