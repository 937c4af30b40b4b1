//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kask_array_expr::{ArrayInfo, DType, Expr, ExprError, check};

pub type Inputs = BTreeMap<String, ArrayInfo>;

pub fn inputs(list: &[(&str, &[u64], DType)]) -> Inputs {
    list.iter()
        .map(|(name, shape, dtype)| {
            let info = ArrayInfo {
                shape: shape.to_vec(),
                dtype: *dtype,
            };
            (name.to_string(), info)
        })
        .collect()
}

pub fn ok(src: &str, inputs: &Inputs) -> Expr {
    check(src, inputs).unwrap_or_else(|e| panic!("{src:?} should check:\n{}", e.render(src)))
}

pub fn fail(src: &str, inputs: &Inputs) -> ExprError {
    match check(src, inputs) {
        Ok(e) => panic!("{src:?} should fail but checked as {e}"),
        Err(e) => e,
    }
}

/// The checked tree as an s-expression.
pub fn tree(src: &str, inputs: &Inputs) -> String {
    ok(src, inputs).to_string()
}
