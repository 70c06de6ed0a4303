//! Errors cross into Elixir as `{kind_atom, message}`; Elixir wraps them in `Qwen3.Error`.

use rustler::{Atom, Encoder, Env, Term};

#[derive(Debug)]
pub struct NifError {
    pub kind: &'static str,
    pub message: String,
}

impl NifError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        NifError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("invalid_argument", message)
    }

    pub fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let kind = Atom::from_str(env, self.kind).expect("kinds are valid atoms");
        (kind, self.message.as_str()).encode(env)
    }
}

impl From<mlx::Error> for NifError {
    fn from(e: mlx::Error) -> Self {
        NifError::new(e.kind(), e.to_string())
    }
}

impl From<qwen3::Error> for NifError {
    fn from(e: qwen3::Error) -> Self {
        NifError::new(e.kind(), e.to_string())
    }
}

pub type NifResult<T> = Result<T, NifError>;

impl rustler::Encoder for NifError {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        NifError::encode(self, env)
    }
}
