//! Model errors; each has a kind that becomes `%Qwen3.Error{kind: ...}`.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Mlx(#[from] mlx::Error),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    MissingTensor(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    CacheOverflow(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    InvalidGrammar(String),
    #[error("{0}")]
    OutOfMemory(String),
    #[error("{0}")]
    IncompatibleCache(String),
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Mlx(e) => e.kind(),
            Error::InvalidConfig(_) => "invalid_config",
            Error::MissingTensor(_) => "missing_tensor",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::CacheOverflow(_) => "cache_overflow",
            Error::Io(_) => "io",
            Error::InvalidGrammar(_) => "invalid_grammar",
            Error::OutOfMemory(_) => "out_of_memory",
            Error::IncompatibleCache(_) => "incompatible_cache",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => { return Err($crate::error::Error::$kind(format!($($arg)*))) };
}
pub(crate) use bail;
