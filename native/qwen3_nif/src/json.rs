//! JSON to terms through serde_json (objects become maps with string keys, null becomes nil).

use crate::error::{NifError, NifResult};
use rustler::{Env, Term};

#[rustler::nif(schedule = "DirtyCpu")]
fn json_decode<'a>(env: Env<'a>, text: rustler::Binary<'a>) -> NifResult<Term<'a>> {
    let value: serde_json::Value =
        serde_json::from_slice(text.as_slice()).map_err(|e| NifError::new("invalid_json", e.to_string()))?;
    rustler::serde::to_term(env, value).map_err(|e| NifError::invalid(e.to_string()))
}

/// Terms to JSON: maps (atom or string keys), lists, binaries, numbers, booleans, nil, atoms.
#[rustler::nif(schedule = "DirtyCpu")]
fn json_encode(term: Term, pretty: bool) -> NifResult<String> {
    let value: serde_json::Value = rustler::serde::from_term(term)
        .map_err(|e| NifError::invalid(format!("cannot encode as JSON: {e}")))?;
    let text = if pretty {
        serde_json::to_string_pretty(&value)
    } else {
        serde_json::to_string(&value)
    };
    text.map_err(|e| NifError::invalid(e.to_string()))
}
