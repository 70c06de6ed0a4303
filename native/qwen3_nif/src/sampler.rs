//! Sampler specs and per-generation samplers as resources. A spec is resolved and validated
//! once, when a call's options are checked (`sampler_spec` answers at once: it touches no
//! MLX); a sampler (the spec, the random key and the recent tokens) lives on the device
//! worker between tokens.

use crate::args::worker_for;
use crate::array::ArrayRef;
use crate::constraint::ConstraintRef;
use crate::dispatch::{dispatch, immediate_error};
use crate::error::{NifError, NifResult};
use crate::model::ModelRef;
use crate::reply::Reply;
use mlx::Pinned;
use qwen3::sampler::{sample_rows, Sampler, SamplerKind, SamplerOptions, SamplerSpec, ThinkingBudget};
use qwen3::GenerationConfig;
use rustler::{Atom, Encoder, Env, Resource, ResourceArc, Term};
use std::cell::RefCell;
use std::sync::Arc;

rustler::atoms! { ok, error, invalid_option, invalid_argument, nil }

/// A resolved, validated spec (its seed is chosen per generation).
pub struct SpecRef {
    spec: SamplerSpec,
}

#[rustler::resource_impl]
impl Resource for SpecRef {}

pub struct SamplerRef {
    sampler: Pinned<RefCell<Sampler>>,
}

#[rustler::resource_impl]
impl Resource for SamplerRef {}

/// A setting that does not decode: its key, and what it must be.
struct BadOption(String, &'static str);

fn number(t: Term) -> Option<f32> {
    let float = t.decode::<f64>().ok();
    float
        .or_else(|| t.decode::<i64>().ok().map(|i| i as f64))
        .map(|x| x as f32)
}

/// `nil` turns a filter off (its neutral value); anything else must decode.
fn or_off<T>(t: Term, off: T, decode: impl Fn(Term) -> Option<T>) -> Option<T> {
    match t.decode::<Atom>() {
        Ok(a) if a == nil() => Some(off),
        _ => decode(t),
    }
}

fn positive_int(t: Term) -> Option<usize> {
    t.decode::<u64>().ok().filter(|&k| k > 0).map(|k| k as usize)
}

/// Sets the option `name` from `value`, or says what it must be.
fn set(o: &mut SamplerOptions, name: &str, value: Term) -> Result<(), &'static str> {
    fn given<T>(v: Option<T>, expected: &'static str) -> Result<Option<T>, &'static str> {
        v.map(Some).ok_or(expected)
    }
    match name {
        "sampler" => {
            let kind = value
                .atom_to_string()
                .ok()
                .and_then(|n| SamplerKind::from_name(&n));
            o.sampler = given(kind, "one of :greedy, :sample, :sample_host")?;
        }
        "temperature" => o.temperature = given(number(value), "a number >= 0")?,
        "top_p" => o.top_p = given(number(value), "a number in (0, 1]")?,
        "top_k" => o.top_k = given(or_off(value, 0, positive_int), "nil or a positive integer")?,
        "min_p" => o.min_p = given(or_off(value, 0.0, number), "nil or a number in [0, 1)")?,
        "repetition_penalty" => {
            o.repetition_penalty = given(or_off(value, 1.0, number), "nil or a number > 0")?
        }
        "presence_penalty" => o.presence_penalty = given(number(value), "a number in [-2, 2]")?,
        "frequency_penalty" => o.frequency_penalty = given(number(value), "a number in [-2, 2]")?,
        "repetition_context_size" => {
            let n = value.decode::<u64>().ok().map(|n| n as usize);
            o.repetition_context_size = given(n, "an integer >= 0")?;
        }
        _ => return Err("not a sampling option"),
    }
    Ok(())
}

fn decode_options(pairs: Vec<(Atom, Term)>, env: Env) -> Result<SamplerOptions, BadOption> {
    let mut options = SamplerOptions::default();
    for (key, value) in pairs {
        let name = key.to_term(env).atom_to_string().unwrap_or_default();
        set(&mut options, &name, value).map_err(|expected| BadOption(name, expected))?;
    }
    Ok(options)
}

/// The settings a spec ended up with, for Elixir to show.
fn settings<'a>(env: Env<'a>, s: &SamplerSpec) -> Term<'a> {
    let atom = |name: &str| Atom::from_str(env, name).expect("valid atom");
    let pairs: Vec<(Atom, Term)> = vec![
        (atom("sampler"), atom(s.kind().name()).encode(env)),
        (atom("temperature"), (s.temperature as f64).encode(env)),
        (atom("top_k"), s.top_k.encode(env)),
        (atom("top_p"), (s.top_p as f64).encode(env)),
        (atom("min_p"), (s.min_p as f64).encode(env)),
        (
            atom("repetition_penalty"),
            (s.repetition_penalty as f64).encode(env),
        ),
        (
            atom("repetition_context_size"),
            s.repetition_context_size.encode(env),
        ),
    ];
    Term::map_from_pairs(env, &pairs).expect("distinct keys")
}

/// Resolves the sampling options of one call (`[{key, value}]`, only the keys it set) with
/// `model`'s generation config (`nil`: none). Answers at once: `{:ok, {spec, settings}}`,
/// `{:error, {:invalid_option, key, expected}}` for a setting the call gave, or
/// `{:error, {:invalid_argument, message}}` for one from generation_config.json.
#[rustler::nif]
fn sampler_spec<'a>(
    env: Env<'a>,
    model: Option<ResourceArc<ModelRef>>,
    options: Vec<(Atom, Term<'a>)>,
) -> Term<'a> {
    let no_config = GenerationConfig::default();
    let generation = model.as_ref().map_or(&no_config, |m| &m.generation);
    let asked = match decode_options(options, env) {
        Ok(asked) => asked,
        Err(BadOption(key, expected)) => return bad_option(env, &key, expected),
    };
    match SamplerSpec::resolve(&asked, generation) {
        Ok(spec) => {
            let shown = settings(env, &spec);
            (ok(), (ResourceArc::new(SpecRef { spec }), shown)).encode(env)
        }
        Err(e) if asked_for(&asked, e.setting) => bad_option(env, e.setting, e.expected),
        Err(e) => {
            let message = format!("generation_config.json: {}", qwen3::Error::from(e));
            (error(), (invalid_argument(), message)).encode(env)
        }
    }
}

fn bad_option<'a>(env: Env<'a>, key: &str, expected: &str) -> Term<'a> {
    let key = Atom::from_str(env, key).expect("valid atom");
    (error(), (invalid_option(), key, expected)).encode(env)
}

fn asked_for(o: &SamplerOptions, setting: &str) -> bool {
    match setting {
        "temperature" => o.temperature.is_some(),
        "top_p" => o.top_p.is_some(),
        "min_p" => o.min_p.is_some(),
        "repetition_penalty" => o.repetition_penalty.is_some(),
        "presence_penalty" => o.presence_penalty.is_some(),
        "frequency_penalty" => o.frequency_penalty.is_some(),
        _ => true,
    }
}

/// A sampler on `device`'s worker; `history` holds each batch row's prompt tokens.
/// `constraint`: nil, or `{constraint, start}` (`start`: the token id it waits for, or nil).
#[rustler::nif]
fn sampler_new(
    env: Env,
    device: Atom,
    spec: ResourceArc<SpecRef>,
    seed: u64,
    history: Vec<Vec<u32>>,
    constraint: Option<(ResourceArc<ConstraintRef>, Option<u32>)>,
    thinking: Option<(u32, u32, u32)>,
) -> Term {
    let prepared = (|| {
        let constraint = match constraint {
            Some((c, start)) => Some(c.fresh()?.starting_after(start)),
            None => None,
        };
        Ok::<_, NifError>((worker_for(device, env)?, constraint))
    })();
    let (worker, constraint) = match prepared {
        Ok(p) => p,
        Err(e) => return immediate_error(env, e),
    };
    let spec = SamplerSpec {
        seed,
        ..spec.spec.clone()
    };
    let job_worker = worker.clone();
    dispatch(env, &worker, move || {
        let sampler = Sampler::new(spec, &history)?;
        let sampler = match constraint {
            Some(c) => sampler.constrained(c),
            None => sampler,
        };
        let sampler = match thinking {
            Some((open, close, budget)) => {
                sampler.with_thinking_budget(ThinkingBudget::new(open, close, budget, &history)?)
            }
            None => sampler,
        };
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

/// For each row of `logits`, `{logprob, [{id, logprob}]}`: the log-probability of
/// `tokens[row]` under the raw logits and the `top` most likely tokens.
#[rustler::nif]
fn sampler_logprobs(env: Env, logits: ResourceArc<ArrayRef>, tokens: Vec<u32>, top: usize) -> Term {
    let l = logits.clone();
    dispatch(env, logits.worker(), move || {
        let rows = qwen3::sampler::logprobs(l.get()?, &tokens, top)?;
        let terms: Vec<(f64, Vec<(u32, f64)>)> = rows
            .into_iter()
            .map(|r| {
                (
                    r.logprob as f64,
                    r.top.into_iter().map(|(id, lp)| (id, lp as f64)).collect(),
                )
            })
            .collect();
        Ok(Reply::term(terms))
    })
}
