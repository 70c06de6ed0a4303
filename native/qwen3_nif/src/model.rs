//! The model and its KV caches as resources, and the fused Qwen3 primitives as NIFs.
//! Each primitive only builds MLX graph (lazy); evaluation happens at the sampler.

use crate::args::{parse_device, parse_dtype};
use crate::array::ArrayRef;
use crate::dispatch::{dispatch, immediate_error};
use crate::error::{NifError, NifResult};
use crate::reply::Reply;
use mlx::{Pinned, Worker};
use qwen3::{GenerationConfig, KvCache, LoadOptions, Model, Storage};
use rustler::{Atom, Encoder, Env, LocalPid, OwnedEnv, Resource, ResourceArc, Term};
use std::cell::{RefCell, RefMut};
use std::sync::Arc;

pub struct ModelRef {
    pub model: Pinned<Model>,
    /// Copies kept off the worker: sampler specs and grammars are made without it.
    pub generation: GenerationConfig,
    pub vocab_size: usize,
    pub eos_token_ids: Vec<u32>,
    /// Built at the first constrained call (the token trie of the whole vocabulary).
    pub grammars: std::sync::OnceLock<Result<Arc<qwen3::constraint::Grammars>, String>>,
}

#[rustler::resource_impl]
impl Resource for ModelRef {}

/// Mutated by every layer call; only ever touched on the model's worker (hence `RefCell`).
/// `None` once released: its buffers are freed before the BEAM collects the resource.
pub struct CacheRef {
    pub cache: Pinned<RefCell<Option<KvCache>>>,
}

#[rustler::resource_impl]
impl Resource for CacheRef {}

rustler::atoms! { progress }

impl ModelRef {
    pub(crate) fn worker(&self) -> &Arc<Worker> {
        self.model.worker()
    }
}

fn parse_storage(env: Env, a: Atom) -> NifResult<Option<Storage>> {
    match a.to_term(env).atom_to_string().unwrap_or_default().as_str() {
        "default" => Ok(None),
        "stored" => Ok(Some(Storage::AsStored)),
        "widened" => Ok(Some(Storage::Widened)),
        other => Err(NifError::invalid(format!(
            "weights: :{other} (use :stored, :widened or :default)"
        ))),
    }
}

/// Loads on the device's worker, with `{dtype, weights, memory_limit, int8_activations}`
/// (`:default` or nil where unset); progress goes to `progress_to` as `{tag, {:progress, tensors_done,
/// tensors_total, bytes_done, bytes_total}}`.
#[rustler::nif]
fn model_load<'a>(
    env: Env<'a>,
    path: String,
    device: Atom,
    (dtype, weights, memory_limit, int8_activations): (Atom, Atom, Option<u64>, bool),
    progress_to: LocalPid,
    tag: Term<'a>,
) -> Term<'a> {
    let prepared = (|| {
        let device = parse_device(device, env)?;
        let dtype = match dtype.to_term(env).atom_to_string().as_deref() {
            Ok("default") => None,
            _ => Some(parse_dtype(dtype, env)?),
        };
        let storage = parse_storage(env, weights)?;
        let opts = LoadOptions {
            dtype,
            storage,
            memory_limit,
            int8_activations,
        };
        Ok::<_, NifError>((device, opts))
    })();
    let (device, opts) = match prepared {
        Ok(p) => p,
        Err(e) => return immediate_error(env, e),
    };
    let worker = match Worker::for_device(device) {
        Ok(w) => w,
        Err(e) => return immediate_error(env, e.into()),
    };
    // The tag lives in its own env: `send_and_clear` wipes the env it sends from.
    let tag_env = OwnedEnv::new();
    let saved_tag = tag_env.save(tag);
    let mut progress_env = OwnedEnv::new();
    let job_worker = worker.clone();
    dispatch(env, &worker, move || {
        let model = Model::load(&path, device, opts, |p| {
            let _ = progress_env.send_and_clear(&progress_to, |env| {
                let msg = (
                    progress(),
                    p.tensors_done,
                    p.tensors_total,
                    p.bytes_done,
                    p.bytes_total,
                );
                let tag = tag_env.run(|tenv| saved_tag.load(tenv).in_env(env));
                (tag, msg).encode(env)
            });
        })?;
        Ok(ResourceArc::new(ModelRef {
            generation: model.generation.clone(),
            vocab_size: model.config.vocab_size as usize,
            eos_token_ids: model.eos_token_ids(),
            grammars: std::sync::OnceLock::new(),
            model: Pinned::new(model, &job_worker)?,
        }))
    })
}

/// Config facts Elixir needs, as `[{key, value}]` (Elixir makes the map).
#[rustler::nif]
fn model_info(env: Env, model: ResourceArc<ModelRef>) -> Term {
    let m = model.clone();
    dispatch(env, model.worker(), move || {
        let model = m.model.get()?;
        let c = &model.config;
        let numbers: Vec<(&'static str, i64)> = vec![
            ("vocab_size", c.vocab_size as i64),
            ("hidden_size", c.hidden_size as i64),
            ("num_hidden_layers", c.num_hidden_layers as i64),
            ("num_attention_heads", c.num_attention_heads as i64),
            ("num_key_value_heads", c.num_key_value_heads as i64),
            ("head_dim", c.head_dim as i64),
            ("max_position_embeddings", c.max_position_embeddings as i64),
            ("weight_bytes", model.weight_bytes() as i64),
            ("active_weight_bytes", model.active_weight_bytes() as i64),
            ("num_experts", model.dims.moe.map_or(0, |m| m.experts) as i64),
            (
                "num_experts_per_tok",
                model.dims.moe.map_or(0, |m| m.top_k) as i64,
            ),
        ];
        let eos = model.eos_token_ids();
        let int8_activations = model.int8_products();
        let dtype = model.dtype.name();
        let quantized = match (c.is_quantized(), model.holds_packed()) {
            (false, _) => "none",
            (true, true) => "packed",
            (true, false) => "dense",
        };
        let weights = match model.storage {
            Storage::AsStored => "stored",
            Storage::Widened => "widened",
        };
        Ok(Reply(Box::new(move |env| {
            let atom = |name: &str| Atom::from_str(env, name).expect("valid atom");
            let mut pairs: Vec<(Atom, Term)> = numbers
                .into_iter()
                .map(|(k, v)| (atom(k), v.encode(env)))
                .collect();
            pairs.push((atom("eos_token_ids"), eos.encode(env)));
            pairs.push((atom("dtype"), atom(dtype).encode(env)));
            pairs.push((atom("quantized"), atom(quantized).encode(env)));
            pairs.push((atom("weights"), atom(weights).encode(env)));
            pairs.push((atom("int8_activations"), int8_activations.encode(env)));
            pairs.encode(env)
        })))
    })
}

#[rustler::nif]
fn model_new_cache(
    env: Env,
    model: ResourceArc<ModelRef>,
    batch: i32,
    max_len: i32,
    quant: Option<(i32, i32)>,
) -> Term {
    let m = model.clone();
    let worker = model.worker().clone();
    let quant = quant.map(|(bits, group_size)| qwen3::kv_buffer::KvQuant { bits, group_size });
    dispatch(env, model.worker(), move || {
        let cache = m.model.get()?.new_cache_quantized(batch, max_len, quant)?;
        Ok(ResourceArc::new(CacheRef {
            cache: Pinned::new(RefCell::new(Some(cache)), &worker)?,
        }))
    })
}

/// Runs `f` with the model (and arrays/cache, all checked to share its worker).
fn with_model<'a, T, F>(env: Env<'a>, model: &ResourceArc<ModelRef>, arrays: &[&ArrayRef], f: F) -> Term<'a>
where
    T: crate::reply::IntoReply,
    F: FnOnce(&Model) -> NifResult<T> + Send + 'static,
{
    if arrays.iter().any(|a| !Arc::ptr_eq(a.worker(), model.worker())) {
        return immediate_error(
            env,
            NifError::new("wrong_device", "array and model live on different devices"),
        );
    }
    let m = model.clone();
    dispatch(env, model.worker(), move || f(m.model.get()?))
}

fn slot_of(cache: &CacheRef) -> NifResult<RefMut<'_, Option<KvCache>>> {
    cache
        .cache
        .get()?
        .try_borrow_mut()
        .map_err(|_| NifError::invalid("the KV cache is in use by another call"))
}

pub(crate) fn cache_of(cache: &CacheRef) -> NifResult<RefMut<'_, KvCache>> {
    RefMut::filter_map(slot_of(cache)?, Option::as_mut)
        .map_err(|_| NifError::invalid("the KV cache was released"))
}

#[rustler::nif]
fn model_embed(env: Env, model: ResourceArc<ModelRef>, ids: ResourceArc<ArrayRef>) -> Term {
    let a = ids.clone();
    with_model(env, &model, &[&ids], move |m| Ok(m.embed(a.get()?)?))
}

#[rustler::nif]
fn model_layer(
    env: Env,
    model: ResourceArc<ModelRef>,
    index: usize,
    h: ResourceArc<ArrayRef>,
    cache: ResourceArc<CacheRef>,
) -> Term {
    let a = h.clone();
    with_model(env, &model, &[&h], move |m| {
        Ok(m.layer(index, a.get()?, &mut *cache_of(&cache)?)?)
    })
}

#[rustler::nif]
fn model_attention(
    env: Env,
    model: ResourceArc<ModelRef>,
    index: usize,
    x: ResourceArc<ArrayRef>,
    cache: ResourceArc<CacheRef>,
) -> Term {
    let a = x.clone();
    with_model(env, &model, &[&x], move |m| {
        Ok(m.attention(index, a.get()?, &mut *cache_of(&cache)?)?)
    })
}

#[rustler::nif]
fn model_mlp(env: Env, model: ResourceArc<ModelRef>, index: usize, x: ResourceArc<ArrayRef>) -> Term {
    let a = x.clone();
    with_model(env, &model, &[&x], move |m| Ok(m.mlp(index, a.get()?)?))
}

#[rustler::nif]
fn model_final_logits(
    env: Env,
    model: ResourceArc<ModelRef>,
    h: ResourceArc<ArrayRef>,
    last_only: bool,
) -> Term {
    let a = h.clone();
    with_model(env, &model, &[&h], move |m| {
        Ok(m.final_logits(a.get()?, last_only)?)
    })
}

/// The all-native step: embed, every layer and the final logits in one call.
#[rustler::nif]
fn model_forward(
    env: Env,
    model: ResourceArc<ModelRef>,
    ids: ResourceArc<ArrayRef>,
    cache: ResourceArc<CacheRef>,
    last_only: bool,
) -> Term {
    let a = ids.clone();
    with_model(env, &model, &[&ids], move |m| {
        Ok(m.forward(a.get()?, &mut *cache_of(&cache)?, last_only)?)
    })
}

/// Text embeddings of left-padded rows (see `Model::pooled_embeddings`).
#[rustler::nif]
fn model_pooled_embeddings(
    env: Env,
    model: ResourceArc<ModelRef>,
    ids: ResourceArc<ArrayRef>,
    left_padding: Vec<i32>,
) -> Term {
    let a = ids.clone();
    with_model(env, &model, &[&ids], move |m| {
        Ok(m.pooled_embeddings(a.get()?, &left_padding)?)
    })
}

/// One step for rows with one cache each (continuous batching; see `Model::forward_rows`).
#[rustler::nif]
fn model_forward_rows(
    env: Env,
    model: ResourceArc<ModelRef>,
    ids: ResourceArc<ArrayRef>,
    caches: Vec<ResourceArc<CacheRef>>,
    last_only: bool,
) -> Term {
    if caches
        .iter()
        .any(|c| !Arc::ptr_eq(c.cache.worker(), model.worker()))
    {
        let e = NifError::new("wrong_device", "cache and model live on different devices");
        return immediate_error(env, e);
    }
    let a = ids.clone();
    with_model(env, &model, &[&ids], move |m| {
        // Borrowing a cache twice fails: one cache cannot hold two rows.
        let mut held = caches
            .iter()
            .map(|c| cache_of(c))
            .collect::<NifResult<Vec<_>>>()?;
        let mut rows: Vec<&mut KvCache> = held.iter_mut().map(|c| &mut **c).collect();
        Ok(m.forward_rows(a.get()?, &mut rows, last_only)?)
    })
}

#[rustler::nif]
fn cache_offset(env: Env, cache: ResourceArc<CacheRef>) -> Term {
    let c = cache.clone();
    dispatch(env, cache.cache.worker(), move || {
        Ok(cache_of(&c)?.offset() as i64)
    })
}

#[rustler::nif]
fn cache_truncate(env: Env, cache: ResourceArc<CacheRef>, len: i32) -> Term {
    let c = cache.clone();
    dispatch(
        env,
        cache.cache.worker(),
        move || Ok(cache_of(&c)?.truncate(len)?),
    )
}

#[rustler::nif]
fn cache_set_left_padding(env: Env, cache: ResourceArc<CacheRef>, padding: Vec<i32>) -> Term {
    let c = cache.clone();
    dispatch(env, cache.cache.worker(), move || {
        Ok(cache_of(&c)?.set_left_padding(padding)?)
    })
}

/// Bytes the cache's buffers take, quantized or not (their whole capacity).
#[rustler::nif]
fn cache_nbytes(env: Env, cache: ResourceArc<CacheRef>) -> Term {
    let c = cache.clone();
    dispatch(env, cache.cache.worker(), move || {
        Ok(cache_of(&c)?.nbytes() as i64)
    })
}

#[rustler::nif]
fn cache_set_window(env: Env, cache: ResourceArc<CacheRef>, keep: i32) -> Term {
    let c = cache.clone();
    dispatch(env, cache.cache.worker(), move || {
        Ok(cache_of(&c)?.set_window(keep)?)
    })
}

/// Frees the cache's buffers now instead of when the BEAM collects the resource.
#[rustler::nif]
fn cache_release(env: Env, cache: ResourceArc<CacheRef>) -> Term {
    let c = cache.clone();
    dispatch(env, cache.cache.worker(), move || {
        drop(slot_of(&c)?.take());
        Ok(())
    })
}
