//! Turns sqlparser's AST into the evaluator's own small tree: fields are
//! resolved to paths, functions to [`Func`]s, literal LIKE and regex
//! patterns are compiled once, and anything unsupported is rejected with
//! the position of the offending token.

use serde_json::Value;
use sqlparser::ast::{
    AccessExpr, BinaryOperator, CastKind, CeilFloorKind, DataType, DateTimeField, Expr, Function,
    FunctionArg, FunctionArgExpr, FunctionArguments, Spanned, Subscript, TrimWhereField,
    UnaryOperator, Value as SqlValue, ValueWithSpan,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::cast::CastTarget;
use crate::error::CompileError;
use crate::functions::{self, FlaggedRegex, Func};
use crate::like::LikePattern;
use crate::tree::{CmpOp, IsTest, LikeSource, Node, Step};
use crate::value::ArithOp;

/// Deeper trees are rejected so that compiling and evaluating, which
/// recurse, cannot overflow the stack on a pathological input such as a
/// chain of thousands of `+` (sqlparser builds those without recursing).
const MAX_DEPTH: usize = 256;

/// Parses `sql` as one expression and compiles it.
pub(crate) fn compile(sql: &str) -> Result<Node, CompileError> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(|e| syntax_error(sql, &e))?;
    let expr = parser.parse_expr().map_err(|e| syntax_error(sql, &e))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(CompileError::at(
            next.span.start,
            format!(
                "unexpected `{}` after the end of the expression",
                next.token
            ),
        ));
    }
    Compiler { sql }.node(&expr, 0)
}

/// Converts a sqlparser error, moving its trailing " at Line: L, Column: C"
/// into the error's fields; errors without one happened at end of input.
fn syntax_error(sql: &str, error: &ParserError) -> CompileError {
    let text = match error {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.as_str(),
        ParserError::RecursionLimitExceeded => "expression is nested too deeply",
    };
    let (message, location) = split_location(text);
    let (line, column) = location.unwrap_or_else(|| end_of(sql));
    CompileError {
        line,
        column,
        message: format!(
            "syntax error: {}",
            message.replace("found: EOF", "found: end of input")
        ),
    }
}

fn split_location(text: &str) -> (&str, Option<(u64, u64)>) {
    const MARK: &str = " at Line: ";
    if let Some(at) = text.rfind(MARK)
        && let Some((line, column)) = text[at + MARK.len()..].split_once(", Column: ")
        && let (Ok(line), Ok(column)) = (line.parse(), column.parse())
    {
        return (&text[..at], Some((line, column)));
    }
    (text, None)
}

/// The line and column just past the last character.
fn end_of(sql: &str) -> (u64, u64) {
    let line = sql.matches('\n').count() + 1;
    let last = sql.rsplit('\n').next().unwrap_or("");
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    (as_u64(line), as_u64(last.chars().count() + 1))
}

/// Parses a numeric literal: integers that fit are i64, anything else f64.
fn parse_number(text: &str) -> Option<Value> {
    let text = text.replace('_', "");
    if !text.contains(['.', 'e', 'E'])
        && let Ok(i) = text.parse::<i64>()
    {
        return Some(Value::from(i));
    }
    let f = text.parse::<f64>().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// Maps SQL's many type spellings onto the four kinds a cast can produce.
fn cast_target(dt: &DataType) -> Option<CastTarget> {
    use DataType as D;
    Some(match dt {
        D::TinyInt(_)
        | D::Int2(_)
        | D::SmallInt(_)
        | D::MediumInt(_)
        | D::Int(_)
        | D::Int4(_)
        | D::Int8(_)
        | D::Int16
        | D::Int32
        | D::Int64
        | D::Integer(_)
        | D::BigInt(_)
        | D::Signed
        | D::SignedInteger => CastTarget::Int,
        D::Numeric(_)
        | D::Decimal(_)
        | D::Dec(_)
        | D::Float(_)
        | D::Float4
        | D::Float32
        | D::Float64
        | D::Real
        | D::Float8
        | D::Double(_)
        | D::DoublePrecision => CastTarget::Float,
        D::Character(_)
        | D::Char(_)
        | D::CharacterVarying(_)
        | D::CharVarying(_)
        | D::Varchar(_)
        | D::Nvarchar(_)
        | D::Text
        | D::TinyText
        | D::MediumText
        | D::LongText
        | D::String(_) => CastTarget::Text,
        D::Bool | D::Boolean => CastTarget::Bool,
        _ => return None,
    })
}

/// True for a word that sqlparser parsed as a parameterless function
/// (`user`, `current_date`): here such a word names a field.
fn bare_word(f: &Function) -> Option<&str> {
    let plain = matches!(f.args, FunctionArguments::None)
        && matches!(f.parameters, FunctionArguments::None)
        && f.over.is_none()
        && f.filter.is_none()
        && f.null_treatment.is_none()
        && f.within_group.is_empty()
        && !f.uses_odbc_syntax
        && f.name.0.len() == 1;
    if !plain {
        return None;
    }
    f.name.0.first()?.as_ident().map(|i| i.value.as_str())
}

/// Compiles one parsed expression; holds the text to locate tokens that
/// the AST does not keep spans for (operators, keywords, type names).
struct Compiler<'s> {
    sql: &'s str,
}

impl Compiler<'_> {
    fn tokens(&self) -> Vec<TokenWithSpan> {
        Tokenizer::new(&GenericDialect {}, self.sql)
            .tokenize_with_location()
            .unwrap_or_default()
    }

    /// The first significant token at or after `from`, skipping closing
    /// parentheses: the operator that follows a left operand.
    fn token_after(&self, from: Location) -> Location {
        self.tokens()
            .into_iter()
            .find(|t| {
                t.span.start >= from && !matches!(t.token, Token::Whitespace(_) | Token::RParen)
            })
            .map_or(from, |t| t.span.start)
    }

    /// The last significant token before `before`, skipping opening
    /// parentheses: a prefix operator.
    fn token_before(&self, before: Location) -> Location {
        self.tokens()
            .into_iter()
            .rev()
            .find(|t| {
                t.span.start < before && !matches!(t.token, Token::Whitespace(_) | Token::LParen)
            })
            .map_or(before, |t| t.span.start)
    }

    /// The last of the given keywords before `before`, for special forms
    /// whose AST span starts at their first argument (`FLOOR(`, `TRIM(`...).
    fn keyword_before(&self, before: Location, words: &[&str]) -> Location {
        self.tokens()
            .into_iter()
            .rev()
            .find(|t| {
                t.span.start < before
                    && matches!(&t.token, Token::Word(w)
                        if words.iter().any(|k| w.value.eq_ignore_ascii_case(k)))
            })
            .map_or(before, |t| t.span.start)
    }

    /// The first word token at or after `from` that is not `skip`: the type
    /// name of a cast.
    fn word_after(&self, from: Location, skip: &str) -> Location {
        self.tokens()
            .into_iter()
            .find(|t| {
                t.span.start >= from
                    && matches!(&t.token, Token::Word(w) if !w.value.eq_ignore_ascii_case(skip))
            })
            .map_or(from, |t| t.span.start)
    }

    fn boxed(&self, e: &Expr, depth: usize) -> Result<Box<Node>, CompileError> {
        Ok(Box::new(self.node(e, depth)?))
    }

    /// Compiles one node. Kept to a thin dispatch, with each construct in
    /// its own method, because this recursion's stack frame is what bounds
    /// the nesting a small (2 MiB) thread stack can compile in debug builds.
    fn node(&self, expr: &Expr, depth: usize) -> Result<Node, CompileError> {
        if depth > MAX_DEPTH {
            // Computing this node's span would itself recurse through the
            // deep subtree, so the position is the start of the text.
            return Err(CompileError::at(
                Location::of(1, 1),
                format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        let d = depth + 1;
        match expr {
            Expr::Identifier(id) => Ok(Node::Field(vec![id.value.clone()])),
            Expr::CompoundIdentifier(ids) => {
                Ok(Node::Field(ids.iter().map(|i| i.value.clone()).collect()))
            }
            Expr::CompoundFieldAccess { root, access_chain } => self.access(root, access_chain, d),
            Expr::Function(f) => match bare_word(f) {
                Some(word) => Ok(Node::Field(vec![word.to_string()])),
                None => self.function(f, d),
            },
            Expr::Value(v) => self.literal(v, false),
            Expr::Nested(inner) => self.node(inner, d),
            Expr::UnaryOp { op, expr: inner } => self.unary(op, inner, d),
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right, d),
            Expr::IsNull(x) => self.is(IsTest::Null, x, d),
            Expr::IsNotNull(x) => self.is(IsTest::NotNull, x, d),
            Expr::IsTrue(x) => self.is(IsTest::True, x, d),
            Expr::IsNotTrue(x) => self.is(IsTest::NotTrue, x, d),
            Expr::IsFalse(x) => self.is(IsTest::False, x, d),
            Expr::IsNotFalse(x) => self.is(IsTest::NotFalse, x, d),
            Expr::IsUnknown(x) => self.is(IsTest::Unknown, x, d),
            Expr::IsNotUnknown(x) => self.is(IsTest::NotUnknown, x, d),
            Expr::IsDistinctFrom(..)
            | Expr::IsNotDistinctFrom(..)
            | Expr::InList { .. }
            | Expr::Between { .. } => self.predicate(expr, d),
            Expr::Like {
                negated,
                any,
                expr: x,
                pattern,
                escape_char,
            } => self.like(x, pattern, escape_char.as_ref(), *negated, *any, false, d),
            Expr::ILike {
                negated,
                any,
                expr: x,
                pattern,
                escape_char,
            } => self.like(x, pattern, escape_char.as_ref(), *negated, *any, true, d),
            Expr::Case { .. } => self.case(expr, d),
            Expr::Cast { .. } => self.cast(expr, d),
            Expr::Position { .. } | Expr::Substring { .. } | Expr::Trim { .. } => {
                self.string_form(expr, d)
            }
            Expr::Ceil { .. } | Expr::Floor { .. } => self.rounding_form(expr, d),
            other => Err(self.unsupported(other)),
        }
    }

    fn is(&self, test: IsTest, x: &Expr, d: usize) -> Result<Node, CompileError> {
        Ok(Node::Is(test, self.boxed(x, d)?))
    }

    fn unary(&self, op: &UnaryOperator, inner: &Expr, d: usize) -> Result<Node, CompileError> {
        Ok(match op {
            UnaryOperator::Minus => match inner {
                // Folded so that -9223372036854775808 is an integer.
                Expr::Value(v) if matches!(v.value, SqlValue::Number(..)) => {
                    self.literal(v, true)?
                }
                _ => Node::Neg(self.boxed(inner, d)?),
            },
            UnaryOperator::Plus => Node::Plus(self.boxed(inner, d)?),
            UnaryOperator::Not => Node::Not(self.boxed(inner, d)?),
            other => {
                return Err(CompileError::at(
                    self.token_before(inner.span().start),
                    format!("unsupported operator {other}"),
                ));
            }
        })
    }

    /// IS [NOT] DISTINCT FROM, [NOT] IN (list), [NOT] BETWEEN.
    fn predicate(&self, expr: &Expr, d: usize) -> Result<Node, CompileError> {
        Ok(match expr {
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => Node::Distinct {
                left: self.boxed(a, d)?,
                right: self.boxed(b, d)?,
                negated: matches!(expr, Expr::IsNotDistinctFrom(..)),
            },
            Expr::InList {
                expr: x,
                list,
                negated,
            } => Node::InList {
                expr: self.boxed(x, d)?,
                list: list
                    .iter()
                    .map(|e| self.node(e, d))
                    .collect::<Result<_, _>>()?,
                negated: *negated,
            },
            Expr::Between {
                expr: x,
                negated,
                low,
                high,
            } => Node::Between {
                expr: self.boxed(x, d)?,
                low: self.boxed(low, d)?,
                high: self.boxed(high, d)?,
                negated: *negated,
            },
            other => return Err(self.unsupported(other)),
        })
    }

    fn case(&self, expr: &Expr, d: usize) -> Result<Node, CompileError> {
        let Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } = expr
        else {
            return Err(self.unsupported(expr));
        };
        Ok(Node::Case {
            operand: operand.as_ref().map(|o| self.boxed(o, d)).transpose()?,
            whens: conditions
                .iter()
                .map(|w| Ok((self.node(&w.condition, d)?, self.node(&w.result, d)?)))
                .collect::<Result<_, CompileError>>()?,
            otherwise: else_result.as_ref().map(|e| self.boxed(e, d)).transpose()?,
        })
    }

    fn cast(&self, expr: &Expr, d: usize) -> Result<Node, CompileError> {
        let Expr::Cast {
            kind,
            expr: x,
            data_type,
            array,
            format,
        } = expr
        else {
            return Err(self.unsupported(expr));
        };
        let inner = self.boxed(x, d)?;
        let skip = if *kind == CastKind::DoubleColon {
            ""
        } else {
            "AS"
        };
        let type_at = || self.word_after(x.span().end, skip);
        if *array || format.is_some() {
            return Err(CompileError::at(
                type_at(),
                "unsupported CAST option (ARRAY or FORMAT)",
            ));
        }
        let target = cast_target(data_type).ok_or_else(|| {
            CompileError::at(
                type_at(),
                format!(
                    "unsupported cast target type {data_type}; supported: INTEGER, BIGINT, \
                     DOUBLE, REAL, DECIMAL, VARCHAR, TEXT, STRING, BOOLEAN"
                ),
            )
        })?;
        Ok(Node::Cast {
            expr: inner,
            target,
            lenient: matches!(kind, CastKind::TryCast | CastKind::SafeCast),
        })
    }

    /// POSITION(a IN b), SUBSTRING(x FROM a FOR b) and TRIM(... FROM x):
    /// SQL's keyword syntaxes for ordinary string functions.
    fn string_form(&self, expr: &Expr, d: usize) -> Result<Node, CompileError> {
        let (func, name, args) = match expr {
            Expr::Position { expr: needle, r#in } => (
                Func::Strpos,
                "position",
                vec![self.node(r#in, d)?, self.node(needle, d)?],
            ),
            Expr::Substring {
                expr: x,
                substring_from,
                substring_for,
                shorthand,
                ..
            } => {
                let name = if *shorthand { "substr" } else { "substring" };
                let mut args = vec![self.node(x, d)?];
                match (substring_from, substring_for) {
                    (Some(from), len) => {
                        args.push(self.node(from, d)?);
                        if let Some(len) = len {
                            args.push(self.node(len, d)?);
                        }
                    }
                    (None, Some(len)) => {
                        args.push(Node::Literal(Value::from(1)));
                        args.push(self.node(len, d)?);
                    }
                    (None, None) => {
                        return Err(CompileError::at(
                            self.keyword_before(x.span().start, &["SUBSTRING", "SUBSTR"]),
                            format!("function {name} expects 2 or 3 arguments, got 1"),
                        ));
                    }
                }
                (Func::Substr, name, args)
            }
            Expr::Trim {
                trim_where,
                trim_what,
                expr: x,
                trim_characters,
            } => {
                let func = match trim_where {
                    Some(TrimWhereField::Leading) => Func::Ltrim,
                    Some(TrimWhereField::Trailing) => Func::Rtrim,
                    _ => Func::Btrim,
                };
                let mut args = vec![self.node(x, d)?];
                for e in trim_what
                    .iter()
                    .map(|b| b.as_ref())
                    .chain(trim_characters.iter().flatten())
                {
                    args.push(self.node(e, d)?);
                }
                if args.len() > 2 {
                    return Err(CompileError::at(
                        self.keyword_before(x.span().start, &["TRIM"]),
                        format!("function trim expects 1 or 2 arguments, got {}", args.len()),
                    ));
                }
                (func, "trim", args)
            }
            other => return Err(self.unsupported(other)),
        };
        Ok(Node::Call {
            func,
            name: name.into(),
            args,
            regex: None,
        })
    }

    /// CEIL(x) and FLOOR(x), which sqlparser parses specially.
    fn rounding_form(&self, expr: &Expr, d: usize) -> Result<Node, CompileError> {
        let (func, name, x, field) = match expr {
            Expr::Ceil { expr: x, field } => (Func::Ceil, "ceil", x, field),
            Expr::Floor { expr: x, field } => (Func::Floor, "floor", x, field),
            other => return Err(self.unsupported(other)),
        };
        let at = || self.keyword_before(x.span().start, &[name, "CEILING"]);
        match field {
            CeilFloorKind::DateTimeField(DateTimeField::NoDateTime) => {}
            CeilFloorKind::Scale(_) => {
                return Err(CompileError::at(
                    at(),
                    format!("function {name} expects 1 argument, got 2"),
                ));
            }
            CeilFloorKind::DateTimeField(_) => {
                return Err(CompileError::at(
                    at(),
                    format!("unsupported {name}(... TO <time unit>)"),
                ));
            }
        }
        Ok(Node::Call {
            func,
            name: name.into(),
            args: vec![self.node(x, d)?],
            regex: None,
        })
    }

    fn literal(&self, v: &ValueWithSpan, negative: bool) -> Result<Node, CompileError> {
        let value = match &v.value {
            SqlValue::Number(n, _) => {
                let text = format!("{}{n}", if negative { "-" } else { "" });
                parse_number(&text).ok_or_else(|| {
                    CompileError::at(v.span.start, format!("number {text} is out of range"))
                })?
            }
            SqlValue::SingleQuotedString(s)
            | SqlValue::DoubleQuotedString(s)
            | SqlValue::TripleSingleQuotedString(s)
            | SqlValue::TripleDoubleQuotedString(s)
            | SqlValue::EscapedStringLiteral(s)
            | SqlValue::UnicodeStringLiteral(s)
            | SqlValue::NationalStringLiteral(s) => Value::String(s.clone()),
            SqlValue::DollarQuotedString(s) => Value::String(s.value.clone()),
            SqlValue::Boolean(b) => Value::Bool(*b),
            SqlValue::Null => Value::Null,
            other => {
                return Err(CompileError::at(
                    v.span.start,
                    format!("unsupported literal {other}"),
                ));
            }
        };
        Ok(Node::Literal(value))
    }

    fn access(&self, root: &Expr, chain: &[AccessExpr], d: usize) -> Result<Node, CompileError> {
        let base = self.node(root, d)?;
        let mut steps = Vec::with_capacity(chain.len());
        for access in chain {
            let step = match access {
                AccessExpr::Dot(Expr::Identifier(id)) => Step::Key(id.value.clone()),
                AccessExpr::Dot(Expr::Function(f)) if bare_word(f).is_some() => {
                    Step::Key(bare_word(f).unwrap_or_default().to_string())
                }
                AccessExpr::Dot(other) => {
                    return Err(CompileError::at(
                        other.span().start,
                        format!("unsupported field access .{other}"),
                    ));
                }
                AccessExpr::Subscript(Subscript::Index { index }) => match self.node(index, d)? {
                    Node::Literal(Value::String(key)) => Step::Key(key),
                    n => Step::Index(n),
                },
                AccessExpr::Subscript(Subscript::Slice { .. }) => {
                    return Err(CompileError::at(
                        self.token_after(root.span().end),
                        "array slices are not supported",
                    ));
                }
            };
            steps.push(step);
        }
        // Keys known at compile time extend a field path, so that
        // `user['country']` and `user.country` are the same lookup.
        let Node::Field(mut path) = base else {
            return Ok(Node::Access(Box::new(base), steps));
        };
        let mut rest = steps.into_iter().peekable();
        while let Some(Step::Key(_)) = rest.peek() {
            if let Some(Step::Key(key)) = rest.next() {
                path.push(key);
            }
        }
        let rest: Vec<Step> = rest.collect();
        Ok(if rest.is_empty() {
            Node::Field(path)
        } else {
            Node::Access(Box::new(Node::Field(path)), rest)
        })
    }

    fn binary(
        &self,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
        d: usize,
    ) -> Result<Node, CompileError> {
        use BinaryOperator as B;
        let l = self.boxed(left, d)?;
        let build: fn(Box<Node>, Box<Node>) -> Node = match op {
            B::Plus => |a, b| Node::Arith(ArithOp::Add, a, b),
            B::Minus => |a, b| Node::Arith(ArithOp::Sub, a, b),
            B::Multiply => |a, b| Node::Arith(ArithOp::Mul, a, b),
            B::Divide => |a, b| Node::Arith(ArithOp::Div, a, b),
            B::Modulo => |a, b| Node::Arith(ArithOp::Mod, a, b),
            B::StringConcat => Node::Concat,
            B::Eq => |a, b| Node::Compare(CmpOp::Eq, a, b),
            B::NotEq => |a, b| Node::Compare(CmpOp::NotEq, a, b),
            B::Lt => |a, b| Node::Compare(CmpOp::Lt, a, b),
            B::LtEq => |a, b| Node::Compare(CmpOp::LtEq, a, b),
            B::Gt => |a, b| Node::Compare(CmpOp::Gt, a, b),
            B::GtEq => |a, b| Node::Compare(CmpOp::GtEq, a, b),
            B::And => Node::And,
            B::Or => Node::Or,
            other => {
                return Err(CompileError::at(
                    self.token_after(left.span().end),
                    format!("unsupported operator {other}"),
                ));
            }
        };
        Ok(build(l, self.boxed(right, d)?))
    }

    #[allow(clippy::too_many_arguments)]
    fn like(
        &self,
        x: &Expr,
        pattern: &Expr,
        escape_char: Option<&ValueWithSpan>,
        negated: bool,
        any: bool,
        case_insensitive: bool,
        d: usize,
    ) -> Result<Node, CompileError> {
        let op = if case_insensitive { "ILIKE" } else { "LIKE" };
        let expr = self.boxed(x, d)?;
        if any {
            return Err(CompileError::at(
                self.token_after(x.span().end),
                format!("unsupported {op} ANY"),
            ));
        }
        let escape = match escape_char {
            // PostgreSQL's default: backslash escapes unless ESCAPE says otherwise.
            None => Some('\\'),
            Some(v) => {
                let text = match &v.value {
                    SqlValue::SingleQuotedString(s) | SqlValue::EscapedStringLiteral(s) => s,
                    _ => {
                        return Err(CompileError::at(
                            v.span.start,
                            "ESCAPE must be a string literal",
                        ));
                    }
                };
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (first, None) => first,
                    _ => {
                        return Err(CompileError::at(
                            v.span.start,
                            "ESCAPE must be a single character",
                        ));
                    }
                }
            }
        };
        let pattern = match self.node(pattern, d)? {
            Node::Literal(Value::String(p)) => LikeSource::Fixed(
                LikePattern::new(&p, escape, case_insensitive)
                    .map_err(|m| CompileError::at(pattern.span().start, m))?,
            ),
            other => LikeSource::Dynamic(Box::new(other)),
        };
        Ok(Node::Like {
            expr,
            pattern,
            escape,
            case_insensitive,
            negated,
        })
    }

    fn function(&self, f: &Function, d: usize) -> Result<Node, CompileError> {
        let at = f.name.span().start;
        let err = |m: String| Err(CompileError::at(at, m));
        let shown = f.name.to_string();
        let name = match f.name.0.as_slice() {
            [part] => part
                .as_ident()
                .map_or(shown.clone(), |i| i.value.to_lowercase()),
            _ => shown.to_lowercase(),
        };
        if f.over.is_some() {
            return err(format!(
                "window functions are not supported ({shown} ... OVER)"
            ));
        }
        if functions::is_aggregate(&name) {
            return err(format!(
                "{name} is an aggregate: aggregate functions belong in frequencies/count/topk steps, \
                 not in an expression"
            ));
        }
        let Some((func, min, max)) = functions::resolve(&name) else {
            return err(format!(
                "unknown function {shown}; known functions: {}",
                functions::known_names()
            ));
        };
        if f.filter.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
            return err(format!(
                "unsupported FILTER, WITHIN GROUP or NULLS clause on {name}"
            ));
        }
        if f.uses_odbc_syntax || !matches!(f.parameters, FunctionArguments::None) {
            return err(format!("unsupported call syntax for {name}"));
        }
        let list = match &f.args {
            FunctionArguments::List(list) => list,
            FunctionArguments::Subquery(_) => {
                return err(format!("subqueries are not supported (in {name})"));
            }
            FunctionArguments::None => return err(format!("function {name} needs parentheses")),
        };
        if list.duplicate_treatment.is_some() {
            return err(format!("DISTINCT/ALL is not supported in a call to {name}"));
        }
        if let Some(clause) = list.clauses.first() {
            return err(format!("unsupported clause {clause} in a call to {name}"));
        }
        let mut exprs = Vec::with_capacity(list.args.len());
        for arg in &list.args {
            match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => exprs.push(e),
                FunctionArg::Unnamed(_) => {
                    return err(format!("`*` is not a valid argument of {name}"));
                }
                FunctionArg::Named { .. } | FunctionArg::ExprNamed { .. } => {
                    return err(format!("named arguments are not supported (in {name})"));
                }
            }
        }
        if exprs.len() < min || exprs.len() > max {
            return err(format!(
                "function {name} expects {}, got {}",
                functions::arity_text(min, max),
                exprs.len()
            ));
        }
        let args = exprs
            .iter()
            .map(|e| self.node(e, d))
            .collect::<Result<Vec<_>, _>>()?;
        let regex = self.literal_regex(func, &name, &args, &exprs)?;
        Ok(Node::Call {
            func,
            name,
            args,
            regex,
        })
    }

    /// Compiles a regex whose pattern and flags are literals once, so bad
    /// patterns fail at compile time and good ones are not rebuilt per item.
    fn literal_regex(
        &self,
        func: Func,
        name: &str,
        args: &[Node],
        exprs: &[&Expr],
    ) -> Result<Option<FlaggedRegex>, CompileError> {
        let (flags_at, global) = match func {
            Func::RegexpLike => (2, false),
            Func::RegexpReplace => (3, true),
            _ => return Ok(None),
        };
        let Some(Node::Literal(Value::String(pattern))) = args.get(1) else {
            return Ok(None);
        };
        let flags = match (args.get(flags_at), exprs.get(flags_at)) {
            (None, _) => "",
            (Some(Node::Literal(Value::String(flags))), Some(e)) => {
                // An empty pattern always compiles, so this checks the flags alone.
                functions::build_regex(name, "", flags, global)
                    .map_err(|m| CompileError::at(e.span().start, m))?;
                flags.as_str()
            }
            _ => return Ok(None),
        };
        let at = exprs.get(1).map_or(Location::of(1, 1), |e| e.span().start);
        functions::build_regex(name, pattern, flags, global)
            .map(Some)
            .map_err(|m| CompileError::at(at, m))
    }

    fn unsupported(&self, e: &Expr) -> CompileError {
        let (what, keyword): (&str, &[&str]) = match e {
            Expr::Subquery(_) | Expr::InSubquery { .. } => ("subqueries", &[]),
            Expr::Exists { .. } => ("EXISTS", &["EXISTS"]),
            Expr::InUnnest { .. } => ("IN UNNEST", &[]),
            Expr::Interval(_) => ("INTERVAL", &["INTERVAL"]),
            Expr::SimilarTo { .. } => ("SIMILAR TO", &[]),
            Expr::RLike { .. } => ("RLIKE/REGEXP (use regexp_like)", &[]),
            Expr::AnyOp { .. } => ("ANY", &[]),
            Expr::AllOp { .. } => ("ALL", &[]),
            Expr::Convert { .. } => ("CONVERT", &["CONVERT", "TRY_CONVERT"]),
            Expr::AtTimeZone { .. } => ("AT TIME ZONE", &[]),
            Expr::Extract { .. } => ("EXTRACT", &["EXTRACT"]),
            Expr::Overlay { .. } => ("OVERLAY", &["OVERLAY"]),
            Expr::Collate { .. } => ("COLLATE", &[]),
            Expr::TypedString(_) => ("typed literals such as DATE '...'", &[]),
            Expr::GroupingSets(_) => ("GROUPING SETS", &[]),
            Expr::Cube(_) => ("CUBE", &[]),
            Expr::Rollup(_) => ("ROLLUP", &[]),
            Expr::Tuple(_) => ("row values", &[]),
            Expr::Struct { .. } => ("STRUCT", &[]),
            Expr::Named { .. } => ("named expressions", &[]),
            Expr::Dictionary(_) => ("dictionary literals", &[]),
            Expr::Map(_) => ("MAP literals", &[]),
            Expr::Array(_) => ("array constructors", &["ARRAY"]),
            Expr::MatchAgainst { .. } => ("MATCH ... AGAINST", &["MATCH"]),
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => ("`*`", &[]),
            Expr::OuterJoin(_) => ("(+) outer joins", &[]),
            Expr::Prior(_) => ("PRIOR", &["PRIOR"]),
            Expr::Lambda(_) => ("lambda functions", &[]),
            Expr::MemberOf(_) => ("MEMBER OF", &[]),
            Expr::JsonAccess { .. } => ("JSON path access (use a.b or a['b'])", &[]),
            Expr::IsNormalized { .. } => ("IS NORMALIZED", &[]),
            Expr::Prefixed { .. } => ("prefixed expressions", &[]),
            _ => ("this kind of expression", &[]),
        };
        let start = e.span().start;
        let at = match e {
            // The span starts at the quoted text, after the type name.
            Expr::TypedString(_) => self.token_before(start),
            _ if keyword.is_empty() => start,
            _ => self.keyword_before(start, keyword),
        };
        CompileError::at(at, format!("unsupported SQL: {what}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_is_split_off() {
        assert_eq!(
            split_location("Expected: x, found: y at Line: 2, Column: 7"),
            ("Expected: x, found: y", Some((2, 7)))
        );
        assert_eq!(split_location("no location"), ("no location", None));
    }

    #[test]
    fn end_position_counts_characters() {
        assert_eq!(end_of("é +"), (1, 4));
        assert_eq!(end_of("a\nbc"), (2, 3));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("12"), Some(Value::from(12)));
        assert_eq!(parse_number("1.5"), Some(Value::from(1.5)));
        assert_eq!(parse_number("1e3"), Some(Value::from(1000.0)));
        assert_eq!(
            parse_number("99999999999999999999"),
            Some(Value::from(1e20))
        );
        assert_eq!(parse_number("1e400"), None);
    }
}
