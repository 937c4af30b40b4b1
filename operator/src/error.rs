//! The operator's errors.

/// What can go wrong in a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Something the operator relies on does not hold.
    #[error("{0}")]
    Invariant(String),
}

/// The operator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
