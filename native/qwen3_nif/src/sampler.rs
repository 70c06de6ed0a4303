//! Per-generation samplers as resources: the spec, the random key and the recent tokens
//! live on the device worker between tokens.

use crate::array::{worker_for, ArrayRef};
use crate::dispatch::{dispatch, immediate_error};
use crate::error::{NifError, NifResult};
use crate::reply::{IntoReply, Reply};
use mlx::{Pinned, Worker};
use qwen3::sampler::{sample_rows, Placement, Sampler, SamplerSpec};
use rustler::{Atom, Env, NifMap, Resource, ResourceArc, Term};
use std::cell::RefCell;
use std::sync::Arc;

pub struct SamplerRef {
    sampler: Pinned<RefCell<Sampler>>,
}

#[rustler::resource_impl]
impl Resource for SamplerRef {}

impl IntoReply for ResourceArc<SamplerRef> {
    fn into_reply(self, _: &Arc<Worker>) -> NifResult<Reply> {
        Ok(Reply::term(self))
    }
}

/// The spec as Elixir sends it (a map with every key; `Qwen3.Sampler` fills the defaults).
#[derive(NifMap)]
struct SpecMap {
    temperature: f64,
    top_k: u32,
    top_p: f64,
    min_p: f64,
    repetition_penalty: f64,
    repetition_context: u32,
    on_host: bool,
    seed: u64,
}

impl From<SpecMap> for SamplerSpec {
    fn from(m: SpecMap) -> Self {
        SamplerSpec {
            temperature: m.temperature as f32,
            top_k: m.top_k as usize,
            top_p: m.top_p as f32,
            min_p: m.min_p as f32,
            repetition_penalty: m.repetition_penalty as f32,
            repetition_context: m.repetition_context as usize,
            placement: if m.on_host {
                Placement::Host
            } else {
                Placement::Graph
            },
            seed: m.seed,
        }
    }
}

/// A sampler on `device`'s worker; `history` holds each batch row's prompt tokens.
#[rustler::nif]
fn sampler_new(env: Env, device: Atom, spec: SpecMap, history: Vec<Vec<u32>>) -> Term {
    let spec = SamplerSpec::from(spec);
    let worker = match worker_for(device, env) {
        Ok(w) => w,
        Err(e) => return immediate_error(env, e),
    };
    let job_worker = worker.clone();
    dispatch(env, &worker, move || {
        let sampler = Sampler::new(spec, &history)?;
        Ok(ResourceArc::new(SamplerRef {
            sampler: Pinned::new(RefCell::new(sampler), &job_worker)?,
        }))
    })
}

/// The next token per row, `[B]` uint32; lazy unless the sampler runs on the host.
#[rustler::nif]
fn sampler_sample(env: Env, sampler: ResourceArc<SamplerRef>, logits: ResourceArc<ArrayRef>) -> Term {
    if !Arc::ptr_eq(sampler.sampler.worker(), logits.worker()) {
        let e = NifError::new("wrong_device", "sampler and logits live on different devices");
        return immediate_error(env, e);
    }
    let (s, l) = (sampler.clone(), logits.clone());
    dispatch(env, sampler.sampler.worker(), move || {
        let mut sampler = s
            .sampler
            .get()?
            .try_borrow_mut()
            .map_err(|_| NifError::invalid("the sampler is in use by another call"))?;
        Ok(sampler.sample(l.get()?)?)
    })
}

/// The next token of each row, `[B]` uint32, row `i` drawn by `samplers[i]`.
#[rustler::nif]
fn sampler_sample_rows(
    env: Env,
    samplers: Vec<ResourceArc<SamplerRef>>,
    logits: ResourceArc<ArrayRef>,
) -> Term {
    if samplers
        .iter()
        .any(|s| !Arc::ptr_eq(s.sampler.worker(), logits.worker()))
    {
        let e = NifError::new("wrong_device", "samplers and logits live on different devices");
        return immediate_error(env, e);
    }
    let l = logits.clone();
    dispatch(env, logits.worker(), move || {
        let mut held = samplers
            .iter()
            .map(|s| {
                s.sampler
                    .get()?
                    .try_borrow_mut()
                    .map_err(|_| NifError::invalid("a sampler is in use by another call (or given twice)"))
            })
            .collect::<NifResult<Vec<_>>>()?;
        let mut rows: Vec<&mut Sampler> = held.iter_mut().map(|s| &mut **s).collect();
        Ok(sample_rows(&mut rows, l.get()?)?)
    })
}
