//! Safe Rust over MLX's C++ API, as much of it as Qwen3 needs.
//!
//! All MLX work must run on a device's [`Worker`] thread; [`Array`] is `!Send` to keep it
//! there, and [`Pinned`] carries values across threads without ever touching them elsewhere.

mod array;
mod dtype;
mod error;
pub mod fast;
mod ffi;
pub mod memory;
mod ops;
pub mod random;
pub mod safetensors;
mod worker;

pub use array::{async_eval, element_count, eval, synchronize, Array};
pub use dtype::{Dtype, Element};
pub use error::{Error, Result};
pub use ops::{concatenate, Binary, Reduce, Unary};
pub use worker::{panic_error, Device, Pinned, Worker};
