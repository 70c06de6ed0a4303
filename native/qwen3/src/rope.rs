//! Rotary position embedding as the config asks for it: plain (`rope_theta`), or YaRN
//! (`rope_type: "yarn"`, how Qwen3 reaches 128K tokens), read from `rope_scaling` or
//! (transformers ≥ 5) `rope_parameters`. Any other scaling is refused by name.

use crate::error::{bail, Result};
use mlx::fast::norm_rope;
use mlx::Array;
use serde_json::Value;

/// YaRN's settings, with the defaults transformers and mlx-lm share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yarn {
    pub factor: f64,
    pub original_max_position_embeddings: f64,
    pub beta_fast: f64,
    pub beta_slow: f64,
    /// What q and k are multiplied by (transformers' `attention_factor`).
    pub attention_factor: f64,
}

const YARN_KEYS: [&str; 11] = [
    "rope_type",
    "type",
    "rope_theta",
    "factor",
    "original_max_position_embeddings",
    "beta_fast",
    "beta_slow",
    "mscale",
    "mscale_all_dim",
    "attention_factor",
    "truncate",
];

impl Yarn {
    /// The scaling block of a config, or `None` when it asks for plain RoPE.
    pub fn from_config(scaling: Option<&Value>) -> Result<Option<Yarn>> {
        let Some(s) = scaling.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let kind = s
            .get("rope_type")
            .or_else(|| s.get("type"))
            .and_then(Value::as_str);
        match kind {
            None | Some("default") => return Ok(None),
            Some("yarn") => {}
            Some(other) => bail!(
                InvalidConfig,
                "rope_scaling type {other:?} is not supported (default, yarn)"
            ),
        }
        let fields = s.as_object().expect("has a rope_type, so an object");
        if let Some(key) = fields.keys().find(|k| !YARN_KEYS.contains(&k.as_str())) {
            bail!(
                InvalidConfig,
                "rope_scaling: {key:?} is not a YaRN setting this loader knows"
            );
        }
        let number = |key: &str| -> Result<Option<f64>> {
            match s.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() => Ok(Some(x)),
                    _ => bail!(InvalidConfig, "rope_scaling.{key} must be a number, got {v}"),
                },
            }
        };
        if s.get("truncate").is_some_and(|t| t != &Value::Bool(true)) {
            bail!(
                InvalidConfig,
                "rope_scaling.truncate other than true is not supported"
            );
        }
        let Some(factor) = number("factor")?.filter(|f| *f >= 1.0) else {
            bail!(InvalidConfig, "rope_scaling: YaRN needs a factor ≥ 1");
        };
        // Without it transformers and mlx-lm fall back to different lengths: refuse, never guess.
        let Some(original) = number("original_max_position_embeddings")?.filter(|n| *n > 0.0) else {
            bail!(
                InvalidConfig,
                "rope_scaling: YaRN needs original_max_position_embeddings"
            );
        };
        let (mscale, mscale_all_dim) = (number("mscale")?, number("mscale_all_dim")?);
        let attention_factor = match (number("attention_factor")?, mscale, mscale_all_dim) {
            (Some(a), _, _) => a,
            (None, None, None) => yarn_mscale(factor, 1.0),
            (None, Some(m), Some(all)) => yarn_mscale(factor, m) / yarn_mscale(factor, all),
            // transformers reads one of the two alone differently from mlx-lm.
            (None, _, _) => bail!(
                InvalidConfig,
                "rope_scaling: mscale and mscale_all_dim must come together"
            ),
        };
        Ok(Some(Yarn {
            factor,
            original_max_position_embeddings: original,
            beta_fast: number("beta_fast")?.unwrap_or(32.0),
            beta_slow: number("beta_slow")?.unwrap_or(1.0),
            attention_factor,
        }))
    }

    /// Each rotated pair's wavelength: the plain one (`base^(2i/dims)`) for the fast pairs,
    /// stretched by `factor` for the slow ones, blended linearly between the pairs that turn
    /// `beta_fast` and `beta_slow` times over the original context.
    pub fn wavelengths(&self, dims: i32, base: f64) -> Vec<f32> {
        let d = dims as f64;
        let pair_turning = |turns: f64| {
            d * (self.original_max_position_embeddings / (turns * 2.0 * std::f64::consts::PI)).ln()
                / (2.0 * base.ln())
        };
        let low = pair_turning(self.beta_fast).floor().max(0.0);
        let mut high = pair_turning(self.beta_slow).ceil().min(d - 1.0);
        if high == low {
            high += 0.001;
        }
        (0..dims / 2)
            .map(|i| {
                let plain = base.powf(2.0 * i as f64 / d);
                let stretched = self.factor * plain;
                // 0: the pair keeps its plain wavelength; 1: it takes the stretched one.
                let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                (plain * stretched / (stretched * (1.0 - ramp) + plain * ramp)) as f32
            })
            .collect()
    }
}

fn yarn_mscale(factor: f64, mscale: f64) -> f64 {
    if factor <= 1.0 {
        1.0
    } else {
        0.1 * mscale * factor.ln() + 1.0
    }
}

/// RoPE over whole heads of `head_dim`, as the model applies it to q and k.
#[derive(Debug)]
pub struct Rope {
    base: f32,
    /// YaRN: each pair's wavelength (float32 `[head_dim / 2]`) and q/k's factor.
    yarn: Option<(Array, f32)>,
}

impl Rope {
    pub fn new(head_dim: i32, base: f32, yarn: Option<&Yarn>) -> Result<Rope> {
        let yarn = match yarn {
            None => None,
            Some(y) => {
                let wavelengths = y.wavelengths(head_dim, base as f64);
                let freqs = Array::from_slice(&wavelengths, &[head_dim / 2])?;
                Some((freqs, y.attention_factor as f32))
            }
        };
        Ok(Rope { base, yarn })
    }

    /// q or k straight from its projection, `x` `[B, L, heads · head_dim]` →
    /// `[B, heads, L, head_dim]`: each head rms_norm'd with `weight`, times YaRN's attention
    /// factor (in x's dtype, as mlx-lm multiplies), then rotated, row b's first token at
    /// position `starts[b]` (int32 `[B]`, or `[1]` for every row); one node on the CPU.
    pub fn apply_normed(
        &self,
        x: &Array,
        heads: i32,
        weight: &Array,
        eps: f32,
        starts: &Array,
    ) -> Result<Array> {
        let (base, freqs, factor) = self.parts();
        Ok(norm_rope(x, weight, eps, heads, base, starts, freqs, factor)?)
    }

    /// The base, YaRN's wavelengths if any, and q/k's factor (1 without YaRN), as the fused
    /// kernels take them.
    pub fn parts(&self) -> (f32, Option<&Array>, f32) {
        match &self.yarn {
            None => (self.base, None, 1.0),
            Some((freqs, factor)) => (self.base, Some(freqs), *factor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Option<Yarn>> {
        Yarn::from_config(Some(&v))
    }

    #[test]
    fn plain_rope_needs_no_scaling() {
        assert_eq!(Yarn::from_config(None).unwrap(), None);
        assert_eq!(parse(Value::Null).unwrap(), None);
        assert_eq!(
            parse(json!({"rope_type": "default", "rope_theta": 1e6})).unwrap(),
            None
        );
    }

    #[test]
    fn qwen3s_documented_yarn_block_reads_with_the_shared_defaults() {
        let y = parse(json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}))
            .unwrap()
            .unwrap();
        assert_eq!((y.factor, y.beta_fast, y.beta_slow), (4.0, 32.0, 1.0));
        assert!((y.attention_factor - (0.1 * 4f64.ln() + 1.0)).abs() < 1e-12);
        let w = y.wavelengths(128, 1e6);
        // The fastest pair keeps its wavelength (1), the slowest is stretched by the factor.
        assert_eq!(w[0], 1.0);
        let plain_last = 1e6f64.powf(126.0 / 128.0);
        assert!(((w[63] as f64) / plain_last - 4.0).abs() < 1e-5);
        assert!(w.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn what_cannot_be_read_without_guessing_is_refused_by_name() {
        let refused = |v: Value, needle: &str| {
            let e = parse(v).unwrap_err();
            assert_eq!(e.kind(), "invalid_config");
            assert!(e.to_string().contains(needle), "{e} should name {needle}");
        };
        refused(json!({"rope_type": "longrope", "factor": 4.0}), "longrope");
        refused(
            json!({"rope_type": "yarn", "factor": 4.0}),
            "original_max_position_embeddings",
        );
        refused(
            json!({"rope_type": "yarn", "factor": 0.5, "original_max_position_embeddings": 64}),
            "factor",
        );
        let base = json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        refused(with("low_freq_factor", json!(1.0)), "low_freq_factor");
        refused(with("mscale", json!(0.7)), "mscale");
        refused(with("truncate", json!(false)), "truncate");
        refused(with("beta_fast", json!("32")), "beta_fast");
        let mut both = with("mscale", json!(1.0));
        both["mscale_all_dim"] = json!(1.0);
        assert_eq!(parse(both).unwrap().unwrap().attention_factor, 1.0);
        let given = parse(with("attention_factor", json!(1.5))).unwrap().unwrap();
        assert_eq!(given.attention_factor, 1.5);
    }
}
