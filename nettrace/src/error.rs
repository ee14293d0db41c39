//! What can end a session early, with the kind of failure that decides the
//! exit status: the user's input (2), a system or kernel that cannot do what
//! was asked (2), or something that broke while running (1).
//!
//! Modes say which kind an error is where they know it; `main` only maps
//! kinds to exit codes.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage found after parsing: unknown hook names, a broken
    /// `--rules` file, flags this kernel cannot honour as given.
    #[error("{0}")]
    Usage(String),
    /// The system cannot run what was asked: not root, no BTF, a kernel
    /// without the hooks or tracepoints a mode needs.
    #[error("{0}")]
    Unsupported(String),
    /// Something broke while running (a map missing from the object, a
    /// failed read): a bug or a changing system, not the user's doing.
    #[error("{0:#}")]
    Runtime(anyhow::Error),
}

impl Error {
    /// 2 for usage and unsupported systems (as clap exits on bad flags),
    /// 1 for runtime failures.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) | Error::Unsupported(_) => ExitCode::from(2),
            Error::Runtime(_) => ExitCode::FAILURE,
        }
    }

    /// An unsupported-system error.
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Error::Unsupported(msg.into())
    }
}

/// Everything else that can go wrong at run time is a runtime failure.
macro_rules! runtime_from {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Runtime(e.into())
            }
        }
    )*};
}

runtime_from!(
    anyhow::Error,
    std::io::Error,
    aya::EbpfError,
    aya::maps::MapError,
    aya::programs::ProgramError,
    tokio::task::JoinError,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_code(), ExitCode::from(2));
        assert_eq!(Error::unsupported("x").exit_code(), ExitCode::from(2));
        let e = Error::from(anyhow::anyhow!("inner").context("outer"));
        assert_eq!(e.exit_code(), ExitCode::FAILURE);
        // The whole chain, as `{:#}` prints it.
        assert_eq!(e.to_string(), "outer: inner");
    }
}
