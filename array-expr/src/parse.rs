//! Python's expression grammar, as far as array jobs use it, into a syntax tree with spans.

use crate::error::ExprError;
use crate::lex::{Span, Tok, Token, lex};
use crate::tree::BinaryOp;

/// Limits both parser recursion and tree depth, so neither the parser, the checker nor drop can exhaust the stack.
pub(crate) const MAX_DEPTH: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prefix {
    Neg,
    Pos,
    Invert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Infix {
    Op(BinaryOp),
    MatMul,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    /// Includes enclosing parentheses, so operand texts in messages read as written.
    pub(crate) span: Span,
    depth: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NodeKind {
    Int(i128),
    Float(f64),
    Bool(bool),
    None,
    Name(String),
    Attr {
        base: Box<Node>,
        name: String,
        name_span: Span,
    },
    Call {
        callee: Box<Node>,
        args: Vec<Arg>,
    },
    Subscript {
        base: Box<Node>,
        items: Vec<SubItem>,
    },
    Unary {
        op: Prefix,
        op_span: Span,
        arg: Box<Node>,
    },
    Binary {
        op: Infix,
        op_span: Span,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    Tuple(Vec<Node>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Arg {
    pub(crate) keyword: Option<(String, Span)>,
    pub(crate) value: Node,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SubItem {
    Index(Node),
    Slice {
        start: Option<Node>,
        stop: Option<Node>,
        step: Option<Node>,
        span: Span,
    },
}

impl SubItem {
    pub(crate) fn span(&self) -> Span {
        match self {
            SubItem::Index(n) => n.span,
            SubItem::Slice { span, .. } => *span,
        }
    }

    fn depth(&self) -> usize {
        match self {
            SubItem::Index(n) => n.depth,
            SubItem::Slice {
                start, stop, step, ..
            } => [start, stop, step]
                .iter()
                .filter_map(|n| n.as_ref().map(|n| n.depth))
                .max()
                .unwrap_or(0),
        }
    }
}

impl NodeKind {
    fn child_depth(&self) -> usize {
        match self {
            NodeKind::Int(_)
            | NodeKind::Float(_)
            | NodeKind::Bool(_)
            | NodeKind::None
            | NodeKind::Name(_) => 0,
            NodeKind::Attr { base, .. } => base.depth,
            NodeKind::Unary { arg, .. } => arg.depth,
            NodeKind::Binary { lhs, rhs, .. } => lhs.depth.max(rhs.depth),
            NodeKind::Tuple(items) => items.iter().map(|n| n.depth).max().unwrap_or(0),
            NodeKind::Call { callee, args } => args
                .iter()
                .map(|a| a.value.depth)
                .fold(callee.depth, usize::max),
            NodeKind::Subscript { base, items } => items
                .iter()
                .map(SubItem::depth)
                .fold(base.depth, usize::max),
        }
    }
}

/// Binding power of a binary operator token, loosest first as in Python; `None` marks operators we reject.
fn infix(tok: &Tok) -> Option<(u8, Option<Infix>)> {
    use BinaryOp::{Add, And, Div, Eq, FloorDiv, Ge, Gt, Le, Lt, Mod, Mul, Ne, Or, Sub, Xor};
    let Tok::Punct(p) = tok else {
        return None;
    };
    let (power, op) = match *p {
        "<" => (COMPARE, Lt),
        "<=" => (COMPARE, Le),
        ">" => (COMPARE, Gt),
        ">=" => (COMPARE, Ge),
        "==" => (COMPARE, Eq),
        "!=" => (COMPARE, Ne),
        "|" => (2, Or),
        "^" => (3, Xor),
        "&" => (4, And),
        "<<" | ">>" => return Some((5, None)),
        "+" => (6, Add),
        "-" => (6, Sub),
        "*" => (7, Mul),
        "/" => (7, Div),
        "//" => (7, FloorDiv),
        "%" => (7, Mod),
        "@" => return Some((7, Some(Infix::MatMul))),
        _ => return None,
    };
    Some((power, Some(Infix::Op(op))))
}

const COMPARE: u8 = 1;

static END: Token = Token {
    tok: Tok::End,
    span: (0, 0),
};

pub(crate) fn parse(src: &str) -> Result<Node, ExprError> {
    let tokens = lex(src)?;
    let mut p = Parser {
        src,
        tokens,
        pos: 0,
        nesting: 0,
        prev_end: 0,
    };
    if p.peek().tok == Tok::End {
        return Err(p.err((0, src.len()), "empty expression"));
    }
    let node = p.expr()?;
    if p.peek().tok != Tok::End {
        return Err(p.unexpected("an operator or the end of the expression"));
    }
    Ok(node)
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
    prev_end: usize,
}

impl Parser<'_> {
    fn err(&self, span: Span, message: impl Into<String>) -> ExprError {
        ExprError::new(self.src, span, message)
    }

    fn text(&self, span: Span) -> &str {
        self.src.get(span.0..span.1).unwrap_or("")
    }

    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&END)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        self.tokens.get(self.pos + ahead).unwrap_or(&END)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::End {
            self.pos += 1;
        }
        self.prev_end = t.span.1;
        t
    }

    fn at(&self, p: &str) -> bool {
        matches!(self.peek().tok, Tok::Punct(q) if q == p)
    }

    fn expect(&mut self, p: &str) -> Result<Token, ExprError> {
        if self.at(p) {
            Ok(self.bump())
        } else {
            Err(self.unexpected(&format!("\"{p}\"")))
        }
    }

    fn describe(&self, t: &Token) -> String {
        match &t.tok {
            Tok::Name(n) => format!("name \"{n}\""),
            Tok::Int(_) | Tok::Float(_) => format!("number {}", self.text(t.span)),
            Tok::Keyword(k) => format!("keyword \"{k}\""),
            Tok::Punct(p) => format!("\"{p}\""),
            Tok::End => "end of expression".to_string(),
        }
    }

    /// An error for the current token, with a hint for Python constructs arrays cannot use.
    fn unexpected(&self, expected: &str) -> ExprError {
        let t = self.peek();
        if let Tok::Keyword(k) = t.tok
            && let Some(hint) = keyword_hint(k)
        {
            return self.err(t.span, hint);
        }
        let mut message = format!("expected {expected} but found {}", self.describe(t));
        if t.tok == Tok::Punct("=") {
            message.push_str("; use == to compare");
        }
        self.err(t.span, message)
    }

    fn node(&self, kind: NodeKind, span: Span) -> Result<Node, ExprError> {
        let depth = kind.child_depth() + 1;
        if depth > MAX_DEPTH {
            return Err(self.err(span, too_deep()));
        }
        Ok(Node { kind, span, depth })
    }

    /// Counts one recursion level, refusing to go past `MAX_DEPTH`; the caller undoes it with `leave`.
    fn enter(&mut self) -> Result<(), ExprError> {
        if self.nesting >= MAX_DEPTH {
            return Err(self.err(self.peek().span, too_deep()));
        }
        self.nesting += 1;
        Ok(())
    }

    // The functions from `expr` to `parenthesized` recurse once per nesting level, so each only
    // dispatches and leaves the work to a helper: debug builds give every temporary its own
    // stack slot, and small frames keep MAX_DEPTH levels well inside a 2 MiB thread stack.

    fn expr(&mut self) -> Result<Node, ExprError> {
        self.enter()?;
        let result = self.binary(COMPARE);
        self.nesting -= 1;
        result
    }

    fn binary(&mut self, min: u8) -> Result<Node, ExprError> {
        let lhs = self.factor()?;
        self.binary_tail(lhs, min)
    }

    /// Precedence climbing over the operators after a first operand.
    fn binary_tail(&mut self, mut lhs: Node, min: u8) -> Result<Node, ExprError> {
        // Spans of a comparison built in this loop, to reject `a < b < c`.
        let mut compared: Option<(Span, Span, Span)> = None;
        while let Some((power, op)) = infix(&self.peek().tok).filter(|(p, _)| *p >= min) {
            let op_span = self.bump().span;
            let Some(op) = op else {
                return Err(self.err(op_span, "shift operators << and >> are not supported"));
            };
            if let Some(first) = compared {
                return Err(self.chained(first, op_span));
            }
            let rhs = self.binary(power + 1)?;
            if power == COMPARE {
                compared = Some((lhs.span, op_span, rhs.span));
            }
            lhs = self.binary_node(op, op_span, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn binary_node(
        &self,
        op: Infix,
        op_span: Span,
        lhs: Node,
        rhs: Node,
    ) -> Result<Node, ExprError> {
        let span = (lhs.span.0, rhs.span.1);
        let kind = NodeKind::Binary {
            op,
            op_span,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        };
        self.node(kind, span)
    }

    #[cold]
    fn chained(&mut self, (lhs, op1, mid): (Span, Span, Span), second: Span) -> ExprError {
        let [l, op1, m, op2] = [lhs, op1, mid, second].map(|s| self.text(s).to_string());
        let suggestion = match self.binary(COMPARE + 1) {
            Ok(rhs) => format!(
                "; write ({l} {op1} {m}) & ({m} {op2} {})",
                self.text(rhs.span)
            ),
            Err(_) => String::new(),
        };
        self.err(
            second,
            format!(
                "comparisons cannot be chained: Python turns \"{l} {op1} {m} {op2} ...\" into \
                 \"and\", which NumPy arrays cannot evaluate{suggestion}"
            ),
        )
    }

    fn factor(&mut self) -> Result<Node, ExprError> {
        match self.peek().tok {
            Tok::Punct("-") => self.prefixed(Prefix::Neg),
            Tok::Punct("+") => self.prefixed(Prefix::Pos),
            Tok::Punct("~") => self.prefixed(Prefix::Invert),
            _ => self.power(),
        }
    }

    fn prefixed(&mut self, op: Prefix) -> Result<Node, ExprError> {
        let op_span = self.bump().span;
        self.enter()?;
        let arg = self.factor();
        self.nesting -= 1;
        let arg = arg?;
        let span = (op_span.0, arg.span.1);
        let kind = NodeKind::Unary {
            op,
            op_span,
            arg: Box::new(arg),
        };
        self.node(kind, span)
    }

    fn power(&mut self) -> Result<Node, ExprError> {
        let base = self.primary()?;
        if self.at("**") {
            self.power_tail(base)
        } else {
            Ok(base)
        }
    }

    /// `**` binds tighter than a unary minus on its left but takes a whole factor on its right (`a**-1`).
    fn power_tail(&mut self, base: Node) -> Result<Node, ExprError> {
        let op_span = self.bump().span;
        self.enter()?;
        let exponent = self.factor();
        self.nesting -= 1;
        self.binary_node(Infix::Op(BinaryOp::Pow), op_span, base, exponent?)
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let node = self.atom()?;
        self.postfix(node)
    }

    /// Attribute access, calls and subscripts, which chain left to right.
    fn postfix(&mut self, mut node: Node) -> Result<Node, ExprError> {
        loop {
            let start = node.span.0;
            if self.at(".") {
                self.bump();
                let t = self.peek().clone();
                let Tok::Name(name) = t.tok else {
                    return Err(self.unexpected("an attribute name after \".\""));
                };
                self.bump();
                let kind = NodeKind::Attr {
                    base: Box::new(node),
                    name,
                    name_span: t.span,
                };
                node = self.node(kind, (start, t.span.1))?;
            } else if self.at("(") {
                let args = self.call_args()?;
                let kind = NodeKind::Call {
                    callee: Box::new(node),
                    args,
                };
                node = self.node(kind, (start, self.prev_end))?;
            } else if self.at("[") {
                let items = self.subscript()?;
                let kind = NodeKind::Subscript {
                    base: Box::new(node),
                    items,
                };
                node = self.node(kind, (start, self.prev_end))?;
            } else {
                return Ok(node);
            }
        }
    }

    fn atom(&mut self) -> Result<Node, ExprError> {
        if self.at("(") {
            self.parenthesized()
        } else {
            self.leaf()
        }
    }

    fn leaf(&mut self) -> Result<Node, ExprError> {
        let t = self.peek().clone();
        let kind = match t.tok {
            Tok::Name(n) => NodeKind::Name(n),
            Tok::Int(v) => NodeKind::Int(v),
            Tok::Float(v) => NodeKind::Float(v),
            Tok::Keyword("True") => NodeKind::Bool(true),
            Tok::Keyword("False") => NodeKind::Bool(false),
            Tok::Keyword("None") => NodeKind::None,
            Tok::Punct("[") => {
                return Err(self.err(
                    t.span,
                    "list literals are not supported; for several axes use a tuple, \
                     e.g. axis=(0, 1)",
                ));
            }
            Tok::Punct("...") => {
                return Err(self.err(
                    t.span,
                    "Ellipsis (...) is not supported; write \":\" for each axis",
                ));
            }
            _ => return Err(self.unexpected("an expression")),
        };
        self.bump();
        self.node(kind, t.span)
    }

    fn parenthesized(&mut self) -> Result<Node, ExprError> {
        let open = self.bump().span.0;
        if self.at(")") {
            return self.tuple(open, vec![]);
        }
        let first = self.expr()?;
        self.paren_tail(open, first)
    }

    /// A parenthesized expression keeps its parentheses in its span; a comma makes it a tuple.
    fn paren_tail(&mut self, open: usize, first: Node) -> Result<Node, ExprError> {
        if !self.at(",") {
            let close = self.expect(")")?.span.1;
            return Ok(Node {
                span: (open, close),
                ..first
            });
        }
        let mut items = vec![first];
        while self.at(",") {
            self.bump();
            if self.at(")") {
                break;
            }
            items.push(self.expr()?);
        }
        self.tuple(open, items)
    }

    fn tuple(&mut self, open: usize, items: Vec<Node>) -> Result<Node, ExprError> {
        let close = self.expect(")")?.span.1;
        self.node(NodeKind::Tuple(items), (open, close))
    }

    fn call_args(&mut self) -> Result<Vec<Arg>, ExprError> {
        self.bump();
        let mut args: Vec<Arg> = Vec::new();
        while !self.at(")") {
            let keyword = match (&self.peek().tok, &self.peek_at(1).tok) {
                (Tok::Name(name), Tok::Punct("=")) => Some((name.clone(), self.peek().span)),
                _ => None,
            };
            if keyword.is_some() {
                self.bump();
                self.bump();
            } else if let Some(kw) = args.iter().find_map(|a| a.keyword.as_ref()) {
                let span = self.peek().span;
                return Err(self.err(
                    span,
                    format!("positional argument follows keyword argument {}=", kw.0),
                ));
            }
            let value = self.expr()?;
            args.push(Arg { keyword, value });
            if self.at(",") {
                self.bump();
            } else if !self.at(")") {
                return Err(self.unexpected("\",\" or \")\""));
            }
        }
        self.bump();
        Ok(args)
    }

    fn subscript(&mut self) -> Result<Vec<SubItem>, ExprError> {
        self.bump();
        let mut items = vec![self.sub_item()?];
        while self.at(",") {
            self.bump();
            if self.at("]") {
                break;
            }
            items.push(self.sub_item()?);
        }
        self.expect("]")?;
        Ok(items)
    }

    fn sub_item(&mut self) -> Result<SubItem, ExprError> {
        let begin = self.peek().span.0;
        let start = if self.at(":") {
            None
        } else {
            Some(self.expr()?)
        };
        if !self.at(":") {
            return match start {
                Some(node) => Ok(SubItem::Index(node)),
                None => Err(self.unexpected("an index")),
            };
        }
        self.bump();
        let ends_part = |p: &Self| p.at(":") || p.at(",") || p.at("]");
        let stop = if ends_part(self) {
            None
        } else {
            Some(self.expr()?)
        };
        let mut step = None;
        if self.at(":") {
            self.bump();
            if !(self.at(",") || self.at("]")) {
                step = Some(self.expr()?);
            }
        }
        Ok(SubItem::Slice {
            start,
            stop,
            step,
            span: (begin, self.prev_end),
        })
    }
}

fn too_deep() -> String {
    format!("expression is nested too deeply (the limit is {MAX_DEPTH} levels)")
}

fn keyword_hint(k: &str) -> Option<String> {
    let hint = match k {
        "and" => {
            "\"and\" needs a single truth value, which an array does not have; \
                  use & and put parentheses around comparisons, e.g. (a > 0) & (b > 0)"
        }
        "or" => {
            "\"or\" needs a single truth value, which an array does not have; \
                 use | and put parentheses around comparisons, e.g. (a > 0) | (b > 0)"
        }
        "not" => "\"not\" needs a single truth value, which an array does not have; use ~",
        "if" | "else" => "conditional expressions are not supported; use where(condition, x, y)",
        "in" | "is" => {
            return Some(format!(
                "\"{k}\" is not supported on arrays; compare with =="
            ));
        }
        "True" | "False" | "None" => return None,
        _ => return Some(format!("unexpected keyword \"{k}\"")),
    };
    Some(hint.to_string())
}
