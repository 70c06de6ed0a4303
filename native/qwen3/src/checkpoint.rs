//! A Hugging Face model directory: config, generation config and safetensors shards
//! (single file, or `model-0000N-of-0000M` with `model.safetensors.index.json`).
//! Every shard header is validated when the checkpoint is opened. Tensors are named as in a
//! causal LM (`model.layers.…`): a bare backbone's names (`layers.…`, as Qwen3-Embedding
//! ships them) get their `model.` prefix here.

use crate::config::{Config, GenerationConfig};
use crate::error::{bail, Error, Result};
use mlx::safetensors::{SafetensorsFile, TensorInfo};
use mlx::Array;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: Config,
    pub generation: GenerationConfig,
    files: Vec<SafetensorsFile>,
    /// Tensor name (as a causal LM names it) → index into `files`, and the name stored there.
    index: HashMap<String, (usize, String)>,
    /// Whether the files hold a bare backbone (no `model.` prefix, no LM head of their own).
    pub backbone_only: bool,
}

impl Checkpoint {
    pub fn open(dir: impl AsRef<Path>) -> Result<Checkpoint> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            bail!(Io, "{} is not a directory", dir.display());
        }
        let config = Config::from_file(&dir.join("config.json"))?;
        let generation = GenerationConfig::from_dir(&dir)?;
        let (paths, weight_map) = shard_paths(&dir)?;
        let files = paths
            .iter()
            .map(SafetensorsFile::open)
            .collect::<mlx::Result<Vec<_>>>()?;
        let backbone_only = files.iter().any(|f| f.info("embed_tokens.weight").is_some());
        let mut index = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            for t in f.tensors() {
                let name = match backbone_only && t.name != "lm_head.weight" {
                    true => format!("model.{}", t.name),
                    false => t.name.clone(),
                };
                if index.insert(name, (i, t.name.clone())).is_some() {
                    bail!(
                        Io,
                        "tensor {} appears in more than one shard (or with and without `model.`)",
                        t.name
                    );
                }
            }
        }
        if let Some(map) = weight_map {
            let stored: HashMap<&str, usize> = index.values().map(|(i, n)| (n.as_str(), *i)).collect();
            for (name, file) in &map {
                let found = stored.get(name.as_str()).map(|&i| files[i].path().file_name());
                if found != Some(Some(std::ffi::OsStr::new(file))) {
                    bail!(
                        MissingTensor,
                        "the index puts {name} in {file}, which does not hold it"
                    );
                }
            }
        }
        Ok(Checkpoint {
            dir,
            config,
            generation,
            files,
            index,
            backbone_only,
        })
    }

    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.index
            .get(name)
            .and_then(|(i, stored)| self.files[*i].info(stored))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    pub fn load(&self, name: &str) -> Result<Array> {
        let (i, stored) = self
            .index
            .get(name)
            .ok_or_else(|| Error::MissingTensor(format!("no tensor {name}")))?;
        Ok(self.files[*i].load(stored)?)
    }
}

type WeightMap = HashMap<String, String>;

fn shard_paths(dir: &Path) -> Result<(Vec<PathBuf>, Option<WeightMap>)> {
    let index_path = dir.join("model.safetensors.index.json");
    if index_path.exists() {
        let text = std::fs::read_to_string(&index_path)
            .map_err(|e| Error::Io(format!("{}: {e}", index_path.display())))?;
        let bad_index = |why: String| {
            Error::Mlx(mlx::Error::InvalidFile(format!(
                "{}: {why}",
                index_path.display()
            )))
        };
        let parsed: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad_index(format!("invalid JSON: {e}")))?;
        let map: WeightMap = parsed
            .get("weight_map")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .ok_or_else(|| bad_index("no weight_map of tensor name to file".into()))?;
        let files: BTreeSet<&String> = map.values().collect();
        let paths: Vec<PathBuf> = files.into_iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = paths.iter().find(|p| !p.exists()) {
            bail!(Io, "shard {} named by the index is missing", missing.display());
        }
        return Ok((paths, Some(map)));
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok((vec![single], None));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("model") && name.ends_with(".safetensors")
        })
        .collect();
    found.sort();
    if found.is_empty() {
        bail!(Io, "no model*.safetensors in {}", dir.display());
    }
    Ok((found, None))
}
