//! Errors from MLX and from the checks made before calling it.

/// Every error carries a kind (an atom on the Elixir side) and a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// MLX threw a C++ exception (caught in the bridge).
    #[error("{0}")]
    Mlx(String),
    /// A shape, dtype or argument that fails a check made before calling MLX.
    #[error("{0}")]
    InvalidArgument(String),
    /// The array belongs to another device's worker.
    #[error("{0}")]
    WrongDevice(String),
    /// The device is not available in this MLX build or machine.
    #[error("{0}")]
    DeviceUnavailable(String),
    /// The worker thread is gone (only after a fatal error).
    #[error("{0}")]
    WorkerGone(String),
    /// A file could not be read or is not valid safetensors.
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    InvalidFile(String),
}

impl Error {
    /// The kind as it appears in `%Qwen3.Error{kind: ...}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Mlx(_) => "mlx",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::WrongDevice(_) => "wrong_device",
            Error::DeviceUnavailable(_) => "device_unavailable",
            Error::WorkerGone(_) => "worker_gone",
            Error::Io(_) => "io",
            Error::InvalidFile(_) => "invalid_file",
        }
    }
}

impl From<cxx::Exception> for Error {
    fn from(e: cxx::Exception) -> Self {
        Error::Mlx(e.what().to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for an `InvalidArgument` error with a formatted message.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::Error::InvalidArgument(format!($($arg)*)) };
}
