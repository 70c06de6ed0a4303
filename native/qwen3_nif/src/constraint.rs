//! Compiled constraints as resources (`Qwen3.Constraint`). Compiling touches no MLX: these
//! NIFs answer directly, on a dirty scheduler (the first one builds the vocabulary's token
//! trie, about a second for Qwen3's 151,936 tokens).

use crate::error::{NifError, NifResult};
use crate::model::ModelRef;
use qwen3::constraint::{Constraint, GrammarSource, Grammars};
use rustler::{Resource, ResourceArc};
use std::sync::{Arc, Mutex};

/// A compiled grammar, as it stands before any token: each generation takes a copy.
pub struct ConstraintRef {
    pub constraint: Mutex<Constraint>,
}

#[rustler::resource_impl]
impl Resource for ConstraintRef {}

impl ConstraintRef {
    pub fn fresh(&self) -> NifResult<Constraint> {
        self.constraint
            .lock()
            .map(|c| c.clone())
            .map_err(|_| NifError::invalid("the constraint was poisoned by a panic"))
    }
}

fn grammars(model: &ModelRef, tokenizer_json: &str) -> NifResult<Arc<Grammars>> {
    model
        .grammars
        .get_or_init(|| {
            Grammars::from_tokenizer_json(
                std::path::Path::new(tokenizer_json),
                model.vocab_size,
                &model.eos_token_ids,
            )
            .map(Arc::new)
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| NifError::new("invalid_grammar", format!("no grammars for this tokenizer: {e}")))
}

/// `kind`: "json_schema" (JSON text), "regex", "lark", or "choice" (`choices`).
#[rustler::nif(schedule = "DirtyCpu")]
fn constraint_new(
    model: ResourceArc<ModelRef>,
    tokenizer_json: String,
    kind: String,
    source: String,
    choices: Vec<String>,
) -> NifResult<ResourceArc<ConstraintRef>> {
    let source = match kind.as_str() {
        "json_schema" => GrammarSource::JsonSchema(source),
        "regex" => GrammarSource::Regex(source),
        "lark" => GrammarSource::Lark(source),
        "choice" => GrammarSource::Choice(choices),
        other => return Err(NifError::invalid(format!("unknown constraint kind {other}"))),
    };
    let constraint = grammars(&model, &tokenizer_json)?.compile(&source)?;
    Ok(ResourceArc::new(ConstraintRef {
        constraint: Mutex::new(constraint),
    }))
}
