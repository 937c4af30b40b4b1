//! Functions, methods, attributes and constants, and how call arguments bind to parameters.

use crate::check::{Checker, Val};
use crate::error::ExprError;
use crate::fold::PyScalar;
use crate::lex::Span;
use crate::ops::ReduceSpec;
use crate::parse::{Arg, Node, NodeKind};
use crate::tree::{ReduceOp, UnaryOp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Unary(UnaryOp),
    Where,
    Reduce(ReduceOp),
    MatMul,
    Transpose,
}

/// Sorted, so error messages list them alphabetically.
const FUNCTIONS: &[(&str, Func)] = &[
    ("abs", Func::Unary(UnaryOp::Abs)),
    ("absolute", Func::Unary(UnaryOp::Abs)),
    ("amax", Func::Reduce(ReduceOp::Max)),
    ("amin", Func::Reduce(ReduceOp::Min)),
    ("dot", Func::MatMul),
    ("exp", Func::Unary(UnaryOp::Exp)),
    ("log", Func::Unary(UnaryOp::Log)),
    ("matmul", Func::MatMul),
    ("max", Func::Reduce(ReduceOp::Max)),
    ("mean", Func::Reduce(ReduceOp::Mean)),
    ("min", Func::Reduce(ReduceOp::Min)),
    ("prod", Func::Reduce(ReduceOp::Prod)),
    ("sqrt", Func::Unary(UnaryOp::Sqrt)),
    ("std", Func::Reduce(ReduceOp::Std)),
    ("sum", Func::Reduce(ReduceOp::Sum)),
    ("transpose", Func::Transpose),
    ("var", Func::Reduce(ReduceOp::Var)),
    ("where", Func::Where),
];

/// The ndarray methods NumPy has among our functions.
const METHODS: &[(&str, Func)] = &[
    ("dot", Func::MatMul),
    ("max", Func::Reduce(ReduceOp::Max)),
    ("mean", Func::Reduce(ReduceOp::Mean)),
    ("min", Func::Reduce(ReduceOp::Min)),
    ("prod", Func::Reduce(ReduceOp::Prod)),
    ("std", Func::Reduce(ReduceOp::Std)),
    ("sum", Func::Reduce(ReduceOp::Sum)),
    ("transpose", Func::Transpose),
    ("var", Func::Reduce(ReduceOp::Var)),
];

/// Name, value, and whether the bare name works without `np.`; bare `pi`/`e` would too easily hide a mistyped input.
const CONSTANTS: &[(&str, f64, bool)] = &[
    ("e", std::f64::consts::E, false),
    ("inf", f64::INFINITY, true),
    ("nan", f64::NAN, true),
    ("pi", std::f64::consts::PI, false),
];

pub(crate) fn function(name: &str) -> Option<Func> {
    lookup(FUNCTIONS, name)
}

pub(crate) fn constant(name: &str, prefixed: bool) -> Option<f64> {
    CONSTANTS
        .iter()
        .find(|(n, _, bare)| *n == name && (prefixed || *bare))
        .map(|(_, v, _)| *v)
}

fn lookup(table: &[(&str, Func)], name: &str) -> Option<Func> {
    table.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

fn names(table: &[(&str, Func)]) -> String {
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

fn constant_names() -> String {
    let names: Vec<&str> = CONSTANTS.iter().map(|(n, ..)| *n).collect();
    names.join(", ")
}

/// A Python signature: positional parameters in order, which of them (or others) may be given by keyword, and how many are required.
struct Params {
    positional: &'static [&'static str],
    keyword: &'static [&'static str],
    required: usize,
}

fn params(func: Func) -> Params {
    let (positional, keyword, required): (&'static [&'static str], &'static [&'static str], _) =
        match func {
            Func::Unary(_) => (&["x"], &[], 1),
            Func::Where => (&["condition", "x", "y"], &[], 3),
            // NumPy also accepts dtype/out positionally before keepdims; we support neither, so keepdims is keyword-only.
            Func::Reduce(ReduceOp::Var | ReduceOp::Std) => {
                (&["a", "axis"], &["axis", "keepdims", "ddof"], 1)
            }
            Func::Reduce(_) => (&["a", "axis"], &["axis", "keepdims"], 1),
            Func::MatMul => (&["a", "b"], &[], 2),
            Func::Transpose => (&["a"], &[], 1),
        };
    Params {
        positional,
        keyword,
        required,
    }
}

/// Arguments bound to parameter names.
struct Bound<'a> {
    slots: Vec<(&'static str, Option<&'a Node>)>,
}

impl<'a> Bound<'a> {
    fn get(&self, name: &str) -> Option<&'a Node> {
        self.slots
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, node)| *node)
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl Checker<'_> {
    pub(crate) fn call(&self, callee: &Node, args: &[Arg], span: Span) -> Result<Val, ExprError> {
        match &callee.kind {
            NodeKind::Name(name) if function(name).is_some() || !self.is_value_name(name) => {
                let Some(func) = function(name) else {
                    return Err(self.unknown_function(name, callee.span));
                };
                self.apply(func, name, None, args, span)
            }
            NodeKind::Attr {
                base,
                name,
                name_span,
            } if self.is_module(base) => {
                let Some(func) = function(name) else {
                    if constant(name, true).is_some() {
                        return Err(self.err(
                            *name_span,
                            format!("{} is a constant, not a function", self.text(callee.span)),
                        ));
                    }
                    return Err(self.unknown_function(name, *name_span));
                };
                self.apply(func, name, None, args, span)
            }
            NodeKind::Attr {
                base,
                name,
                name_span,
            } => {
                let receiver = self.value(base)?;
                self.method(receiver, name, *name_span, args, span)
            }
            _ => {
                let v = self.value(callee)?;
                let what = match v {
                    Val::Weak(s, _) => format!("a Python {}", s.type_name()),
                    Val::Strong(_) => "an array".to_string(),
                };
                Err(self.err(
                    callee.span,
                    format!(
                        "{} is {what}, not a function, and cannot be called",
                        self.text(callee.span)
                    ),
                ))
            }
        }
    }

    fn is_value_name(&self, name: &str) -> bool {
        self.inputs.contains_key(name) || constant(name, false).is_some()
    }

    fn unknown_function(&self, name: &str, span: Span) -> ExprError {
        self.err(
            span,
            format!(
                "unknown function \"{name}\" (functions: {})",
                names(FUNCTIONS)
            ),
        )
    }

    fn method(
        &self,
        receiver: Val,
        name: &str,
        name_span: Span,
        args: &[Arg],
        span: Span,
    ) -> Result<Val, ExprError> {
        let text = self.text(receiver.span()).to_string();
        if let Val::Weak(s, _) = receiver {
            return Err(self.err(
                name_span,
                format!(
                    "{text} is a Python {}, which has no method \"{name}\"; use np.{name}({text})",
                    s.type_name()
                ),
            ));
        }
        let Some(func) = lookup(METHODS, name) else {
            let message = if name == "T" {
                format!("T is an attribute, not a method: write {text}.T")
            } else if function(name).is_some() {
                format!("arrays have no method \"{name}\"; use np.{name}({text})")
            } else {
                format!(
                    "unknown method \"{name}\" of {text} (methods: {}; attributes: T)",
                    names(METHODS)
                )
            };
            return Err(self.err(name_span, message));
        };
        self.apply(func, &format!("{text}.{name}"), Some(receiver), args, span)
    }

    /// An attribute outside a call: a module constant, or `.T` of an array.
    pub(crate) fn attribute(
        &self,
        base: &Node,
        name: &str,
        name_span: Span,
        span: Span,
    ) -> Result<Val, ExprError> {
        if self.is_module(base) {
            if let Some(v) = constant(name, true) {
                return Ok(Val::Weak(PyScalar::Float(v), span));
            }
            let message = if function(name).is_some() {
                format!(
                    "function \"{name}\" must be called, e.g. {}(a)",
                    self.text(span)
                )
            } else {
                format!(
                    "unknown function or constant \"{name}\" (functions: {}; constants: {})",
                    names(FUNCTIONS),
                    constant_names()
                )
            };
            return Err(self.err(name_span, message));
        }
        let v = self.value(base)?;
        let text = self.text(v.span());
        match v {
            Val::Weak(s, _) => Err(self.err(
                name_span,
                format!(
                    "{text} is a Python {}, which has no attribute \"{name}\"",
                    s.type_name()
                ),
            )),
            Val::Strong(_) if name == "T" => self.transpose(v, span),
            Val::Strong(_) if lookup(METHODS, name).is_some() => Err(self.err(
                name_span,
                format!("method \"{name}\" must be called: {text}.{name}()"),
            )),
            Val::Strong(_) => Err(self.err(
                name_span,
                format!(
                    "unknown attribute \"{name}\" of {text} (attributes: T; methods: {})",
                    names(METHODS)
                ),
            )),
        }
    }

    /// Binds the arguments of `func`, evaluates them and builds its node.
    fn apply(
        &self,
        func: Func,
        display: &str,
        receiver: Option<Val>,
        args: &[Arg],
        span: Span,
    ) -> Result<Val, ExprError> {
        let params = params(func);
        let skip = usize::from(receiver.is_some());
        let bound = self.bind(display, &params, skip, args, span)?;
        let operand = |i: usize| -> Result<Val, ExprError> {
            let name = params.positional.get(i).copied().unwrap_or("");
            match bound.get(name) {
                Some(n) => self.value(n),
                None => Err(self.err(span, format!("{display}() missing argument \"{name}\""))),
            }
        };
        let first = match receiver {
            Some(v) => v,
            None => operand(0)?,
        };
        match func {
            Func::Unary(op) => self.unary(op, first, span),
            Func::Where => {
                let (x, y) = (operand(1)?, operand(2)?);
                self.where_(first, x, y, span)
            }
            Func::MatMul => {
                let second = operand(1)?;
                self.matmul(first, second, span)
            }
            Func::Transpose => self.transpose(first, span),
            Func::Reduce(op) => {
                let spec = ReduceSpec {
                    axis: match bound.get("axis") {
                        Some(n) => self.axis_arg(n)?,
                        None => None,
                    },
                    keepdims: match bound.get("keepdims") {
                        Some(n) => self.bool_arg(n, display, "keepdims")?,
                        None => false,
                    },
                    ddof: match bound.get("ddof") {
                        Some(n) => self.ddof_arg(n, display)?,
                        None => 0,
                    },
                };
                self.reduce(op, first, spec, span)
            }
        }
    }

    /// Python's argument binding, with Python's wording for the mistakes.
    fn bind<'a>(
        &self,
        display: &str,
        params: &Params,
        skip: usize,
        args: &'a [Arg],
        span: Span,
    ) -> Result<Bound<'a>, ExprError> {
        let positional = params.positional.get(skip..).unwrap_or(&[]);
        let required = params.required.saturating_sub(skip);
        let exact = required == positional.len() && params.keyword.is_empty();
        let mut slots: Vec<(&'static str, Option<&'a Node>)> =
            positional.iter().map(|n| (*n, None)).collect();
        for k in params.keyword {
            if !positional.contains(k) {
                slots.push((k, None));
            }
        }
        let given = args.iter().filter(|a| a.keyword.is_none()).count();
        let arity = || {
            let list = positional.join(", ");
            if exact {
                format!(
                    "{display}() takes exactly {} ({list}) but {given} {} given",
                    plural(positional.len(), "argument"),
                    if given == 1 { "was" } else { "were" }
                )
            } else {
                format!(
                    "{display}() takes at most {} ({list}) but {given} were given",
                    plural(positional.len(), "positional argument"),
                )
            }
        };
        // Keyword arguments come after positional ones (the parser enforces it), so enumerate counts positionals.
        for (next, arg) in args.iter().enumerate() {
            let Some((name, kspan)) = &arg.keyword else {
                let Some(slot) = slots.get_mut(next).filter(|_| next < positional.len()) else {
                    return Err(self.err(arg.value.span, arity()));
                };
                slot.1 = Some(&arg.value);
                continue;
            };
            let slot = slots
                .iter_mut()
                .find(|(n, _)| *n == name.as_str() && params.keyword.contains(n));
            let Some(slot) = slot else {
                let message = if params.keyword.is_empty() {
                    format!("{display}() takes no keyword arguments (got {name}=)")
                } else {
                    format!(
                        "{display}() got an unexpected keyword argument \"{name}\" (it accepts {})",
                        params.keyword.join(", ")
                    )
                };
                return Err(self.err(*kspan, message));
            };
            if slot.1.is_some() {
                return Err(self.err(
                    *kspan,
                    format!("{display}() got multiple values for argument \"{name}\""),
                ));
            }
            slot.1 = Some(&arg.value);
        }
        if let Some((name, _)) = slots.iter().take(required).find(|(_, n)| n.is_none()) {
            let message = if exact {
                arity()
            } else {
                format!("{display}() missing required argument \"{name}\"")
            };
            return Err(self.err(span, message));
        }
        Ok(Bound { slots })
    }

    fn axis_arg(&self, node: &Node) -> Result<Option<Vec<(i128, Span)>>, ExprError> {
        match &node.kind {
            NodeKind::None => Ok(None),
            NodeKind::Tuple(items) => items
                .iter()
                .map(|n| self.axis_int(n))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            _ => Ok(Some(vec![self.axis_int(node)?])),
        }
    }

    fn axis_int(&self, node: &Node) -> Result<(i128, Span), ExprError> {
        match self.value(node)? {
            Val::Weak(PyScalar::Int(v), span) => Ok((v, span)),
            other => Err(self.err(
                node.span,
                format!(
                    "axis must be None, an integer or a tuple of integers, but {}",
                    self.describe(&other)
                ),
            )),
        }
    }

    fn bool_arg(&self, node: &Node, display: &str, what: &str) -> Result<bool, ExprError> {
        match self.value(node)? {
            Val::Weak(PyScalar::Bool(b), _) => Ok(b),
            other => Err(self.err(
                node.span,
                format!(
                    "{display}(): {what} must be True or False, but {}",
                    self.describe(&other)
                ),
            )),
        }
    }

    fn ddof_arg(&self, node: &Node, display: &str) -> Result<u64, ExprError> {
        let v = self.value(node)?;
        if let Val::Weak(PyScalar::Int(i), _) = v
            && let Ok(d) = u64::try_from(i)
        {
            return Ok(d);
        }
        Err(self.err(
            node.span,
            format!(
                "{display}(): ddof must be a non-negative integer, but got {}",
                self.text(node.span)
            ),
        ))
    }
}
