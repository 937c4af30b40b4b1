//! The array expression language: parsing, names, shapes and dtypes.

mod common;
mod dtypes;
mod errors;
mod props;
mod shapes;
mod syntax;
