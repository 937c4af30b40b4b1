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

    /// The machine or container is set up in a way the worker cannot run in (its memory
    /// setting, its spill directory).
    #[error("environment: {0}")]
    Environment(String),

    /// Committed data went missing or changed in the store, again and again: the environment
    /// loses data, and running once more would not help.
    #[error("data lost: {0}")]
    DataLost(String),

    /// Parts of one job run different Kask versions (a plan from another release): the
    /// environment's, and lasting.
    #[error("incompatible Kask versions: {0}")]
    Incompatible(String),

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
    /// The process's exit code for this error (see [`kask_api::report::exit`]), which a Job's
    /// `podFailurePolicy` reads: a user's error fails the job after one pod.
    pub fn exit_code(&self) -> i32 {
        use kask_api::report::exit;
        match self {
            Error::Load(_)
            | Error::Spec { .. }
            | Error::Input { .. }
            | Error::Output { .. }
            | Error::Task { .. } => exit::USER,
            Error::Storage { .. } | Error::Stopped(_) => exit::TRANSIENT,
            Error::DataLost(_) | Error::Incompatible(_) | Error::Environment(_) => exit::LASTING,
            Error::Internal(_) => exit::INTERNAL,
        }
    }
    /// Whether retrying the same task could succeed (storage and transient faults), as opposed
    /// to a deterministic failure such as bad data.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Storage { .. } | Error::Stopped(_))
    }
}

/// The object store's failure beneath an error, if that is what it is: a request that failed
/// (the store unreachable, throttling, a read cut short) rather than data that could not be
/// read. Readers (DataFusion's Parquet and CSV readers) wrap such failures in their own errors;
/// this looks through them (the array kind has its own for zarrs, `kask_array::zarr::store_failure`), so that the error stays the environment's, and retryable,
/// instead of passing for a malformed file.
pub fn store_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(os) = err.downcast_ref::<object_store::Error>() {
            return Some(os.to_string());
        }
        if let Some(datafusion::error::DataFusionError::ObjectStore(os)) =
            err.downcast_ref::<datafusion::error::DataFusionError>()
        {
            return Some(os.to_string());
        }
        cur = err.source();
    }
    None
}

/// A DataFusion error as one line for a user, without DataFusion's internal wrapping.
pub fn df_message(e: &datafusion::error::DataFusionError) -> String {
    use datafusion::error::DataFusionError;
    let root = e.find_root();
    let text = match root {
        DataFusionError::ArrowError(a, _) => a.to_string(),
        DataFusionError::ParquetError(p) => p.to_string(),
        DataFusionError::External(x) => x.to_string(),
        DataFusionError::SchemaError(s, _) => s.to_string(),
        DataFusionError::Plan(s) | DataFusionError::Execution(s) => s.clone(),
        // An operator that cannot spill (or cannot spill enough) needed more than the pool.
        DataFusionError::ResourcesExhausted(s) => format!(
            "the task needed more memory than its budget allows ({s}); give the workers more \
             memory (spec.resources.limits.memory, or kask run --memory) or more tasks \
             (spec.shufflePartitions, a smaller targetTaskBytes)"
        ),
        other => other.to_string(),
    };
    // Spilling filled the spill volume (the error comes back wrapped in an I/O error from the
    // spill writer, or as ResourcesExhausted).
    if text.contains("used disk space during the spilling process") {
        return format!(
            "the task spilled more than its spill space holds ({}); give the workers more \
             (the chart's worker.spillSize) or more tasks (spec.shufflePartitions, a smaller \
             targetTaskBytes)",
            text.trim()
        );
    }
    text.trim().to_string()
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        match store_failure(&e) {
            Some(why) => Error::Storage {
                url: "the job's store".into(),
                message: why,
            },
            None => Error::Internal(e.to_string()),
        }
    }
}
