//! The bag expression language: SQL over JSON records.

mod errors;
mod props;
mod semantics;
