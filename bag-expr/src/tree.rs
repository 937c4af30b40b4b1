//! The evaluator's own expression tree, produced by `compile` and walked
//! by `eval`: smaller than sqlparser's AST and already resolved.

use serde_json::Value;

use crate::cast::CastTarget;
use crate::functions::{FlaggedRegex, Func};
use crate::like::LikePattern;
use crate::value::ArithOp;

/// A compiled expression.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Literal(Value),
    /// A field path looked up from the item's root.
    Field(Vec<String>),
    /// Subscripts applied to a computed value.
    Access(Box<Node>, Vec<Step>),
    Neg(Box<Node>),
    Plus(Box<Node>),
    Arith(ArithOp, Box<Node>, Box<Node>),
    Concat(Box<Node>, Box<Node>),
    Compare(CmpOp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Is(IsTest, Box<Node>),
    Distinct {
        left: Box<Node>,
        right: Box<Node>,
        negated: bool,
    },
    InList {
        expr: Box<Node>,
        list: Vec<Node>,
        negated: bool,
    },
    Between {
        expr: Box<Node>,
        low: Box<Node>,
        high: Box<Node>,
        negated: bool,
    },
    Like {
        expr: Box<Node>,
        pattern: LikeSource,
        escape: Option<char>,
        case_insensitive: bool,
        negated: bool,
    },
    Case {
        operand: Option<Box<Node>>,
        whens: Vec<(Node, Node)>,
        otherwise: Option<Box<Node>>,
    },
    Cast {
        expr: Box<Node>,
        target: CastTarget,
        lenient: bool,
    },
    Call {
        func: Func,
        name: String,
        args: Vec<Node>,
        regex: Option<FlaggedRegex>,
    },
}

/// One subscript step.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// `.name` or `['name']`: an object key known at compile time.
    Key(String),
    /// `[expr]`: an integer indexes an array (1-based), a string an object.
    Index(Node),
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    /// The operator as written in SQL, for messages.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }
}

/// The `IS ...` predicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IsTest {
    Null,
    NotNull,
    True,
    NotTrue,
    False,
    NotFalse,
    Unknown,
    NotUnknown,
}

/// A LIKE pattern: compiled now when literal, else at each evaluation.
#[derive(Clone, Debug)]
pub(crate) enum LikeSource {
    Fixed(LikePattern),
    Dynamic(Box<Node>),
}

impl Node {
    /// Calls `f` on each direct child, for whole-tree walks.
    pub(crate) fn for_each_child(&self, f: &mut impl FnMut(&Node)) {
        match self {
            Node::Literal(_) | Node::Field(_) => {}
            Node::Access(base, steps) => {
                f(base);
                for step in steps {
                    if let Step::Index(n) = step {
                        f(n);
                    }
                }
            }
            Node::Neg(x) | Node::Plus(x) | Node::Not(x) | Node::Is(_, x) => f(x),
            Node::Cast { expr, .. } => f(expr),
            Node::Arith(_, a, b)
            | Node::Concat(a, b)
            | Node::Compare(_, a, b)
            | Node::And(a, b)
            | Node::Or(a, b)
            | Node::Distinct {
                left: a, right: b, ..
            } => {
                f(a);
                f(b);
            }
            Node::InList { expr, list, .. } => {
                f(expr);
                list.iter().for_each(f);
            }
            Node::Between {
                expr, low, high, ..
            } => {
                f(expr);
                f(low);
                f(high);
            }
            Node::Like { expr, pattern, .. } => {
                f(expr);
                if let LikeSource::Dynamic(p) = pattern {
                    f(p);
                }
            }
            Node::Case {
                operand,
                whens,
                otherwise,
            } => {
                operand.iter().for_each(|n| f(n));
                for (w, t) in whens {
                    f(w);
                    f(t);
                }
                otherwise.iter().for_each(|n| f(n));
            }
            Node::Call { args, .. } => args.iter().for_each(f),
        }
    }
}
