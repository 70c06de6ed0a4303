//! Downloading a checkpoint from the Hugging Face Hub (`hf-hub` crate; endpoint "" means
//! the default hub) into the standard cache layout. It runs on its own thread: the NIF
//! returns a reference at once, progress arrives as
//! `{tag, {:download, file, bytes_done, bytes_total}}` and the end as
//! `{ref, {:ok, snapshot_dir} | {:error, {kind, message}}}`.

use crate::error::{NifError, NifResult};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::api::Progress;
use hf_hub::{Repo, RepoType};
use rustler::{Encoder, Env, LocalPid, OwnedEnv, Term};
use std::path::PathBuf;

rustler::atoms! { ok, error, download }

/// What a Qwen3 checkpoint needs; other files in the repo (README, other formats) are skipped.
fn wanted(name: &str) -> bool {
    matches!(
        name,
        "config.json"
            | "generation_config.json"
            | "tokenizer.json"
            | "tokenizer_config.json"
            | "chat_template.jinja"
            | "model.safetensors.index.json"
    ) || (name.ends_with(".safetensors") && !name.contains('/'))
}

struct Reporter {
    sink: OwnedEnv,
    tag: OwnedEnv,
    saved_tag: rustler::env::SavedTerm,
    to: LocalPid,
    file: String,
    done: usize,
    total: usize,
}

impl Reporter {
    fn send(&mut self) {
        let (file, done, total) = (self.file.clone(), self.done, self.total);
        let (tag_env, saved, to) = (&self.tag, &self.saved_tag, self.to);
        let _ = self.sink.send_and_clear(&to, |env| {
            let tag = tag_env.run(|t| saved.load(t).in_env(env));
            (tag, (download(), file, done, total)).encode(env)
        });
    }
}

impl Progress for &mut Reporter {
    fn init(&mut self, size: usize, filename: &str) {
        (self.file, self.done, self.total) = (filename.to_string(), 0, size);
        self.send();
    }

    fn update(&mut self, size: usize) {
        self.done += size;
        // One message per ~8 MB keeps the mailbox calm on multi-GB shards.
        if self.done == self.total || self.done % (8 << 20) < size {
            self.send();
        }
    }

    fn finish(&mut self) {
        self.done = self.total;
        self.send();
    }
}

struct Source {
    repo: String,
    revision: String,
    endpoint: String,
    cache_dir: String,
}

fn fetch(source: Source, reporter: &mut Reporter) -> NifResult<String> {
    let Source {
        repo,
        revision,
        endpoint,
        cache_dir,
    } = source;
    let failed = |e: hf_hub::api::sync::ApiError| NifError::new("download", format!("{repo}: {e}"));
    let mut builder = ApiBuilder::new()
        .with_cache_dir(PathBuf::from(&cache_dir))
        .with_progress(false);
    if !endpoint.is_empty() {
        builder = builder.with_endpoint(endpoint);
    }
    let api = builder.build().map_err(failed)?;
    let handle = api.repo(Repo::with_revision(repo.clone(), RepoType::Model, revision));
    let info = handle.info().map_err(failed)?;
    let files: Vec<String> = info
        .siblings
        .into_iter()
        .map(|s| s.rfilename)
        .filter(|n| wanted(n))
        .collect();
    if !files.iter().any(|f| f == "config.json") {
        return Err(NifError::new("not_found", format!("{repo} has no config.json")));
    }
    let mut snapshot = None;
    for file in &files {
        let path = handle
            .download_with_progress(file, &mut *reporter)
            .map_err(failed)?;
        snapshot = snapshot.or_else(|| path.parent().map(|p| p.to_string_lossy().into_owned()));
    }
    snapshot.ok_or_else(|| NifError::new("download", format!("{repo}: nothing downloaded")))
}

#[rustler::nif]
fn hub_download<'a>(
    env: Env<'a>,
    repo: String,
    revision: String,
    endpoint: String,
    cache_dir: String,
    progress_to: LocalPid,
    tag: Term<'a>,
) -> Term<'a> {
    let (pid, reference) = (env.pid(), env.make_ref());
    let mut reply_env = OwnedEnv::new();
    let saved_ref = reply_env.save(reference);
    let tag_env = OwnedEnv::new();
    let saved_tag = tag_env.save(tag);
    std::thread::spawn(move || {
        let mut reporter = Reporter {
            sink: OwnedEnv::new(),
            tag: tag_env,
            saved_tag,
            to: progress_to,
            file: String::new(),
            done: 0,
            total: 0,
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let source = Source {
                repo,
                revision,
                endpoint,
                cache_dir,
            };
            fetch(source, &mut reporter)
        }))
        .unwrap_or_else(|_| Err(NifError::new("download", "the download thread panicked")));
        let _ = reply_env.send_and_clear(&pid, |env| {
            let payload = match result {
                Ok(dir) => (ok(), dir).encode(env),
                Err(e) => (error(), e.encode(env)).encode(env),
            };
            (saved_ref.load(env), payload).encode(env)
        });
    });
    reference.encode(env)
}
