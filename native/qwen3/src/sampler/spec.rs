//! What a sampler does: the filters and where they run, resolved once from what a call asked
//! for, the checkpoint's generation config, and the neutral defaults.

use crate::config::GenerationConfig;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In the MLX graph, on the model's device.
    Graph,
    /// On the host CPU, after evaluating the logits.
    Host,
}

/// The sampler a call names: the argmax, or a draw from the filtered distribution in the
/// graph or on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    Greedy,
    Sample,
    SampleHost,
}

impl SamplerKind {
    pub const ALL: [SamplerKind; 3] = [SamplerKind::Greedy, SamplerKind::Sample, SamplerKind::SampleHost];

    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Greedy => "greedy",
            SamplerKind::Sample => "sample",
            SamplerKind::SampleHost => "sample_host",
        }
    }

    pub fn from_name(name: &str) -> Option<SamplerKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What a call asked for; `None` where it left a setting unset. Filters that can be off
/// are turned off with their neutral value (top_k 0, min_p 0, repetition_penalty 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplerOptions {
    pub sampler: Option<SamplerKind>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub repetition_context_size: Option<usize>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SamplerSpec {
    /// 0 means greedy.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 turns it off.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p`; 1 turns it off.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one; 0 turns it off.
    pub min_p: f32,
    /// > 1 discourages tokens seen in the last `repetition_context_size` tokens; 1 is off.
    pub repetition_penalty: f32,
    pub repetition_context_size: usize,
    /// Subtracted once from a token's logit if it was generated before; 0 is off.
    pub presence_penalty: f32,
    /// Subtracted per time a token was generated before; 0 is off.
    pub frequency_penalty: f32,
    pub placement: Placement,
    pub seed: u64,
}

/// A setting outside its range: which, what it must be, and the value it had.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidSetting {
    pub setting: &'static str,
    pub expected: &'static str,
    pub value: f32,
}

impl From<InvalidSetting> for Error {
    fn from(e: InvalidSetting) -> Error {
        Error::InvalidArgument(format!("{} must be {}, got {}", e.setting, e.expected, e.value))
    }
}

/// The temperature of a sampling call that names none, with no generation config either.
pub const DEFAULT_TEMPERATURE: f32 = 1.0;

/// Greedy with every filter off: the defaults of every setting but the temperature.
impl Default for SamplerSpec {
    fn default() -> Self {
        SamplerSpec {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repetition_context_size: 20,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            placement: Placement::Graph,
            seed: 0,
        }
    }
}

impl SamplerSpec {
    /// Each setting from the call, else from `generation_config.json`, else its default
    /// (greedy; sampling at temperature 1.0 with every filter off). Greedy ignores the
    /// temperature and the filters but keeps the repetition penalty. Validated here, once.
    pub fn resolve(
        asked: &SamplerOptions,
        generation: &GenerationConfig,
    ) -> std::result::Result<SamplerSpec, InvalidSetting> {
        let d = SamplerSpec::default();
        let kind = asked.sampler.unwrap_or(SamplerKind::Greedy);
        let temperature = asked
            .temperature
            .or(generation.temperature)
            .unwrap_or(DEFAULT_TEMPERATURE);
        let generation_top_k = generation.top_k.map(|k| k.max(0) as usize);
        let spec = SamplerSpec {
            temperature,
            top_k: asked.top_k.or(generation_top_k).unwrap_or(d.top_k),
            top_p: asked.top_p.or(generation.top_p).unwrap_or(d.top_p),
            min_p: asked.min_p.or(generation.min_p).unwrap_or(d.min_p),
            repetition_penalty: asked
                .repetition_penalty
                .or(generation.repetition_penalty)
                .unwrap_or(d.repetition_penalty),
            repetition_context_size: asked.repetition_context_size.unwrap_or(d.repetition_context_size),
            presence_penalty: asked.presence_penalty.unwrap_or(d.presence_penalty),
            frequency_penalty: asked.frequency_penalty.unwrap_or(d.frequency_penalty),
            placement: match kind {
                SamplerKind::SampleHost => Placement::Host,
                _ => Placement::Graph,
            },
            seed: 0,
        };
        // Checked before greedy sets the temperature aside: a bad value is an error anyway.
        spec.check()?;
        let temperature = if kind == SamplerKind::Greedy {
            0.0
        } else {
            temperature
        };
        Ok(SamplerSpec { temperature, ..spec })
    }

    /// `Ok` when every setting is in its range (an error of kind `invalid_argument`).
    pub fn validate(&self) -> Result<()> {
        Ok(self.check()?)
    }

    /// The first setting outside its range, by name.
    pub fn check(&self) -> std::result::Result<(), InvalidSetting> {
        let invalid = |setting, expected, value| {
            Err(InvalidSetting {
                setting,
                expected,
                value,
            })
        };
        let finite = |x: f32| x.is_finite();
        if !finite(self.temperature) || self.temperature < 0.0 {
            return invalid("temperature", "a number >= 0", self.temperature);
        }
        if !finite(self.top_p) || self.top_p <= 0.0 || self.top_p > 1.0 {
            return invalid("top_p", "a number in (0, 1]", self.top_p);
        }
        if !finite(self.min_p) || !(0.0..1.0).contains(&self.min_p) {
            return invalid("min_p", "a number in [0, 1)", self.min_p);
        }
        if !finite(self.repetition_penalty) || self.repetition_penalty <= 0.0 {
            return invalid("repetition_penalty", "a number > 0", self.repetition_penalty);
        }
        let in_range = |x: f32| x.is_finite() && (-2.0..=2.0).contains(&x);
        if !in_range(self.presence_penalty) {
            return invalid("presence_penalty", "a number in [-2, 2]", self.presence_penalty);
        }
        if !in_range(self.frequency_penalty) {
            return invalid("frequency_penalty", "a number in [-2, 2]", self.frequency_penalty);
        }
        Ok(())
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Whether the presence or frequency penalty is on (they count generated tokens).
    pub fn counts_tokens(&self) -> bool {
        self.presence_penalty != 0.0 || self.frequency_penalty != 0.0
    }

    pub(super) fn penalises(&self) -> bool {
        self.repetition_penalty != 1.0 && self.repetition_context_size > 0
    }

    /// What the sampler does, by name: greedy, sample or sample_host.
    pub fn kind(&self) -> SamplerKind {
        match (self.is_greedy(), self.placement) {
            (true, _) => SamplerKind::Greedy,
            (false, Placement::Graph) => SamplerKind::Sample,
            (false, Placement::Host) => SamplerKind::SampleHost,
        }
    }
}
