//! The dtype and shape rule of each operation, building typed nodes with the casts the evaluator relies on.

use crate::check::{Checker, Val, cast, result_type};
use crate::dtype::DType;
use crate::error::ExprError;
use crate::fold::{self, Category, PyScalar};
use crate::lex::Span;
use crate::parse::{Node, Prefix, SubItem};
use crate::shape::{self, IndexError};
use crate::tree::{AxisIndex, BinaryOp, Expr, Kind, ReduceOp, UnaryOp};

/// The non-operand arguments of a reduction.
pub(crate) struct ReduceSpec {
    /// `None` reduces every axis; otherwise the axes as written, with their spans.
    pub(crate) axis: Option<Vec<(i128, Span)>>,
    pub(crate) keepdims: bool,
    pub(crate) ddof: u64,
}

fn node(kind: Kind, shape: Vec<u64>, dtype: DType, span: Span) -> Val {
    Val::Strong(Expr {
        kind,
        shape,
        dtype,
        span,
    })
}

impl Checker<'_> {
    /// Python's prefix `-`, `+`, `~`: folded on Python scalars, NumPy ufuncs on arrays.
    pub(crate) fn prefix(
        &self,
        op: Prefix,
        v: Val,
        span: Span,
        op_span: Span,
    ) -> Result<Val, ExprError> {
        let e = match v {
            Val::Weak(s, _) => {
                return fold::unary(op, s)
                    .map(|s| Val::Weak(s, span))
                    .map_err(|m| self.err(op_span, m));
            }
            Val::Strong(e) => e,
        };
        let text = self.text(e.span);
        match op {
            Prefix::Pos => Ok(Val::Strong(Expr { span, ..e })),
            Prefix::Neg if e.dtype == DType::Bool => Err(self.err(
                op_span,
                format!(
                    "NumPy does not support unary - on booleans and {text} is bool; \
                     use ~{text} for logical not"
                ),
            )),
            Prefix::Invert if e.dtype.is_float() => Err(self.err(
                op_span,
                format!(
                    "~ needs a bool or integer operand, but {text} has dtype {}",
                    e.dtype
                ),
            )),
            Prefix::Neg => self.unary(UnaryOp::Neg, Val::Strong(e), span),
            Prefix::Invert => self.unary(UnaryOp::Not, Val::Strong(e), span),
        }
    }

    /// An elementwise function; sqrt/exp/log compute in float64 for bool and int operands.
    pub(crate) fn unary(&self, op: UnaryOp, v: Val, span: Span) -> Result<Val, ExprError> {
        let dtype = match op {
            UnaryOp::Sqrt | UnaryOp::Exp | UnaryOp::Log if !v.dtype().is_float() => DType::F64,
            _ => v.dtype(),
        };
        let arg = self.convert(v, dtype)?;
        let shape = arg.shape.clone();
        Ok(node(Kind::Unary(op, Box::new(arg)), shape, dtype, span))
    }

    pub(crate) fn binary(
        &self,
        op: BinaryOp,
        l: Val,
        r: Val,
        span: Span,
        op_span: Span,
    ) -> Result<Val, ExprError> {
        if let (Val::Weak(a, _), Val::Weak(b, _)) = (&l, &r) {
            return self.fold(op, *a, *b, span);
        }
        let (operands, result) = self.binary_dtypes(op, &l, &r, op_span)?;
        let shape = self.broadcast(&[&l, &r], span)?;
        let (l, r) = (self.convert(l, operands)?, self.convert(r, operands)?);
        Ok(node(
            Kind::Binary(op, Box::new(l), Box::new(r)),
            shape,
            result,
            span,
        ))
    }

    /// The dtype both operands are cast to, and the result dtype.
    fn binary_dtypes(
        &self,
        op: BinaryOp,
        l: &Val,
        r: &Val,
        op_span: Span,
    ) -> Result<(DType, DType), ExprError> {
        let p = result_type(l, r);
        let symbol = op.symbol();
        match op {
            BinaryOp::Add | BinaryOp::Mul => Ok((p, p)),
            BinaryOp::Sub if p == DType::Bool => Err(self.err(
                op_span,
                format!(
                    "NumPy does not support - on two booleans ({} and {} are bool); \
                     use ^ for exclusive or",
                    self.text(l.span()),
                    self.text(r.span())
                ),
            )),
            BinaryOp::Sub => Ok((p, p)),
            BinaryOp::Div => {
                let f = if p.is_float() { p } else { DType::F64 };
                Ok((f, f))
            }
            BinaryOp::FloorDiv | BinaryOp::Mod | BinaryOp::Pow => {
                let q = if p == DType::Bool { DType::I64 } else { p };
                if let (BinaryOp::Pow, true, Val::Weak(PyScalar::Int(e), span)) =
                    (op, q.is_int(), r)
                    && *e < 0
                {
                    return Err(self.err(
                        *span,
                        format!(
                            "integers cannot be raised to negative integer powers \
                             ({} computes in {q}); use a float exponent such as {e}.0",
                            self.text(l.span())
                        ),
                    ));
                }
                Ok((q, q))
            }
            _ if op.is_comparison() => {
                // NumPy 2 compares out-of-range Python ints exactly rather than failing; int64 gives the same answers.
                let wide = [l, r].iter().any(
                    |v| matches!(v, Val::Weak(s, _) if p == DType::I32 && s.to_scalar(p).is_err()),
                );
                let p = if wide { DType::I64 } else { p };
                Ok((p, DType::Bool))
            }
            _ if p.is_float() => {
                let culprit = if l.category() == Category::Float {
                    l
                } else {
                    r
                };
                Err(self.err(
                    culprit.span(),
                    format!(
                        "operator {symbol} needs bool or integer operands, but {}",
                        self.describe(culprit)
                    ),
                ))
            }
            _ => Ok((p, p)),
        }
    }

    pub(crate) fn where_(&self, c: Val, x: Val, y: Val, span: Span) -> Result<Val, ExprError> {
        let dtype = result_type(&x, &y);
        let shape = self.broadcast(&[&c, &x, &y], span)?;
        let c = self.convert(c, DType::Bool)?;
        let (x, y) = (self.convert(x, dtype)?, self.convert(y, dtype)?);
        Ok(node(
            Kind::Where(Box::new(c), Box::new(x), Box::new(y)),
            shape,
            dtype,
            span,
        ))
    }

    fn matmul_operand(&self, v: Val) -> Result<Expr, ExprError> {
        let e = match v {
            Val::Weak(s, span) => {
                return Err(self.err(
                    span,
                    format!(
                        "matmul needs arrays, not scalars: {} is a Python {}; use * to scale",
                        self.text(span),
                        s.type_name()
                    ),
                ));
            }
            Val::Strong(e) => e,
        };
        let text = self.text(e.span);
        match e.shape.len() {
            0 => Err(self.err(
                e.span,
                format!(
                    "matmul needs arrays, not scalars: {text} is 0-dimensional; use * to scale"
                ),
            )),
            1 | 2 => Ok(e),
            _ => Err(self.err(
                e.span,
                format!(
                    "matmul of arrays with more than 2 dimensions is not supported: \
                     {text} has shape {}",
                    shape::format(&e.shape)
                ),
            )),
        }
    }

    pub(crate) fn matmul(&self, l: Val, r: Val, span: Span) -> Result<Val, ExprError> {
        let (l, r) = (self.matmul_operand(l)?, self.matmul_operand(r)?);
        let Some(shape) = shape::matmul(&l.shape, &r.shape) else {
            let (lt, rt) = (self.text(l.span), self.text(r.span));
            return Err(self.err(
                span,
                format!(
                    "cannot matmul {lt} (shape {}) with {rt} (shape {}) in \"{}\": \
                     the last axis of {lt} has length {} but the first axis of {rt} has length {}",
                    shape::format(&l.shape),
                    shape::format(&r.shape),
                    self.text(span),
                    l.shape.last().copied().unwrap_or(0),
                    r.shape.first().copied().unwrap_or(0),
                ),
            ));
        };
        let dtype = crate::dtype::promote(l.dtype, r.dtype);
        let (l, r) = (cast(l, dtype), cast(r, dtype));
        Ok(node(
            Kind::MatMul(Box::new(l), Box::new(r)),
            shape,
            dtype,
            span,
        ))
    }

    pub(crate) fn transpose(&self, v: Val, span: Span) -> Result<Val, ExprError> {
        let e = self.strong(v)?;
        let shape = e.shape.iter().rev().copied().collect();
        let dtype = e.dtype;
        Ok(node(Kind::Transpose(Box::new(e)), shape, dtype, span))
    }

    pub(crate) fn reduce(
        &self,
        op: ReduceOp,
        v: Val,
        spec: ReduceSpec,
        span: Span,
    ) -> Result<Val, ExprError> {
        let text = self.text(v.span()).to_string();
        let in_shape = v.shape().to_vec();
        let ndim = in_shape.len();
        let axes = match spec.axis {
            None => (0..ndim).collect(),
            Some(list) => self.normalize_axes(&list, &in_shape, &text)?,
        };
        if matches!(op, ReduceOp::Min | ReduceOp::Max)
            && let Some(&a) = axes.iter().find(|&&a| in_shape.get(a) == Some(&0))
        {
            return Err(self.err(
                span,
                format!(
                    "zero-size array to reduction operation {} which has no identity: \
                     axis {a} of {text} has length 0",
                    op.name()
                ),
            ));
        }
        let d = v.dtype();
        let dtype = match op {
            ReduceOp::Sum | ReduceOp::Prod if !d.is_float() => DType::I64,
            ReduceOp::Mean | ReduceOp::Var | ReduceOp::Std if !d.is_float() => DType::F64,
            _ => d,
        };
        let arg = self.convert(v, dtype)?;
        let shape = in_shape
            .iter()
            .enumerate()
            .filter_map(|(i, &n)| match (axes.contains(&i), spec.keepdims) {
                (false, _) => Some(n),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect();
        let kind = Kind::Reduce {
            op,
            arg: Box::new(arg),
            axes,
            keepdims: spec.keepdims,
            ddof: spec.ddof,
        };
        Ok(node(kind, shape, dtype, span))
    }

    fn normalize_axes(
        &self,
        list: &[(i128, Span)],
        shape: &[u64],
        text: &str,
    ) -> Result<Vec<usize>, ExprError> {
        let ndim = shape.len();
        let mut axes: Vec<usize> = Vec::with_capacity(list.len());
        for &(axis, span) in list {
            let n = i128::try_from(ndim).unwrap_or(i128::MAX);
            let a = if axis < 0 { axis + n } else { axis };
            let Some(a) = usize::try_from(a).ok().filter(|&a| a < ndim) else {
                return Err(self.err(
                    span,
                    format!(
                        "axis {axis} is out of bounds for array of dimension {ndim} \
                         ({text} has shape {})",
                        shape::format(shape)
                    ),
                ));
            };
            if axes.contains(&a) {
                return Err(self.err(
                    span,
                    format!(
                        "duplicate value in axis: {axis} is axis {a} of {text} \
                         (dimension {ndim}), which is already listed"
                    ),
                ));
            }
            axes.push(a);
        }
        axes.sort_unstable();
        Ok(axes)
    }

    pub(crate) fn subscript(
        &self,
        v: Val,
        items: &[SubItem],
        span: Span,
    ) -> Result<Val, ExprError> {
        let e = match v {
            Val::Weak(s, sp) => {
                return Err(self.err(
                    sp,
                    format!(
                        "{} is a Python {}, which cannot be subscripted",
                        self.text(sp),
                        s.type_name()
                    ),
                ));
            }
            Val::Strong(e) => e,
        };
        let text = self.text(e.span);
        let ndim = e.shape.len();
        if ndim == 0 {
            return Err(self.err(
                span,
                format!("cannot subscript {text}: it is 0-dimensional (shape ())"),
            ));
        }
        if let Some(extra) = items.get(ndim) {
            return Err(self.err(
                extra.span(),
                format!(
                    "too many indices for {text}: it is {ndim}-dimensional, but {} were indexed",
                    items.len()
                ),
            ));
        }
        let mut entries = Vec::with_capacity(ndim);
        for (axis, &len) in e.shape.iter().enumerate() {
            let entry = match items.get(axis) {
                None => Ok(AxisIndex::Range {
                    start: 0,
                    stop: len,
                    step: 1,
                }),
                Some(SubItem::Index(n)) => shape::index(len, self.index_int(n)?),
                Some(SubItem::Slice {
                    start, stop, step, ..
                }) => {
                    let part =
                        |n: &Option<Node>| n.as_ref().map(|n| self.slice_part(n)).transpose();
                    shape::slice(
                        len,
                        part(start)?.flatten(),
                        part(stop)?.flatten(),
                        part(step)?.flatten(),
                    )
                }
            };
            let item_span = items.get(axis).map_or(span, SubItem::span);
            let entry = entry.map_err(|why| {
                let message = match why {
                    IndexError::OutOfRange => format!(
                        "index {} is out of bounds for axis {axis} of {text}, which has length {len}",
                        self.text(item_span)
                    ),
                    IndexError::ZeroStep => format!(
                        "slice step cannot be zero (in {} on axis {axis} of {text})",
                        self.text(item_span)
                    ),
                    IndexError::NegativeStep => format!(
                        "negative slice steps are not supported (in {} on axis {axis} of {text})",
                        self.text(item_span)
                    ),
                };
                self.err(item_span, message)
            })?;
            entries.push(entry);
        }
        let shape = entries.iter().filter_map(AxisIndex::kept).collect();
        let dtype = e.dtype;
        Ok(node(Kind::Slice(Box::new(e), entries), shape, dtype, span))
    }

    /// An integer index: a Python int, possibly computed from literals, never an array.
    fn index_int(&self, n: &Node) -> Result<i128, ExprError> {
        match self.value(n)? {
            Val::Weak(PyScalar::Int(i), _) => Ok(i),
            other => Err(self.err(
                n.span,
                format!(
                    "indices must be integer literals, but {}{}",
                    self.describe(&other),
                    match other {
                        Val::Strong(_) => " (indexing with arrays is not supported)",
                        Val::Weak(..) => "",
                    }
                ),
            )),
        }
    }

    /// A slice bound: omitted, `None`, or an integer.
    fn slice_part(&self, n: &Node) -> Result<Option<i128>, ExprError> {
        if matches!(n.kind, crate::parse::NodeKind::None) {
            return Ok(None);
        }
        self.index_int(n).map(Some)
    }
}
