//! The operator's errors.

/// What can go wrong in a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{doing}: {source}")]
    Api {
        /// What the operator was doing, e.g. `creating Job revenue-s0`.
        doing: String,
        /// The API's error.
        source: kube::Error,
    },
    /// Something the operator relies on does not hold.
    #[error("{0}")]
    Invariant(String),
}

/// The operator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
