//! The `DaskJob` custom resource (`kask.dev/v1alpha1`): its types, reading it from YAML, and
//! structural validation. Operator and worker both depend on this crate alone for the API.

pub mod array;
pub mod bag;
pub mod crd;
mod crd_docs;
pub mod groups;
pub mod history;
pub mod load;
pub mod paths;
pub mod pods;
pub mod report;
pub mod spec;
pub mod sql;
pub mod status;
pub mod validate;
mod window_check;

pub use array::*;
pub use bag::*;
pub use crd::{MUTABLE_SPEC_FIELD, crd, crd_yaml};
pub use load::{LoadError, load_job, parse_job};
pub use pods::PodTemplate;
pub use spec::*;
pub use sql::SqlJob;
pub use status::*;
pub use validate::{FieldError, StepRef, ValidationErrors, validate};
