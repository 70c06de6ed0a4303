//! Choosing the next token from logits (`[B, L, V]` or `[B, V]`; the last position is used).
//!
//! One `SamplerSpec` describes the filters, applied in Hugging Face's order: repetition
//! penalty, temperature, top-k, top-p, min-p. `SamplerSpec::resolve` is where a spec comes
//! from: what the call asked for, then the checkpoint's `generation_config.json`, then the
//! neutral defaults, validated once. `Placement::Graph` builds the filters into the lazy
//! MLX graph (the token stays lazy and feeds the next step); `Placement::Host` evaluates
//! the logits and samples in plain Rust. Temperature 0 is greedy (argmax after the penalty).

mod graph;
mod host;
mod logprobs;
mod spec;
mod thinking;

pub use graph::filtered_logits as graph_filtered_logits;
pub use host::{filtered_logits as host_filtered_logits, softmax as host_probabilities};
pub use logprobs::{logprobs, TokenLogprobs};
pub use spec::{InvalidSetting, Placement, SamplerKind, SamplerOptions, SamplerSpec, DEFAULT_TEMPERATURE};
pub use thinking::ThinkingBudget;

use crate::constraint::Constraint;
use crate::error::{bail, Result};
use mlx::{Array, Dtype, Reduce};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, VecDeque};

/// Recent tokens per row, for the repetition penalty.
enum History {
    None,
    /// `[B, n]` uint32, possibly lazy (it holds the last sampled token).
    Graph(Array),
    Host(Vec<VecDeque<u32>>),
}

/// How often each row generated each token, for the presence and frequency penalties
/// (OpenAI's: over the generated tokens only, not the prompt).
enum Counts {
    Off,
    /// `[B, V]` float32, made at the first token (when V is known); possibly lazy.
    Graph(Option<Array>),
    Host(Vec<HashMap<u32, u32>>),
}

/// Per-generation sampling state: the spec, the random stream and the recent tokens.
pub struct Sampler {
    spec: SamplerSpec,
    key: Array,
    rng: ChaCha8Rng,
    history: History,
    counts: Counts,
    /// With a constraint: it, and the tokens drawn last (lazy), which it must see next.
    constraint: Option<(Constraint, Option<Array>)>,
    thinking: Option<ThinkingBudget>,
}

impl Sampler {
    /// `history` holds each batch row's previous tokens (the prompt); rows must be equally long.
    /// `spec` is trusted: it comes from [`SamplerSpec::resolve`], which validated it.
    pub fn new(spec: SamplerSpec, history: &[Vec<u32>]) -> Result<Sampler> {
        let history = if !spec.penalises() {
            History::None
        } else {
            let tail =
                |row: &Vec<u32>| row[row.len().saturating_sub(spec.repetition_context_size)..].to_vec();
            let rows: Vec<Vec<u32>> = history.iter().map(tail).collect();
            match spec.placement {
                Placement::Host => History::Host(rows.into_iter().map(VecDeque::from).collect()),
                Placement::Graph => graph_history(&rows)?,
            }
        };
        let counts = match (spec.counts_tokens(), spec.placement) {
            (false, _) => Counts::Off,
            (true, Placement::Graph) => Counts::Graph(None),
            (true, Placement::Host) => Counts::Host(Vec::new()),
        };
        Ok(Sampler {
            key: mlx::random::key(spec.seed)?,
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            spec,
            history,
            counts,
            constraint: None,
            thinking: None,
        })
    }

    /// The sampler, closing `<think>` blocks after their budget (see [`ThinkingBudget`]).
    pub fn with_thinking_budget(self, budget: ThinkingBudget) -> Sampler {
        Sampler {
            thinking: Some(budget),
            ..self
        }
    }

    /// The sampler, drawing only tokens `constraint` allows (one row only).
    pub fn constrained(self, constraint: Constraint) -> Sampler {
        Sampler {
            constraint: Some((constraint, None)),
            ..self
        }
    }

    pub fn spec(&self) -> &SamplerSpec {
        &self.spec
    }

    /// The next token per row: `[B]` uint32 (lazy with `Placement::Graph`).
    pub fn sample(&mut self, logits: &Array) -> Result<Array> {
        let logits = last_logits(logits)?.astype(Dtype::Float32)?;
        let mut logits = self.constrain(logits)?;
        if let Some(budget) = &mut self.thinking {
            logits = budget.apply(&logits)?;
        }
        let tokens = match self.spec.placement {
            Placement::Graph => self.sample_in_graph(&logits)?,
            Placement::Host => self.sample_on_host(&logits)?,
        };
        if let Some(budget) = &mut self.thinking {
            budget.observe(&tokens)?;
        }
        if let Some((_, last)) = &mut self.constraint {
            *last = Some(tokens.clone());
        }
        Ok(tokens)
    }

    /// The constraint sees the token drawn last, then gives this step's mask; the logits
    /// start computing first, so that the mask is worked out meanwhile.
    fn constrain(&mut self, logits: Array) -> Result<Array> {
        let Some((constraint, last)) = &mut self.constraint else {
            return Ok(logits);
        };
        if logits.dim(0)? != 1 {
            bail!(InvalidArgument, "a constrained sampler draws one row at a time");
        }
        if let Some(tokens) = last.take() {
            constraint.observe(tokens.to_vec::<u32>()?[0])?;
        }
        mlx::async_eval(&[&logits])?;
        let Some(mask) = constraint.mask()? else {
            return Ok(logits);
        };
        let vocab = logits.dim(1)?;
        if mask.len() != vocab as usize {
            bail!(
                InvalidArgument,
                "a mask of {} tokens for {vocab} logits",
                mask.len()
            );
        }
        let allowed = Array::from_slice(&mask, &[1, vocab])?.astype(Dtype::Bool)?;
        let blocked = Array::scalar(f32::NEG_INFINITY)?;
        Ok(Array::select(&allowed, &logits, &blocked)?)
    }

    fn sample_in_graph(&mut self, logits: &Array) -> Result<Array> {
        let recent = match &self.history {
            History::Graph(h) if h.dim(1)? > 0 => Some(h),
            _ => None,
        };
        if let Counts::Graph(None) = self.counts {
            let zeros = Array::full(&logits.shape(), 0.0, Dtype::Float32)?;
            self.counts = Counts::Graph(Some(zeros));
        }
        let counts = match &self.counts {
            Counts::Graph(c) => c.as_ref(),
            _ => None,
        };
        let filtered = graph::filtered_logits(&self.spec, logits, recent, counts)?;
        let tokens = if self.spec.is_greedy() {
            greedy(&filtered)?
        } else {
            let (next_key, sub) = mlx::random::split(&self.key)?;
            self.key = next_key;
            mlx::random::categorical(&filtered, -1, &sub)?
        };
        if let History::Graph(h) = &self.history {
            self.history = History::Graph(graph::push_history(
                h,
                &tokens,
                self.spec.repetition_context_size,
            )?);
        }
        if let Counts::Graph(Some(c)) = &self.counts {
            self.counts = Counts::Graph(Some(graph::count(c, &tokens)?));
        }
        Ok(tokens)
    }

    fn sample_on_host(&mut self, logits: &Array) -> Result<Array> {
        let shape = logits.shape();
        let (rows, vocab) = (shape[0] as usize, shape[1] as usize);
        let mut values = logits.to_vec::<f32>()?;
        let mut tokens = Vec::with_capacity(rows);
        if let Counts::Host(c) = &mut self.counts {
            c.resize_with(rows, HashMap::new);
        }
        let no_counts = HashMap::new();
        for (r, row) in values.chunks_mut(vocab).enumerate() {
            let recent: Vec<u32> = match &self.history {
                History::Host(h) => h.get(r).map(|d| d.iter().copied().collect()).unwrap_or_default(),
                _ => Vec::new(),
            };
            let counts = match &self.counts {
                Counts::Host(c) => &c[r],
                _ => &no_counts,
            };
            host::filtered_logits(&self.spec, row, &recent, counts);
            let token = if self.spec.is_greedy() {
                host::argmax(row)
            } else {
                host::draw(row, &mut self.rng)
            };
            tokens.push(token);
        }
        if let Counts::Host(c) = &mut self.counts {
            for (row, &t) in c.iter_mut().zip(&tokens) {
                *row.entry(t).or_default() += 1;
            }
        }
        if let History::Host(h) = &mut self.history {
            for (row, &t) in h.iter_mut().zip(&tokens) {
                row.push_back(t);
                if row.len() > self.spec.repetition_context_size {
                    row.pop_front();
                }
            }
        }
        Ok(Array::from_slice(&tokens, &[rows as i32])?)
    }
}

/// The next token of each row (`[B]` uint32), row `i` drawn by `samplers[i]` from its own
/// logits: separate generations sharing one batched step keep their own filters and streams.
pub fn sample_rows(samplers: &mut [&mut Sampler], logits: &Array) -> Result<Array> {
    let logits = last_logits(logits)?;
    let shape = logits.shape();
    if shape[0] as usize != samplers.len() {
        bail!(
            InvalidArgument,
            "{} samplers for {} rows of logits",
            samplers.len(),
            shape[0]
        );
    }
    let tokens = samplers
        .iter_mut()
        .enumerate()
        .map(|(row, s)| {
            let r = row as i32;
            s.sample(&logits.slice(&[r, 0], &[r + 1, shape[1]])?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(mlx::concatenate(&tokens.iter().collect::<Vec<_>>(), 0)?)
}

fn graph_history(rows: &[Vec<u32>]) -> Result<History> {
    let n = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != n) {
        bail!(
            InvalidArgument,
            "every batch row needs the same number of history tokens"
        );
    }
    let flat: Vec<u32> = rows.concat();
    Ok(History::Graph(Array::from_slice(
        &flat,
        &[rows.len() as i32, n as i32],
    )?))
}

/// The last position's logits as `[B, V]`.
pub fn last_logits(logits: &Array) -> Result<Array> {
    let shape = logits.shape();
    match shape.len() {
        2 => Ok(logits.clone()),
        3 => Ok(logits
            .slice(&[0, shape[1] - 1, 0], &shape)?
            .reshape(&[shape[0], shape[2]])?),
        _ => bail!(
            InvalidArgument,
            "logits must be [B, V] or [B, L, V], got {shape:?}"
        ),
    }
}

/// Highest-scoring token per row: `[B]` uint32 (lazy).
pub fn greedy(logits: &Array) -> Result<Array> {
    let last = last_logits(logits)?;
    match mlx::fast::argmax_last(&last)? {
        Some(ids) => Ok(ids),
        None => Ok(last.reduce(Reduce::Argmax, -1, false)?),
    }
}
