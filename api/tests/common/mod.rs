//! What the API's test files share.

use kask_api::{LoadError, load_job};

/// The validation errors of a job file, as `field.path: message` lines.
pub fn errors_of(yaml: &str) -> Vec<String> {
    match load_job("job.yaml", yaml) {
        Err(LoadError::Invalid { errors, .. }) => errors.0.iter().map(|e| e.to_string()).collect(),
        other => panic!("expected validation errors, got {other:?}"),
    }
}
