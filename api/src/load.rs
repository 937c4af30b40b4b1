//! Reading a `DaskJob` from YAML, with errors that point at the line and column.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::spec::{DaskJob, DaskJobSpec};
use crate::validate::{ValidationErrors, validate};

/// The API version this crate reads and writes.
pub const API_VERSION: &str = "kask.dev/v1alpha1";
/// The resource kind.
pub const KIND: &str = "DaskJob";

/// Why a job file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The text is not YAML, or does not have the DaskJob's shape.
    #[error("{source_name}:{line}:{column}: {message}")]
    Yaml {
        /// The file (or `<stdin>`).
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser found.
        message: String,
    },
    /// The YAML parser failed without a position.
    #[error("{source_name}: {message}")]
    Shape {
        /// The file.
        source_name: String,
        /// What the parser found.
        message: String,
    },
    /// The document is some other resource.
    #[error(
        "{source_name}: expected apiVersion {API_VERSION} and kind {KIND}, found apiVersion {api_version:?} and kind {kind:?}"
    )]
    WrongKind {
        /// The file.
        source_name: String,
        /// What the document says.
        api_version: String,
        /// What the document says.
        kind: String,
    },
    /// The spec breaks validation rules.
    #[error("{source_name}: {errors}")]
    Invalid {
        /// The file.
        source_name: String,
        /// Every error.
        errors: ValidationErrors,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    spec: DaskJobSpec,
    #[serde(default)]
    #[allow(dead_code)] // a status in a file is accepted and ignored, as kubectl apply does
    status: Option<serde_yaml::Value>,
}

/// Parses a job without validating its spec.
pub fn parse_job(source_name: &str, text: &str) -> Result<DaskJob, LoadError> {
    let doc: Document = serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(loc) => LoadError::Yaml {
            source_name: source_name.to_string(),
            line: loc.line(),
            column: loc.column(),
            message: strip_location(&e.to_string()),
        },
        None => LoadError::Shape {
            source_name: source_name.to_string(),
            message: e.to_string(),
        },
    })?;
    if doc.api_version != API_VERSION || doc.kind != KIND {
        return Err(LoadError::WrongKind {
            source_name: source_name.to_string(),
            api_version: doc.api_version,
            kind: doc.kind,
        });
    }
    let mut job = DaskJob::new(doc.metadata.name.as_deref().unwrap_or("local"), doc.spec);
    job.metadata = doc.metadata;
    Ok(job)
}

/// Parses and validates a job.
pub fn load_job(source_name: &str, text: &str) -> Result<DaskJob, LoadError> {
    let job = parse_job(source_name, text)?;
    validate(&job.spec).map_err(|errors| LoadError::Invalid {
        source_name: source_name.to_string(),
        errors,
    })?;
    Ok(job)
}

/// serde_yaml appends " at line L column C"; the error shows the position up front instead.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
