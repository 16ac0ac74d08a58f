//! The one error type of crossrank, and the only place where foreign errors become ours.
//!
//! Every variant has a stable [`Error::code`] that crosses into JavaScript unchanged, so callers
//! can branch on the kind of failure without parsing messages.

/// Everything that can go wrong while loading a model or scoring pairs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `config.json` (or the config stored in a GGUF) is unreadable or describes an unusable model.
    #[error("{file}: {message}")]
    Config { file: String, message: String },

    /// The tokenizer (`tokenizer.json`, `vocab.txt`, or the one stored in a GGUF) cannot be built or used.
    #[error("tokenizer ({file}): {message}")]
    Tokenizer { file: String, message: String },

    /// A weight tensor is missing, has the wrong shape or dtype, or holds non-finite values.
    #[error("{file}: tensor `{tensor}`: {message}")]
    Weights { file: String, tensor: String, message: String },

    /// A model file is not what it claims to be: wrong magic, truncated, or corrupt.
    #[error("{file}: {message}")]
    ModelFormat { file: String, message: String },

    /// A file could not be read (native loaders only; the library itself reads no files).
    #[error("{file}: {message}")]
    Io { file: String, message: String },

    /// The caller's input cannot be scored: empty query, no documents, bad options.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A valid request that crossrank does not support (e.g. a quantisation the shapes forbid).
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// The tensor backend failed while scoring; this is a bug or an out-of-memory condition.
    #[error("compute: {0}")]
    Compute(String),
}

impl Error {
    /// Every [`Error::code`], in the enum's order: the one list of codes. The npm package's
    /// `ErrorCode` is generated from it (`www/src/contract.js`, by `tests/contract.rs`), and the
    /// fuzz harness checks every error against it.
    pub const CODES: [&'static str; 8] = ["config", "tokenizer", "weights", "model_format", "io", "invalid_input", "unsupported", "compute"];

    /// The codes only the native loaders raise: the browser build reads no files ([`Error::Io`]).
    pub const NATIVE_ONLY_CODES: [&'static str; 1] = ["io"];

    /// A stable, machine-readable name for the kind of error (it crosses into JavaScript as `code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::Tokenizer { .. } => "tokenizer",
            Error::Weights { .. } => "weights",
            Error::ModelFormat { .. } => "model_format",
            Error::Io { .. } => "io",
            Error::InvalidInput(_) => "invalid_input",
            Error::Unsupported(_) => "unsupported",
            Error::Compute(_) => "compute",
        }
    }

    pub fn config(file: &str, message: impl Into<String>) -> Self {
        Error::Config { file: file.to_string(), message: message.into() }
    }

    /// The message without the kind's own prefix ("invalid input: ", "unsupported: ", "compute: "),
    /// for output that prints [`Error::code`] beside it, as the CLI does.
    pub fn detail(&self) -> String {
        match self {
            Error::InvalidInput(message) | Error::Unsupported(message) | Error::Compute(message) => message.clone(),
            other => other.to_string(),
        }
    }

    pub fn tokenizer(file: &str, message: impl std::fmt::Display) -> Self {
        Error::Tokenizer { file: file.to_string(), message: message.to_string() }
    }

    pub fn weights(file: &str, tensor: &str, message: impl Into<String>) -> Self {
        Error::Weights { file: file.to_string(), tensor: tensor.to_string(), message: message.into() }
    }

    pub fn format(file: &str, message: impl std::fmt::Display) -> Self {
        Error::ModelFormat { file: file.to_string(), message: message.to_string() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }
}

/// Candle errors reaching this conversion happen while computing, after every weight was checked
/// at load time; loaders map their candle errors explicitly, with the file and tensor named.
impl From<candle_core::Error> for Error {
    fn from(error: candle_core::Error) -> Self {
        Error::Compute(error.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every kind. The match has no wildcard, so a new variant does not compile until
    /// it is added here (and its code to [`Error::CODES`]).
    fn one_of_each() -> Vec<Error> {
        let all = vec![
            Error::config("f", "m"),
            Error::tokenizer("f", "m"),
            Error::weights("f", "t", "m"),
            Error::format("f", "m"),
            Error::Io { file: "f".into(), message: "m".into() },
            Error::invalid("m"),
            Error::Unsupported("m".into()),
            Error::Compute("m".into()),
        ];
        for error in &all {
            match error {
                Error::Config { .. }
                | Error::Tokenizer { .. }
                | Error::Weights { .. }
                | Error::ModelFormat { .. }
                | Error::Io { .. }
                | Error::InvalidInput(_)
                | Error::Unsupported(_)
                | Error::Compute(_) => {}
            }
        }
        all
    }

    #[test]
    fn codes_lists_every_variants_code_once_in_order() {
        let codes: Vec<&str> = one_of_each().iter().map(Error::code).collect();
        assert_eq!(codes, Error::CODES);
        for code in Error::NATIVE_ONLY_CODES {
            assert!(Error::CODES.contains(&code), "{code}");
        }
    }
}
