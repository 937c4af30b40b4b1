//! Evaluates a compiled tree against one item. Values borrowed from the
//! item or from literals are not cloned unless an operator builds a new one.

use std::borrow::Cow;

use serde_json::Value;

use crate::cast::{CastTarget, cast};
use crate::functions::{self, Func};
use crate::like::LikePattern;
use crate::tree::{CmpOp, IsTest, LikeSource, Node, Step};
use crate::value::{Res, arith, describe, mismatch, negate, sql_cmp, sql_eq, to_text, truth};

/// What a missing field, or a lookup through a non-object, evaluates to.
static NULL: Value = Value::Null;

/// Looks up a field path from the item's root; a non-object item is
/// treated as the record `{"value": item}`.
pub(crate) fn lookup_path<'a, S: AsRef<str>>(item: &'a Value, path: &[S]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut current = match item {
        Value::Object(map) => map.get(first.as_ref())?,
        _ if first.as_ref() == "value" => item,
        _ => return None,
    };
    for key in rest {
        current = current.as_object()?.get(key.as_ref())?;
    }
    Some(current)
}

type Out<'a> = Res<Cow<'a, Value>>;

fn flag<'a>(b: Option<bool>) -> Out<'a> {
    Ok(Cow::Owned(b.map_or(Value::Null, Value::Bool)))
}

/// Evaluates `node` against `item`.
///
/// This is a thin dispatch with each construct in its own function: in
/// debug builds a frame holds every arm's temporaries, and the recursion's
/// frame size decides how deep a tree fits in a worker thread's stack.
pub(crate) fn eval<'a>(node: &'a Node, item: &'a Value) -> Out<'a> {
    match node {
        Node::Literal(v) => Ok(Cow::Borrowed(v)),
        Node::Field(path) => Ok(Cow::Borrowed(lookup_path(item, path).unwrap_or(&NULL))),
        Node::Access(base, steps) => access(base, steps, item),
        Node::Neg(_) | Node::Plus(_) | Node::Arith(..) | Node::Concat(..) => arithmetic(node, item),
        Node::Compare(op, a, b) => comparison(*op, a, b, item),
        Node::And(a, b) => and(a, b, item),
        Node::Or(a, b) => or(a, b, item),
        Node::Not(x) => not(x, item),
        Node::Is(test, x) => is(*test, x, item),
        Node::Distinct { .. } => distinct(node, item),
        Node::InList { .. } => in_list(node, item),
        Node::Between { .. } => between(node, item),
        Node::Like { .. } => like(node, item),
        Node::Case { .. } => case(node, item),
        Node::Cast {
            expr,
            target,
            lenient,
        } => cast_node(expr, *target, *lenient, item),
        Node::Call { .. } => call(node, item),
    }
}

fn access<'a>(base: &'a Node, steps: &'a [Step], item: &'a Value) -> Out<'a> {
    let mut current = eval(base, item)?;
    for s in steps {
        current = step(current, s, item)?;
    }
    Ok(current)
}

fn arithmetic<'a>(node: &'a Node, item: &'a Value) -> Out<'a> {
    let value = match node {
        Node::Neg(x) => negate(&*eval(x, item)?)?,
        Node::Plus(x) => {
            let v = eval(x, item)?;
            return match v.as_ref() {
                Value::Null | Value::Number(_) => Ok(v),
                other => Err(format!("cannot apply unary + to {}", describe(other))),
            };
        }
        Node::Arith(op, a, b) => arith(*op, &*eval(a, item)?, &*eval(b, item)?)?,
        Node::Concat(a, b) => {
            let (a, b) = (eval(a, item)?, eval(b, item)?);
            match (to_text(&a), to_text(&b)) {
                (Some(x), Some(y)) => Value::String(x + &y),
                _ => Value::Null,
            }
        }
        _ => Value::Null,
    };
    Ok(Cow::Owned(value))
}

fn comparison<'a>(op: CmpOp, a: &'a Node, b: &'a Node, item: &'a Value) -> Out<'a> {
    flag(compare(op, &*eval(a, item)?, &*eval(b, item)?)?)
}

/// Short-circuits so that guards like `x IS NOT NULL AND ...` protect the
/// right side from type errors.
fn and<'a>(a: &'a Node, b: &'a Node, item: &'a Value) -> Out<'a> {
    let left = truth("AND", &*eval(a, item)?)?;
    if left == Some(false) {
        return flag(Some(false));
    }
    let right = truth("AND", &*eval(b, item)?)?;
    flag(match (left, right) {
        (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    })
}

fn or<'a>(a: &'a Node, b: &'a Node, item: &'a Value) -> Out<'a> {
    let left = truth("OR", &*eval(a, item)?)?;
    if left == Some(true) {
        return flag(Some(true));
    }
    let right = truth("OR", &*eval(b, item)?)?;
    flag(match (left, right) {
        (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    })
}

fn not<'a>(x: &'a Node, item: &'a Value) -> Out<'a> {
    flag(truth("NOT", &*eval(x, item)?)?.map(|b| !b))
}

fn distinct<'a>(node: &'a Node, item: &'a Value) -> Out<'a> {
    let Node::Distinct {
        left,
        right,
        negated,
    } = node
    else {
        return flag(None);
    };
    let (a, b) = (eval(left, item)?, eval(right, item)?);
    let is_distinct = match (a.is_null(), b.is_null()) {
        (true, true) => false,
        (true, false) | (false, true) => true,
        (false, false) => sql_eq("IS DISTINCT FROM", &a, &b)? != Some(true),
    };
    flag(Some(is_distinct != *negated))
}

fn in_list<'a>(node: &'a Node, item: &'a Value) -> Out<'a> {
    let Node::InList {
        expr,
        list,
        negated,
    } = node
    else {
        return flag(None);
    };
    let x = eval(expr, item)?;
    let op = if *negated { "NOT IN" } else { "IN" };
    let mut saw_null = x.is_null();
    if !saw_null {
        for candidate in list {
            match sql_eq(op, &x, &*eval(candidate, item)?)? {
                Some(true) => return flag(Some(!negated)),
                Some(false) => {}
                None => saw_null = true,
            }
        }
    }
    flag(if saw_null { None } else { Some(*negated) })
}

fn between<'a>(node: &'a Node, item: &'a Value) -> Out<'a> {
    let Node::Between {
        expr,
        low,
        high,
        negated,
    } = node
    else {
        return flag(None);
    };
    let x = eval(expr, item)?;
    let op = if *negated { "NOT BETWEEN" } else { "BETWEEN" };
    let above = sql_cmp(op, &x, &*eval(low, item)?)?.map(|o| o.is_ge());
    let below = sql_cmp(op, &x, &*eval(high, item)?)?.map(|o| o.is_le());
    let inside = match (above, below) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    };
    flag(inside.map(|b| b != *negated))
}

fn like<'a>(node: &'a Node, item: &'a Value) -> Out<'a> {
    let Node::Like {
        expr,
        pattern,
        escape,
        case_insensitive,
        negated,
    } = node
    else {
        return flag(None);
    };
    let op = match (negated, case_insensitive) {
        (false, false) => "LIKE",
        (true, false) => "NOT LIKE",
        (false, true) => "ILIKE",
        (true, true) => "NOT ILIKE",
    };
    let x = eval(expr, item)?;
    let built;
    let compiled = match pattern {
        LikeSource::Fixed(p) => p,
        LikeSource::Dynamic(p) => match (x.as_ref(), eval(p, item)?.as_ref()) {
            (Value::Null, _) | (_, Value::Null) => return flag(None),
            (Value::String(_), Value::String(p)) => {
                built = LikePattern::new(p, *escape, *case_insensitive)?;
                &built
            }
            (a, b) => return Err(mismatch(op, a, b)),
        },
    };
    match x.as_ref() {
        Value::Null => flag(None),
        Value::String(s) => flag(Some(compiled.matches(s) != *negated)),
        other => Err(format!("cannot apply {op} to {}", describe(other))),
    }
}

/// Only the chosen branch is evaluated, so other branches cannot fail.
fn case<'a>(node: &'a Node, item: &'a Value) -> Out<'a> {
    let Node::Case {
        operand,
        whens,
        otherwise,
    } = node
    else {
        return flag(None);
    };
    let subject = operand.as_ref().map(|o| eval(o, item)).transpose()?;
    for (when, then) in whens {
        let w = eval(when, item)?;
        let taken = match &subject {
            Some(s) => sql_eq("CASE", s, &w)?,
            None => truth("CASE WHEN", &w)?,
        };
        if taken == Some(true) {
            return eval(then, item);
        }
    }
    match otherwise {
        Some(e) => eval(e, item),
        None => Ok(Cow::Borrowed(&NULL)),
    }
}

fn cast_node<'a>(expr: &'a Node, target: CastTarget, lenient: bool, item: &'a Value) -> Out<'a> {
    let v = eval(expr, item)?;
    match cast(&v, target) {
        Ok(out) => Ok(Cow::Owned(out)),
        Err(_) if lenient => Ok(Cow::Borrowed(&NULL)),
        Err(e) => Err(e),
    }
}

fn call<'a>(node: &'a Node, item: &'a Value) -> Out<'a> {
    let Node::Call {
        func,
        name,
        args,
        regex,
    } = node
    else {
        return flag(None);
    };
    if *func == Func::Coalesce {
        // Lazy, so later fallbacks are not evaluated (or failing) needlessly.
        for arg in args {
            let v = eval(arg, item)?;
            if !v.is_null() {
                return Ok(v);
            }
        }
        return Ok(Cow::Borrowed(&NULL));
    }
    let values = args
        .iter()
        .map(|a| eval(a, item))
        .collect::<Res<Vec<_>>>()?;
    Ok(Cow::Owned(functions::call(
        *func,
        name,
        &values,
        regex.as_ref(),
    )?))
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> Res<Option<bool>> {
    let sym = op.symbol();
    Ok(match op {
        CmpOp::Eq => sql_eq(sym, a, b)?,
        CmpOp::NotEq => sql_eq(sym, a, b)?.map(|e| !e),
        CmpOp::Lt => sql_cmp(sym, a, b)?.map(|o| o.is_lt()),
        CmpOp::LtEq => sql_cmp(sym, a, b)?.map(|o| o.is_le()),
        CmpOp::Gt => sql_cmp(sym, a, b)?.map(|o| o.is_gt()),
        CmpOp::GtEq => sql_cmp(sym, a, b)?.map(|o| o.is_ge()),
    })
}

fn is<'a>(test: IsTest, x: &'a Node, item: &'a Value) -> Out<'a> {
    let v = eval(x, item)?;
    let v = v.as_ref();
    let ctx = || match test {
        IsTest::True => "IS TRUE",
        IsTest::NotTrue => "IS NOT TRUE",
        IsTest::False => "IS FALSE",
        IsTest::NotFalse => "IS NOT FALSE",
        IsTest::Unknown => "IS UNKNOWN",
        IsTest::NotUnknown | IsTest::Null | IsTest::NotNull => "IS NOT UNKNOWN",
    };
    flag(Some(match test {
        IsTest::Null => v.is_null(),
        IsTest::NotNull => !v.is_null(),
        IsTest::True => truth(ctx(), v)? == Some(true),
        IsTest::NotTrue => truth(ctx(), v)? != Some(true),
        IsTest::False => truth(ctx(), v)? == Some(false),
        IsTest::NotFalse => truth(ctx(), v)? != Some(false),
        IsTest::Unknown => truth(ctx(), v)?.is_none(),
        IsTest::NotUnknown => truth(ctx(), v)?.is_some(),
    }))
}

/// Applies one subscript; anything that does not lead to a value is NULL.
fn step<'a>(current: Cow<'a, Value>, s: &'a Step, item: &'a Value) -> Res<Cow<'a, Value>> {
    let index = match s {
        Step::Key(k) => return Ok(child(current, |v| v.as_object().and_then(|m| m.get(k)))),
        Step::Index(n) => eval(n, item)?,
    };
    Ok(match index.as_ref() {
        Value::Null => Cow::Borrowed(&NULL),
        Value::String(k) => child(current, |v| v.as_object().and_then(|m| m.get(k))),
        Value::Number(n) => match n.as_i64() {
            // SQL arrays are 1-based; 0 and negatives are simply out of range.
            Some(i) if i >= 1 => {
                let at = usize::try_from(i - 1).unwrap_or(usize::MAX);
                child(current, |v| v.as_array().and_then(|a| a.get(at)))
            }
            Some(_) => Cow::Borrowed(&NULL),
            None => {
                return Err(format!(
                    "array index must be an integer, found {}",
                    describe(&index)
                ));
            }
        },
        other => {
            return Err(format!(
                "subscript must be an integer or a string, found {}",
                describe(other)
            ));
        }
    })
}

/// Selects a child of a value that may be borrowed (from the item) or
/// owned (computed), keeping the borrow when possible.
fn child<'a>(current: Cow<'a, Value>, pick: impl Fn(&Value) -> Option<&Value>) -> Cow<'a, Value> {
    match current {
        Cow::Borrowed(v) => Cow::Borrowed(pick(v).unwrap_or(&NULL)),
        Cow::Owned(v) => Cow::Owned(pick(&v).cloned().unwrap_or(Value::Null)),
    }
}
