//! The checker's core: names, NEP 50 weak scalars and the conversions every operation shares.

use std::collections::BTreeMap;

use crate::call;
use crate::dtype::{DType, promote};
use crate::error::ExprError;
use crate::fold::{self, Category, PyScalar, category};
use crate::lex::Span;
use crate::parse::{self, Infix, Node, NodeKind};
use crate::shape;
use crate::tree::{ArrayInfo, Expr, Kind, Scalar};

/// Parses and checks `source` against the inputs.
pub fn check(source: &str, inputs: &BTreeMap<String, ArrayInfo>) -> Result<Expr, ExprError> {
    let tree = parse::parse(source)?;
    let checker = Checker { source, inputs };
    let value = checker.value(&tree)?;
    checker.strong(value)
}

/// A checked value: a Python scalar that has not met an array yet (NEP 50 "weak"), or a typed node.
pub(crate) enum Val {
    Weak(PyScalar, Span),
    Strong(Expr),
}

impl Val {
    pub(crate) fn span(&self) -> Span {
        match self {
            Val::Weak(_, span) => *span,
            Val::Strong(e) => e.span,
        }
    }

    pub(crate) fn shape(&self) -> &[u64] {
        match self {
            Val::Weak(..) => &[],
            Val::Strong(e) => &e.shape,
        }
    }

    /// The dtype the value has on its own; a lone Python scalar takes NumPy's default for its kind.
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Val::Weak(s, _) => s.default_dtype(),
            Val::Strong(e) => e.dtype,
        }
    }

    pub(crate) fn category(&self) -> Category {
        match self {
            Val::Weak(s, _) => s.category(),
            Val::Strong(e) => category(e.dtype),
        }
    }
}

/// NumPy 2's result dtype of two operands, where Python scalars only count by kind (NEP 50).
pub(crate) fn result_type(l: &Val, r: &Val) -> DType {
    match (l, r) {
        (Val::Strong(a), Val::Strong(b)) => promote(a.dtype, b.dtype),
        (Val::Weak(s, _), Val::Strong(e)) | (Val::Strong(e), Val::Weak(s, _)) => {
            if category(e.dtype) >= s.category() {
                e.dtype
            } else {
                promote(e.dtype, s.default_dtype())
            }
        }
        (Val::Weak(a, _), Val::Weak(b, _)) => a.default_dtype().max(b.default_dtype()),
    }
}

/// Wraps `e` so it has `dtype`; no-op casts are skipped and scalars are converted in place.
pub(crate) fn cast(e: Expr, dtype: DType) -> Expr {
    if e.dtype == dtype {
        return e;
    }
    if let Kind::Scalar(s) = e.kind
        && let Some(s) = recast(s, dtype)
    {
        return Expr {
            kind: Kind::Scalar(s),
            dtype,
            ..e
        };
    }
    Expr {
        shape: e.shape.clone(),
        span: e.span,
        kind: Kind::Cast(Box::new(e)),
        dtype,
    }
}

/// Converts a scalar value when that loses nothing NumPy's cast would keep; otherwise the caller casts.
fn recast(s: Scalar, dtype: DType) -> Option<Scalar> {
    let py = match s {
        Scalar::Bool(b) => PyScalar::Bool(b),
        Scalar::Int(v) => PyScalar::Int(i128::from(v)),
        Scalar::Float(v) => PyScalar::Float(v),
    };
    py.to_scalar(dtype).ok()
}

pub(crate) struct Checker<'s> {
    pub(crate) source: &'s str,
    pub(crate) inputs: &'s BTreeMap<String, ArrayInfo>,
}

impl Checker<'_> {
    pub(crate) fn err(&self, span: Span, message: impl Into<String>) -> ExprError {
        ExprError::new(self.source, span, message)
    }

    /// The source text of a span, for naming operands in messages.
    pub(crate) fn text(&self, span: Span) -> &str {
        self.source.get(span.0..span.1).unwrap_or("")
    }

    /// How an operand is described in messages: its dtype, or that it is a Python scalar.
    pub(crate) fn describe(&self, v: &Val) -> String {
        match v {
            Val::Weak(s, span) => format!("{} is a Python {}", self.text(*span), s.type_name()),
            Val::Strong(e) => format!("{} has dtype {}", self.text(e.span), e.dtype),
        }
    }

    /// Converts a value to `dtype`: Python scalars directly, typed nodes through `cast`.
    pub(crate) fn convert(&self, v: Val, dtype: DType) -> Result<Expr, ExprError> {
        match v {
            Val::Weak(s, span) => s
                .to_scalar(dtype)
                .map(|s| Expr {
                    kind: Kind::Scalar(s),
                    shape: vec![],
                    dtype,
                    span,
                })
                .map_err(|m| self.err(span, m)),
            Val::Strong(e) => Ok(cast(e, dtype)),
        }
    }

    /// A value as a typed node in its own dtype, as NumPy functions see a Python scalar.
    pub(crate) fn strong(&self, v: Val) -> Result<Expr, ExprError> {
        let dtype = v.dtype();
        self.convert(v, dtype)
    }

    /// Broadcasts operands, naming the first pair that conflicts.
    pub(crate) fn broadcast(&self, operands: &[&Val], span: Span) -> Result<Vec<u64>, ExprError> {
        let mut result: Vec<u64> = vec![];
        for (i, v) in operands.iter().enumerate() {
            if let Some(s) = shape::broadcast(&result, v.shape()) {
                result = s;
                continue;
            }
            // Pairwise compatibility of all operands implies overall compatibility, so some earlier one conflicts.
            let other = operands[..i]
                .iter()
                .find(|o| shape::broadcast(o.shape(), v.shape()).is_none())
                .unwrap_or(&operands[0]);
            return Err(self.err(
                span,
                format!(
                    "cannot broadcast {} (shape {}) with {} (shape {}) in \"{}\"",
                    self.text(other.span()),
                    shape::format(other.shape()),
                    self.text(v.span()),
                    shape::format(v.shape()),
                    self.text(span)
                ),
            ));
        }
        Ok(result)
    }

    /// Checks one syntax node. Each arm only dispatches: this recurses once per tree level, and
    /// debug builds give every temporary of every arm its own stack slot.
    pub(crate) fn value(&self, node: &Node) -> Result<Val, ExprError> {
        let span = node.span;
        match &node.kind {
            NodeKind::Int(v) => Ok(Val::Weak(PyScalar::Int(*v), span)),
            NodeKind::Float(v) => Ok(Val::Weak(PyScalar::Float(*v), span)),
            NodeKind::Bool(b) => Ok(Val::Weak(PyScalar::Bool(*b), span)),
            NodeKind::Name(name) => self.name(name, span),
            NodeKind::Attr {
                base,
                name,
                name_span,
            } => self.attribute(base, name, *name_span, span),
            NodeKind::Call { callee, args } => self.call(callee, args, span),
            NodeKind::Subscript { base, items } => self.subscript_node(base, items, span),
            NodeKind::Unary { op, op_span, arg } => self.prefix_node(*op, arg, span, *op_span),
            NodeKind::Binary {
                op,
                op_span,
                lhs,
                rhs,
            } => self.binary_node(*op, lhs, rhs, span, *op_span),
            NodeKind::None | NodeKind::Tuple(_) => Err(self.misplaced(node)),
        }
    }

    fn subscript_node(
        &self,
        base: &Node,
        items: &[parse::SubItem],
        span: Span,
    ) -> Result<Val, ExprError> {
        let base = self.value(base)?;
        self.subscript(base, items, span)
    }

    fn prefix_node(
        &self,
        op: parse::Prefix,
        arg: &Node,
        span: Span,
        op_span: Span,
    ) -> Result<Val, ExprError> {
        let arg = self.value(arg)?;
        self.prefix(op, arg, span, op_span)
    }

    fn binary_node(
        &self,
        op: Infix,
        lhs: &Node,
        rhs: &Node,
        span: Span,
        op_span: Span,
    ) -> Result<Val, ExprError> {
        let lhs = self.value(lhs)?;
        let rhs = self.value(rhs)?;
        match op {
            Infix::Op(op) => self.binary(op, lhs, rhs, span, op_span),
            Infix::MatMul => self.matmul(lhs, rhs, span),
        }
    }

    #[cold]
    fn misplaced(&self, node: &Node) -> ExprError {
        let message = if matches!(node.kind, NodeKind::None) {
            "None is only allowed as axis=None or as a part of a slice".to_string()
        } else {
            format!(
                "a tuple is only allowed as the axis of a reduction, e.g. sum(a, axis=(0, 1)); \
                 got {}",
                self.text(node.span)
            )
        };
        self.err(node.span, message)
    }

    /// `np` and `numpy` name the module unless an input shadows them, as Python scoping would.
    pub(crate) fn is_module(&self, node: &Node) -> bool {
        matches!(&node.kind, NodeKind::Name(n)
            if (n == "np" || n == "numpy") && !self.inputs.contains_key(n))
    }

    pub(crate) fn input_list(&self) -> String {
        if self.inputs.is_empty() {
            "there are no inputs".to_string()
        } else {
            let names: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
            format!("inputs: {}", names.join(", "))
        }
    }

    fn name(&self, name: &str, span: Span) -> Result<Val, ExprError> {
        if let Some(info) = self.inputs.get(name) {
            return Ok(Val::Strong(Expr {
                kind: Kind::Input(name.to_string()),
                shape: info.shape.clone(),
                dtype: info.dtype,
                span,
            }));
        }
        if let Some(v) = call::constant(name, false) {
            return Ok(Val::Weak(PyScalar::Float(v), span));
        }
        let message = if call::function(name).is_some() {
            format!("function \"{name}\" must be called, e.g. {name}(a)")
        } else if name == "np" || name == "numpy" {
            format!(
                "the module \"{name}\" is not a value; call one of its functions, e.g. {name}.sum(a)"
            )
        } else {
            format!("unknown name \"{name}\" ({})", self.input_list())
        };
        Err(self.err(span, message))
    }

    /// Python's operator on two Python scalars happens before NumPy sees them, so the result stays weak.
    pub(crate) fn fold(
        &self,
        op: crate::tree::BinaryOp,
        a: PyScalar,
        b: PyScalar,
        span: Span,
    ) -> Result<Val, ExprError> {
        fold::binary(op, a, b)
            .map(|v| Val::Weak(v, span))
            .map_err(|m| self.err(span, format!("{m} in \"{}\"", self.text(span))))
    }
}
