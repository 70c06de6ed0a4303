//! Mutation fuzzing of the checkpoint loader, for a bounded time (`make fuzz`):
//! `QWEN3_FUZZ_SECONDS` (default 60) and `QWEN3_FUZZ_SEED` (default: from the clock).
//!
//! Each case damages one good fixture (safetensors bytes, its JSON header, config.json or a
//! sharded index) and loads it. Loading must return `Ok` or a tagged `Err`: a panic, an
//! abort or a crash fails the run. A checkpoint that still loads must run a forward pass.
//! Ignored by `cargo test`; run with `--ignored`.

mod common;

use common::{
    copy_dir, first_weights_file, fixtures, ids, on_device, read_header, tensor_names, write_header,
};
use mlx::Device;
use qwen3::{LoadOptions, Model};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

const VARIANTS: [&str; 3] = ["dense-f32-tied", "q4-g64-tied", "dense-bf16-tied-sharded"];
const DTYPES: [&str; 10] = [
    "F32", "F16", "BF16", "U32", "I32", "U8", "I64", "F64", "BOOL", "Q9",
];

struct Rng(ChaCha8Rng);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An integer that is often at an edge: 0, ±1, a near size, or huge.
    fn edgy(&mut self, near: i64) -> i64 {
        match self.below(6) {
            0 => 0,
            1 => -1,
            2 => near + self.below(3) as i64 - 1,
            3 => near * 2,
            4 => i64::MAX - self.below(2) as i64,
            _ => self.0.next_u64() as i64,
        }
    }
}

/// One mutation, named for the report.
fn mutate(rng: &mut Rng, dir: &Path) -> &'static str {
    let weights = first_weights_file(dir);
    match rng.below(7) {
        0 => {
            let mut bytes = std::fs::read(&weights).unwrap();
            let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            for _ in 0..=rng.below(8) {
                let at = rng.below(header_end.min(bytes.len()));
                bytes[at] ^= 1 << rng.below(8);
            }
            std::fs::write(&weights, bytes).unwrap();
            "header bit flips"
        }
        1 => {
            let mut bytes = std::fs::read(&weights).unwrap();
            let len = rng.below(bytes.len());
            bytes.truncate(len);
            std::fs::write(&weights, bytes).unwrap();
            "truncated weights"
        }
        2 => {
            let (mut header, data) = read_header(&weights);
            let name = rng.pick(&tensor_names(&header)).clone();
            let entry = header.get_mut(&name).unwrap();
            let offsets = entry["data_offsets"].as_array().unwrap().clone();
            let i = rng.below(2);
            let near = offsets[i].as_i64().unwrap();
            entry["data_offsets"][i] = json!(rng.edgy(near));
            write_header(&weights, &header, &data);
            "lying offsets"
        }
        3 => {
            let (mut header, data) = read_header(&weights);
            let name = rng.pick(&tensor_names(&header)).clone();
            let entry = header.get_mut(&name).unwrap();
            if rng.below(2) == 0 {
                entry["dtype"] = json!(rng.pick(&DTYPES));
                write_header(&weights, &header, &data);
                return "wrong dtype";
            }
            let mut shape: Vec<i64> = entry["shape"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_i64)
                .collect();
            match rng.below(3) {
                0 if !shape.is_empty() => {
                    let i = rng.below(shape.len());
                    shape[i] = rng.edgy(shape[i]);
                }
                1 => shape.push(rng.edgy(1)),
                _ => shape.reverse(),
            }
            entry["shape"] = json!(shape);
            write_header(&weights, &header, &data);
            "wrong shape"
        }
        4 => {
            let (mut header, data) = read_header(&weights);
            let names = tensor_names(&header);
            let name = rng.pick(&names).clone();
            if rng.below(2) == 0 {
                header.remove(&name);
            } else {
                let other = rng.pick(&names).clone();
                let entry = header[&other].clone();
                header.insert(format!("{name}.extra"), entry);
            }
            write_header(&weights, &header, &data);
            "missing or aliased tensor"
        }
        5 => {
            let path = dir.join("config.json");
            let mut config: BTreeMap<String, Value> =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let keys: Vec<String> = config.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            let value = match rng.below(5) {
                0 => Value::Null,
                1 => json!("text"),
                2 => json!(-(rng.below(4) as i64)),
                3 => json!(rng.edgy(config[&key].as_i64().unwrap_or(4))),
                _ => json!({"bits": rng.below(10), "group_size": rng.edgy(64)}),
            };
            if rng.below(4) == 0 {
                config.remove(&key);
            } else {
                config.insert(key, value);
            }
            std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
            "config field"
        }
        _ => {
            let path = dir.join("config.json");
            let mut bytes = std::fs::read(&path).unwrap();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.0.next_u32() as u8;
            }
            std::fs::write(&path, bytes).unwrap();
            "config bytes"
        }
    }
}

/// Loads `dir`; a model that loads must also run one forward step. Returns the outcome.
fn load_and_run(dir: PathBuf) -> Result<String, String> {
    on_device(move || {
        let result = std::panic::catch_unwind(|| {
            Model::load(&dir, Device::Cpu, LoadOptions::default(), |_| {}).and_then(|model| {
                let mut cache = model.new_cache(1, 8)?;
                let logits = model.forward(&ids(&[1, 2])?, &mut cache, true)?;
                logits.eval()?;
                Ok(())
            })
        });
        Ok(match result {
            Ok(Ok(())) => Ok("loaded".to_string()),
            Ok(Err(e)) => Ok(e.kind().to_string()),
            Err(_) => Err("panic".to_string()),
        })
    })
}

#[test]
#[ignore = "bounded-time fuzzing: `make fuzz`"]
fn loader_survives_mutated_checkpoints() {
    let seconds: u64 = std::env::var("QWEN3_FUZZ_SECONDS").map_or(60, |s| s.parse().unwrap());
    let seed: u64 = std::env::var("QWEN3_FUZZ_SEED").map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        },
        |s| s.parse().unwrap(),
    );
    let mut rng = Rng(ChaCha8Rng::seed_from_u64(seed));
    let work = std::env::temp_dir().join(format!("qwen3-fuzz-{}", std::process::id()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut outcomes: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut panics = Vec::new();
    let mut cases = 0;

    while Instant::now() < deadline {
        let variant = *rng.pick(&VARIANTS);
        copy_dir(&fixtures().join(variant), &work);
        let mutation = mutate(&mut rng, &work);
        match load_and_run(work.clone()) {
            Ok(outcome) => *outcomes.entry((mutation, outcome)).or_default() += 1,
            Err(_) => panics.push(format!("case {cases}: {mutation} on {variant}")),
        }
        cases += 1;
    }
    let _ = std::fs::remove_dir_all(&work);

    println!("fuzzed the loader for {seconds} s with seed {seed}: {cases} cases");
    for ((mutation, outcome), n) in &outcomes {
        println!("  {mutation:<26} → {outcome:<16} {n}");
    }
    assert!(panics.is_empty(), "panics (seed {seed}): {panics:?}");
}
