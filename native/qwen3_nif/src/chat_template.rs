//! Chat templates (Jinja, from `tokenizer_config.json`) rendered with minijinja, set up the
//! way Hugging Face renders them: trimmed blocks, Python string methods, Python-style tojson.

use crate::error::{NifError, NifResult};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{Environment, Error, ErrorKind};
use rustler::{Resource, ResourceArc, Term};
use serde::Serialize;
use std::panic::AssertUnwindSafe;

pub struct ChatTemplateRef {
    // Rendering never leaves the environment half-changed, so unwinding past it is safe.
    env: AssertUnwindSafe<Environment<'static>>,
}

#[rustler::resource_impl]
impl Resource for ChatTemplateRef {}

const NAME: &str = "chat_template";

fn template_error(e: Error) -> NifError {
    let mut message = e.to_string();
    if let Some(detail) = e.detail() {
        message = format!("{message} ({detail})");
    }
    NifError::new("template", message)
}

/// `json.dumps(value, ensure_ascii=False)`: `", "` and `": "` separators, no HTML escaping.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let _: Option<Value> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value
        .serialize(&mut ser)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let text = String::from_utf8(out).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(Value::from_safe_string(text))
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        separator(w, first)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        separator(w, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

fn separator<W: ?Sized + std::io::Write>(w: &mut W, first: bool) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        w.write_all(b", ")
    }
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn chat_template_new(source: String) -> NifResult<ResourceArc<ChatTemplateRef>> {
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(template_error)?;
    env.set_syntax(syntax);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", tojson);
    env.add_function("raise_exception", raise_exception);
    env.add_template_owned(NAME, source).map_err(template_error)?;
    Ok(ResourceArc::new(ChatTemplateRef {
        env: AssertUnwindSafe(env),
    }))
}

/// Renders with `context` (a map: messages, add_generation_prompt, enable_thinking, tools…).
#[rustler::nif(schedule = "DirtyCpu")]
fn chat_template_render(t: ResourceArc<ChatTemplateRef>, context: Term) -> NifResult<String> {
    let context: serde_json::Value = rustler::serde::from_term(context)
        .map_err(|e| NifError::invalid(format!("the chat context cannot be converted: {e}")))?;
    let template = t.env.get_template(NAME).map_err(template_error)?;
    template
        .render(Value::from(Serde(&context)))
        .map_err(template_error)
}
