//! The engine's error type. Variants say whose fault it is: the user's (spec, data, output
//! already there), the environment's (storage), or ours (internal).

use std::fmt;

/// Shorthand for results in the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An engine error. Messages name the input, file, field path or stage a user needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job file could not be read or is invalid.
    #[error(transparent)]
    Load(#[from] kask_api::LoadError),

    /// The spec is invalid in a way only the inputs' columns reveal (unknown column, bad
    /// expression), at a field path.
    #[error("{path}: {message}")]
    Spec {
        /// e.g. `spec.dataframe.pipeline[2].filter`
        path: String,
        /// What is wrong.
        message: String,
    },

    /// An input cannot be read as declared: no files, malformed file, mismatching columns.
    #[error("input {input:?}: {message}")]
    Input {
        /// The input's name.
        input: String,
        /// What is wrong, naming the file(s).
        message: String,
    },

    /// The output path cannot take the result.
    #[error("output {path}: {message}")]
    Output {
        /// The output path.
        path: String,
        /// What is wrong.
        message: String,
    },

    /// The object store failed or misbehaves.
    #[error("storage {url}: {message}")]
    Storage {
        /// The store's URL (no credentials).
        url: String,
        /// What failed.
        message: String,
    },

    /// The process was told to stop (SIGTERM) before it finished.
    #[error("stopped: {0}")]
    Stopped(String),

    /// A task failed while running.
    #[error("stage {stage} task {task}: {message}")]
    Task {
        /// The stage's name.
        stage: String,
        /// The task's index.
        task: usize,
        /// What failed.
        message: String,
    },

    /// A bug in kask: an invariant did not hold.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl Error {
    /// A spec error at a field path.
    pub fn spec(path: impl Into<String>, message: impl fmt::Display) -> Error {
        Error::Spec {
            path: path.into(),
            message: message.to_string(),
        }
    }
    /// An input error.
    pub fn input(input: impl Into<String>, message: impl fmt::Display) -> Error {
        Error::Input {
            input: input.into(),
            message: message.to_string(),
        }
    }
    /// An internal error.
    pub fn internal(message: impl fmt::Display) -> Error {
        Error::Internal(message.to_string())
    }
    /// Whether retrying the same task could succeed (storage and transient faults), as opposed
    /// to a deterministic failure such as bad data.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Storage { .. } | Error::Stopped(_))
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::Internal(e.to_string())
    }
}
