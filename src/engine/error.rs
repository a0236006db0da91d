//! Errors of the storage engine. `Corrupted` data is kept apart from I/O
//! failures: the first means "bytes on disk are not what we wrote", the
//! second "the OS refused". The binding maps each variant to a stable code.

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// Bytes on disk fail a checksum or a structural check.
    Corrupted { what: String },
    /// The caller passed something the engine cannot accept.
    InvalidArg(String),
    /// A write was asked of a read-only instance.
    ReadOnly(&'static str),
    /// The instance was closed.
    Closed,
    /// The operating system reported an error.
    Io { op: &'static str, path: PathBuf, source: io::Error },
    /// A bug: an invariant of the engine did not hold (for example a worker panicked).
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn corrupted(what: impl Into<String>) -> Self {
        Error::Corrupted { what: what.into() }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    /// Stable code for JavaScript (`error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Corrupted { .. } => "PACKCACHE_CORRUPT",
            Error::InvalidArg(_) => "PACKCACHE_INVALID_ARG",
            Error::ReadOnly(_) => "PACKCACHE_READONLY",
            Error::Closed => "PACKCACHE_CLOSED",
            Error::Io { .. } => "PACKCACHE_IO",
            Error::Internal(_) => "PACKCACHE_INTERNAL",
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Corrupted { what } => write!(f, "cache data is corrupt: {what}"),
            Error::InvalidArg(msg) => write!(f, "invalid argument: {msg}"),
            Error::ReadOnly(op) => write!(f, "{op} is not allowed on a readonly PackStorage"),
            Error::Closed => write!(f, "PackStorage is closed"),
            Error::Io { op, path, source } => {
                write!(f, "{op} {} failed: {source}", path.display())
            }
            Error::Internal(msg) => write!(f, "internal error: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

pub fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a worker panicked".into())
}
