//! The NumPy expression language of Kask array jobs: parsing and plan-time type and shape checking.
//!
//! [`check`] turns source such as `(a * b).sum(axis=0)` plus the shapes and dtypes of the
//! named inputs into a typed [`Expr`] tree. Every node carries its shape and dtype, and
//! [`Kind::Cast`] nodes are already in place, so the evaluator never has to promote.
//! Nothing here reads data.
//!
//! ```
//! use std::collections::BTreeMap;
//! use kask_array_expr::{ArrayInfo, DType, Kind, check};
//!
//! let mut inputs = BTreeMap::new();
//! inputs.insert("a".to_string(), ArrayInfo { shape: vec![1000, 50], dtype: DType::F32 });
//! inputs.insert("b".to_string(), ArrayInfo { shape: vec![50], dtype: DType::I32 });
//!
//! let expr = check("(a * b).sum(axis=0)", &inputs)?;
//! assert_eq!(expr.shape, vec![50]);
//! // float32 with int32 promotes to float64, as in NumPy.
//! assert_eq!(expr.dtype, DType::F64);
//! assert!(matches!(expr.kind, Kind::Reduce { .. }));
//! assert_eq!(expr.to_string(), "(sum (* (float64 a) (float64 b)) axes=[0])");
//!
//! let source = "a + c";
//! let err = check(source, &inputs).expect_err("c is not an input");
//! assert_eq!(
//!     err.render(source),
//!     "at column 5: unknown name \"c\" (inputs: a, b)\n  a + c\n      ^"
//! );
//! # Ok::<(), kask_array_expr::ExprError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod call;
mod check;
mod dtype;
mod error;
mod fold;
mod lex;
mod ops;
mod parse;
mod shape;
mod tree;

pub use check::check;
pub use dtype::{DType, promote};
pub use error::ExprError;
pub use tree::{ArrayInfo, AxisIndex, BinaryOp, Expr, Kind, ReduceOp, Scalar, UnaryOp};
