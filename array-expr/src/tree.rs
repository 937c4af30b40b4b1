//! The checked, typed tree that the evaluator runs.

use std::collections::BTreeSet;
use std::fmt;

use crate::dtype::DType;

/// What the plan knows of one input array.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayInfo {
    /// Length of each axis, outermost first.
    pub shape: Vec<u64>,
    /// Element type.
    pub dtype: DType,
}

/// A checked expression node.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What the node computes.
    pub kind: Kind,
    /// Shape of the node's value.
    pub shape: Vec<u64>,
    /// Element type of the node's value.
    pub dtype: DType,
    /// Byte range in the source that the node came from.
    pub span: (usize, usize),
}

/// What a node computes; operands already have the dtype the operation computes in.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// An input array, by name.
    Input(String),
    /// A Python scalar literal, already converted to the node's dtype (see weak scalars below).
    Scalar(Scalar),
    /// An elementwise one-operand operation.
    Unary(UnaryOp, Box<Expr>),
    /// An elementwise two-operand operation, broadcasting.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `where(condition, x, y)`, broadcasting all three.
    Where(Box<Expr>, Box<Expr>, Box<Expr>),
    /// axes: sorted, deduplicated, non-negative, in the operand's dimensions. keepdims as given.
    Reduce {
        /// The reduction.
        op: ReduceOp,
        /// The operand, already in the result dtype.
        arg: Box<Expr>,
        /// Operand axes to reduce over.
        axes: Vec<usize>,
        /// Whether reduced axes stay as length 1.
        keepdims: bool,
        /// Delta degrees of freedom for var/std; 0 for the others.
        ddof: u64,
    },
    /// Matrix product of 1-D or 2-D operands.
    MatMul(Box<Expr>, Box<Expr>),
    /// Reverses the axes (`.T`, `transpose(a)`).
    Transpose(Box<Expr>),
    /// One entry per operand axis, in order; integer indices become `Index` and drop the axis.
    Slice(Box<Expr>, Vec<AxisIndex>),
    /// Converts the operand to the node's dtype (inserted by the checker wherever an operand's dtype differs from what the operation computes in).
    Cast(Box<Expr>),
}

/// A scalar value, already in its node's dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// A bool value.
    Bool(bool),
    /// An int32 or int64 value.
    Int(i64),
    /// A float32 or float64 value (float32 values are already rounded to float32).
    Float(f64),
}

/// Elementwise one-operand operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `~x`: logical not on bool, bitwise not on ints.
    Not,
    /// `abs(x)`.
    Abs,
    /// `sqrt(x)`.
    Sqrt,
    /// `exp(x)`.
    Exp,
    /// `log(x)`, the natural logarithm.
    Log,
}

/// Elementwise two-operand operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+` (logical or on bool).
    Add,
    /// `-`.
    Sub,
    /// `*` (logical and on bool).
    Mul,
    /// `/`, true division.
    Div,
    /// `//`, Python floor division.
    FloorDiv,
    /// `%`, Python modulo (sign of the divisor).
    Mod,
    /// `**`.
    Pow,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `&`.
    And,
    /// `|`.
    Or,
    /// `^`.
    Xor,
}

/// Reductions over axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// `sum`.
    Sum,
    /// `mean`.
    Mean,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `prod`.
    Prod,
    /// `var`, with `ddof`.
    Var,
    /// `std`, with `ddof`.
    Std,
}

/// How one operand axis is indexed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AxisIndex {
    /// Normalized: `start <= stop <= len`, `step >= 1`; keeps `ceil((stop - start) / step)` elements.
    Range {
        /// First index kept.
        start: u64,
        /// Exclusive end.
        stop: u64,
        /// Distance between kept indices.
        step: u64,
    },
    /// A single, non-negative position; the axis is dropped.
    Index(u64),
}

impl UnaryOp {
    /// NumPy's ufunc name.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "negative",
            UnaryOp::Not => "invert",
            UnaryOp::Abs => "absolute",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
        }
    }
}

impl BinaryOp {
    /// The Python operator that spells this operation.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::FloorDiv => "//",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "**",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "&",
            BinaryOp::Or => "|",
            BinaryOp::Xor => "^",
        }
    }

    /// True for the six comparisons, whose result is always bool.
    pub fn is_comparison(self) -> bool {
        use BinaryOp::{Eq, Ge, Gt, Le, Lt, Ne};
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge)
    }
}

impl ReduceOp {
    /// NumPy's function name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Min => "min",
            ReduceOp::Max => "max",
            ReduceOp::Prod => "prod",
            ReduceOp::Var => "var",
            ReduceOp::Std => "std",
        }
    }
}

impl AxisIndex {
    /// How many elements of the axis survive, or `None` for an integer index, which drops the axis.
    pub fn kept(&self) -> Option<u64> {
        match *self {
            AxisIndex::Range { start, stop, step } => {
                Some(stop.saturating_sub(start).div_ceil(step.max(1)))
            }
            AxisIndex::Index(_) => None,
        }
    }
}

impl Expr {
    /// Names of the inputs the expression reads.
    pub fn inputs(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut todo = vec![self];
        while let Some(e) = todo.pop() {
            if let Kind::Input(name) = &e.kind {
                names.insert(name.clone());
            }
            todo.extend(e.children());
        }
        names
    }

    /// Number of elements: product of the shape, 1 for a 0-d value (saturating, never overflowing).
    pub fn size(&self) -> u64 {
        self.shape.iter().fold(1u64, |n, &d| n.saturating_mul(d))
    }

    /// The direct operands, left to right.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            Kind::Input(_) | Kind::Scalar(_) => vec![],
            Kind::Unary(_, a)
            | Kind::Transpose(a)
            | Kind::Slice(a, _)
            | Kind::Cast(a)
            | Kind::Reduce { arg: a, .. } => vec![a],
            Kind::Binary(_, a, b) | Kind::MatMul(a, b) => vec![a, b],
            Kind::Where(c, a, b) => vec![c, a, b],
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Scalar::Bool(true) => f.write_str("True"),
            Scalar::Bool(false) => f.write_str("False"),
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::Float(v) if v.is_nan() => f.write_str("nan"),
            // Debug keeps the ".0" and switches to exponents for extreme magnitudes, like Python's repr.
            Scalar::Float(v) => write!(f, "{v:?}"),
        }
    }
}

/// A compact s-expression, e.g. `(+ a (float64 b))`, for plans, logs and tests.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Input(name) => f.write_str(name),
            Kind::Scalar(s) => write!(f, "{s}"),
            Kind::Unary(op, a) => write!(f, "({} {a})", op.name()),
            Kind::Binary(op, a, b) => write!(f, "({} {a} {b})", op.symbol()),
            Kind::Where(c, a, b) => write!(f, "(where {c} {a} {b})"),
            Kind::MatMul(a, b) => write!(f, "(@ {a} {b})"),
            Kind::Transpose(a) => write!(f, "(T {a})"),
            Kind::Cast(a) => write!(f, "({} {a})", self.dtype.name()),
            Kind::Reduce {
                op,
                arg,
                axes,
                keepdims,
                ddof,
            } => {
                write!(f, "({} {arg} axes={axes:?}", op.name())?;
                if *keepdims {
                    f.write_str(" keepdims")?;
                }
                if *ddof != 0 {
                    write!(f, " ddof={ddof}")?;
                }
                f.write_str(")")
            }
            Kind::Slice(a, entries) => {
                write!(f, "(slice {a}")?;
                for entry in entries {
                    match entry {
                        AxisIndex::Range { start, stop, step } => {
                            write!(f, " {start}:{stop}:{step}")?;
                        }
                        AxisIndex::Index(i) => write!(f, " {i}")?,
                    }
                }
                f.write_str(")")
            }
        }
    }
}
