//! The NIF library behind `Qwen3.Native`. Every function that touches MLX posts its work
//! to the device's worker thread and returns a reference; see `dispatch`.

mod args;
mod array;
mod chat_template;
mod constraint;
mod device;
mod dispatch;
mod error;
mod hub;
mod json;
mod model;
mod reply;
mod sampler;
mod saved_cache;
mod tokenizer;

rustler::init!("Elixir.Qwen3.Native");
