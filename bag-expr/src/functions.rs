//! Scalar functions: the name table used by the compiler and their
//! evaluation over already-evaluated arguments.

use std::borrow::Cow;
use std::cmp::Ordering;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::value::{Num, Res, as_num, describe, float_value, json_eq, sql_cmp, sql_eq, to_text};

/// Upper bound on characters a padding or repeat may produce, so a typo
/// like `repeat(x, 1e9)` fails instead of exhausting memory.
const MAX_RESULT_CHARS: usize = 1 << 26;

/// A resolved scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Lower,
    Upper,
    Length,
    Btrim,
    Ltrim,
    Rtrim,
    Substr,
    Concat,
    ConcatWs,
    Coalesce,
    Nullif,
    Greatest,
    Least,
    Abs,
    Round,
    Floor,
    Ceil,
    Sqrt,
    Power,
    Exp,
    Ln,
    Log10,
    Log,
    Sign,
    Replace,
    SplitPart,
    StartsWith,
    EndsWith,
    Strpos,
    Reverse,
    Lpad,
    Rpad,
    Left,
    Right,
    Repeat,
    RegexpLike,
    RegexpReplace,
    Cardinality,
    ArrayLength,
    ArrayContains,
}

/// Name, function, minimum and maximum argument counts.
const TABLE: &[(&str, Func, usize, usize)] = &[
    ("abs", Func::Abs, 1, 1),
    ("array_contains", Func::ArrayContains, 2, 2),
    ("array_length", Func::ArrayLength, 1, 2),
    ("btrim", Func::Btrim, 1, 2),
    ("cardinality", Func::Cardinality, 1, 1),
    ("ceil", Func::Ceil, 1, 1),
    ("ceiling", Func::Ceil, 1, 1),
    ("char_length", Func::Length, 1, 1),
    ("character_length", Func::Length, 1, 1),
    ("coalesce", Func::Coalesce, 1, usize::MAX),
    ("concat", Func::Concat, 1, usize::MAX),
    ("concat_ws", Func::ConcatWs, 2, usize::MAX),
    ("ends_with", Func::EndsWith, 2, 2),
    ("exp", Func::Exp, 1, 1),
    ("floor", Func::Floor, 1, 1),
    ("greatest", Func::Greatest, 1, usize::MAX),
    ("least", Func::Least, 1, usize::MAX),
    ("left", Func::Left, 2, 2),
    ("length", Func::Length, 1, 1),
    ("ln", Func::Ln, 1, 1),
    ("log", Func::Log, 1, 2),
    ("log10", Func::Log10, 1, 1),
    ("lower", Func::Lower, 1, 1),
    ("lpad", Func::Lpad, 2, 3),
    ("ltrim", Func::Ltrim, 1, 2),
    ("nullif", Func::Nullif, 2, 2),
    ("pow", Func::Power, 2, 2),
    ("power", Func::Power, 2, 2),
    ("regexp_like", Func::RegexpLike, 2, 3),
    ("regexp_replace", Func::RegexpReplace, 3, 4),
    ("repeat", Func::Repeat, 2, 2),
    ("replace", Func::Replace, 3, 3),
    ("reverse", Func::Reverse, 1, 1),
    ("right", Func::Right, 2, 2),
    ("round", Func::Round, 1, 2),
    ("rpad", Func::Rpad, 2, 3),
    ("rtrim", Func::Rtrim, 1, 2),
    ("sign", Func::Sign, 1, 1),
    ("split_part", Func::SplitPart, 3, 3),
    ("sqrt", Func::Sqrt, 1, 1),
    ("starts_with", Func::StartsWith, 2, 2),
    ("strpos", Func::Strpos, 2, 2),
    ("substr", Func::Substr, 2, 3),
    ("substring", Func::Substr, 2, 3),
    ("trim", Func::Btrim, 1, 2),
    ("upper", Func::Upper, 1, 1),
];

/// Aggregates users may reach for out of habit; they get a pointed message.
const AGGREGATES: &[&str] = &[
    "approx_distinct",
    "approx_median",
    "approx_percentile_cont",
    "array_agg",
    "avg",
    "bit_and",
    "bit_or",
    "bool_and",
    "bool_or",
    "corr",
    "count",
    "covar_pop",
    "covar_samp",
    "every",
    "first_value",
    "last_value",
    "max",
    "mean",
    "median",
    "min",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "sum",
    "var_pop",
    "var_samp",
    "variance",
];

/// Finds a function by lowercase name: the function and its argument-count range.
pub(crate) fn resolve(name: &str) -> Option<(Func, usize, usize)> {
    TABLE
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|&(_, f, min, max)| (f, min, max))
}

/// Whether `name` (lowercase) is an aggregate function.
pub(crate) fn is_aggregate(name: &str) -> bool {
    AGGREGATES.contains(&name)
}

/// All known function names, for the "unknown function" message.
pub(crate) fn known_names() -> String {
    TABLE
        .iter()
        .map(|(n, ..)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Describes an argument-count range for messages: "1 argument", "2 or 3 arguments".
pub(crate) fn arity_text(min: usize, max: usize) -> String {
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    if min == max {
        format!("{min} {}", plural(min))
    } else if max == usize::MAX {
        format!("at least {min} {}", plural(min))
    } else if max == min + 1 {
        format!("{min} or {max} arguments")
    } else {
        format!("{min} to {max} arguments")
    }
}

/// Functions that must see NULL arguments instead of returning NULL for them.
fn handles_nulls(f: Func) -> bool {
    matches!(
        f,
        Func::Concat
            | Func::ConcatWs
            | Func::Coalesce
            | Func::Nullif
            | Func::Greatest
            | Func::Least
    )
}

/// A regular expression compiled from a pattern and PostgreSQL-style flags.
#[derive(Clone, Debug)]
pub(crate) struct FlaggedRegex {
    /// The compiled pattern with i/m/s/x flags applied.
    pub(crate) regex: Regex,
    /// The `g` flag: replace every match rather than the first.
    pub(crate) global: bool,
}

/// Compiles a pattern with flags; `g` is only meaningful for replacement.
pub(crate) fn build_regex(
    fname: &str,
    pattern: &str,
    flags: &str,
    allow_global: bool,
) -> Res<FlaggedRegex> {
    let mut builder = RegexBuilder::new(pattern);
    let mut global = false;
    for flag in flags.chars() {
        match flag {
            'i' => builder.case_insensitive(true),
            'c' => builder.case_insensitive(false),
            'm' | 'n' => builder.multi_line(true),
            's' => builder.dot_matches_new_line(true),
            'x' => builder.ignore_whitespace(true),
            'g' if allow_global => {
                global = true;
                &mut builder
            }
            other => {
                return Err(format!(
                    "{fname}: unsupported regular expression flag {other:?}"
                ));
            }
        };
    }
    let regex = builder
        .build()
        .map_err(|e| format!("{fname}: invalid regular expression: {e}"))?;
    Ok(FlaggedRegex { regex, global })
}

/// Evaluates `f` on evaluated arguments; `fname` is the name as written,
/// `compiled` the regex precompiled from literal pattern and flags.
pub(crate) fn call(
    f: Func,
    fname: &str,
    args: &[Cow<'_, Value>],
    compiled: Option<&FlaggedRegex>,
) -> Res<Value> {
    if !handles_nulls(f) && args.iter().any(|a| a.is_null()) {
        return Ok(Value::Null);
    }
    let a = Args { fname, args };
    match f {
        Func::Lower => Ok(a.str(0)?.to_lowercase().into()),
        Func::Upper => Ok(a.str(0)?.to_uppercase().into()),
        Func::Length => Ok(count_chars(a.str(0)?).into()),
        Func::Btrim | Func::Ltrim | Func::Rtrim => {
            let s = a.str(0)?;
            let set: Vec<char> = if args.len() > 1 {
                a.str(1)?.chars().collect()
            } else {
                vec![' ']
            };
            let strip = |c: char| set.contains(&c);
            Ok(match f {
                Func::Ltrim => s.trim_start_matches(strip),
                Func::Rtrim => s.trim_end_matches(strip),
                _ => s.trim_matches(strip),
            }
            .into())
        }
        Func::Substr => {
            let len = if args.len() > 2 {
                Some(a.int(2)?)
            } else {
                None
            };
            substr(a.str(0)?, a.int(1)?, len).map(Value::from)
        }
        Func::Concat => Ok(args
            .iter()
            .filter_map(|v| to_text(v))
            .collect::<String>()
            .into()),
        Func::ConcatWs => {
            let Some(sep) = to_text(&args[0]) else {
                return Ok(Value::Null);
            };
            let parts: Vec<String> = args[1..].iter().filter_map(|v| to_text(v)).collect();
            Ok(parts.join(&sep).into())
        }
        // Evaluated lazily by the evaluator; here only for completeness.
        Func::Coalesce => Ok(args
            .iter()
            .find(|v| !v.is_null())
            .map_or(Value::Null, |v| v.as_ref().clone())),
        Func::Nullif => {
            let (x, y) = (args[0].as_ref(), args[1].as_ref());
            match sql_eq("NULLIF", x, y)? {
                Some(true) => Ok(Value::Null),
                _ => Ok(x.clone()),
            }
        }
        Func::Greatest | Func::Least => extreme(fname, args, f == Func::Greatest),
        Func::Abs => match a.num(0)? {
            Num::Int(i) => i
                .checked_abs()
                .map(Value::from)
                .ok_or_else(|| format!("integer overflow in abs({i})")),
            Num::Float(x) => float_value(x.abs(), fname),
        },
        Func::Round => {
            let digits = if args.len() > 1 { a.int(1)? } else { 0 };
            round(a.num(0)?, digits, fname)
        }
        Func::Floor | Func::Ceil => match a.num(0)? {
            Num::Int(i) => Ok(i.into()),
            Num::Float(x) => float_value(
                if f == Func::Floor {
                    x.floor()
                } else {
                    x.ceil()
                },
                fname,
            ),
        },
        Func::Sqrt => {
            let x = a.num(0)?.as_f64();
            if x < 0.0 {
                return Err("sqrt of a negative number".into());
            }
            float_value(x.sqrt(), fname)
        }
        Func::Power => power(a.num(0)?, a.num(1)?, fname),
        Func::Exp => float_value(a.num(0)?.as_f64().exp(), fname),
        Func::Ln => float_value(log_arg(a.num(0)?.as_f64())?.ln(), fname),
        Func::Log10 => float_value(log_arg(a.num(0)?.as_f64())?.log10(), fname),
        Func::Log if args.len() == 1 => float_value(log_arg(a.num(0)?.as_f64())?.log10(), fname),
        Func::Log => {
            let base = log_arg(a.num(0)?.as_f64())?;
            let x = log_arg(a.num(1)?.as_f64())?;
            if base == 1.0 {
                return Err("division by zero (logarithm base 1)".into());
            }
            float_value(x.ln() / base.ln(), fname)
        }
        Func::Sign => match a.num(0)? {
            Num::Int(i) => Ok(i.signum().into()),
            Num::Float(x) => float_value(if x == 0.0 { 0.0 } else { x.signum() }, fname),
        },
        Func::Replace => {
            let (s, from, to) = (a.str(0)?, a.str(1)?, a.str(2)?);
            // str::replace with an empty needle would insert `to` between every character.
            Ok(if from.is_empty() {
                s.to_string()
            } else {
                s.replace(from, to)
            }
            .into())
        }
        Func::SplitPart => split_part(a.str(0)?, a.str(1)?, a.int(2)?),
        Func::StartsWith => Ok(a.str(0)?.starts_with(a.str(1)?).into()),
        Func::EndsWith => Ok(a.str(0)?.ends_with(a.str(1)?).into()),
        Func::Strpos => {
            let (s, sub) = (a.str(0)?, a.str(1)?);
            Ok(s.find(sub).map_or(0, |at| count_chars(&s[..at]) + 1).into())
        }
        Func::Reverse => Ok(a.str(0)?.chars().rev().collect::<String>().into()),
        Func::Lpad | Func::Rpad => {
            let fill = if args.len() > 2 { a.str(2)? } else { " " };
            pad(a.str(0)?, a.int(1)?, fill, f == Func::Lpad).map(Value::from)
        }
        Func::Left | Func::Right => {
            let (s, n) = (a.str(0)?, a.int(1)?);
            let total = count_chars(s);
            // Negative n counts from the other end, as in PostgreSQL.
            let keep = if n >= 0 {
                n.min(total)
            } else {
                (total + n).max(0)
            };
            let keep = to_usize(keep);
            Ok(if f == Func::Left {
                s.chars().take(keep).collect::<String>()
            } else {
                s.chars().skip(to_usize(total) - keep).collect::<String>()
            }
            .into())
        }
        Func::Repeat => {
            let (s, n) = (a.str(0)?, a.int(1)?);
            let n = to_usize(n.max(0));
            if n.saturating_mul(s.chars().count()) > MAX_RESULT_CHARS {
                return Err(format!("{fname}: result would be too large"));
            }
            Ok(s.repeat(n).into())
        }
        Func::RegexpLike => {
            let re = match compiled {
                Some(re) => Cow::Borrowed(re),
                None => {
                    let flags = if args.len() > 2 { a.str(2)? } else { "" };
                    Cow::Owned(build_regex(fname, a.str(1)?, flags, false)?)
                }
            };
            Ok(re.regex.is_match(a.str(0)?).into())
        }
        Func::RegexpReplace => {
            let re = match compiled {
                Some(re) => Cow::Borrowed(re),
                None => {
                    let flags = if args.len() > 3 { a.str(3)? } else { "" };
                    Cow::Owned(build_regex(fname, a.str(1)?, flags, true)?)
                }
            };
            let replacement = rust_replacement(a.str(2)?);
            let s = a.str(0)?;
            let limit = if re.global { 0 } else { 1 };
            Ok(re
                .regex
                .replacen(s, limit, replacement.as_str())
                .into_owned()
                .into())
        }
        Func::Cardinality | Func::ArrayLength => {
            let items = a.array(0)?;
            if args.len() > 1 && a.int(1)? != 1 {
                // Only the outer dimension of a JSON array is well defined.
                return Ok(Value::Null);
            }
            Ok(Value::from(items.len()))
        }
        Func::ArrayContains => {
            let items = a.array(0)?;
            Ok(items.iter().any(|v| json_eq(v, &args[1])).into())
        }
    }
}

/// Typed access to arguments with messages naming the function and position.
struct Args<'a, 'v> {
    fname: &'a str,
    args: &'a [Cow<'v, Value>],
}

impl<'a, 'v> Args<'a, 'v> {
    fn wrong(&self, i: usize, expected: &str) -> String {
        format!(
            "{} expects {expected} as argument {}, found {}",
            self.fname,
            i + 1,
            describe(&self.args[i])
        )
    }

    fn str(&self, i: usize) -> Res<&'a str> {
        match self.args[i].as_ref() {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong(i, "a string")),
        }
    }

    fn num(&self, i: usize) -> Res<Num> {
        as_num(&self.args[i]).ok_or_else(|| self.wrong(i, "a number"))
    }

    fn int(&self, i: usize) -> Res<i64> {
        match as_num(&self.args[i]) {
            Some(Num::Int(n)) => Ok(n),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    fn array(&self, i: usize) -> Res<&'a Vec<Value>> {
        match self.args[i].as_ref() {
            Value::Array(items) => Ok(items),
            _ => Err(self.wrong(i, "an array")),
        }
    }
}

fn count_chars(s: &str) -> i64 {
    i64::try_from(s.chars().count()).unwrap_or(i64::MAX)
}

/// Clamps a non-negative count into usize; negative inputs become 0.
fn to_usize(n: i64) -> usize {
    usize::try_from(n.max(0)).unwrap_or(usize::MAX)
}

/// PostgreSQL `substring(s, start, len)`: positions before 1 still consume length.
fn substr(s: &str, start: i64, len: Option<i64>) -> Res<String> {
    let end = match len {
        Some(l) if l < 0 => return Err("negative substring length not allowed".into()),
        Some(l) => start.saturating_add(l),
        None => i64::MAX,
    };
    let from = start.max(1);
    if end <= from {
        return Ok(String::new());
    }
    Ok(s.chars()
        .skip(to_usize(from - 1))
        .take(to_usize(end - from))
        .collect())
}

fn split_part(s: &str, delim: &str, n: i64) -> Res<Value> {
    if n == 0 {
        return Err("split_part field position must not be zero".into());
    }
    let parts: Vec<&str> = if delim.is_empty() {
        vec![s]
    } else {
        s.split(delim).collect()
    };
    let index = if n > 0 {
        usize::try_from(n - 1).ok()
    } else {
        parts
            .len()
            .checked_sub(usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX))
    };
    Ok(index
        .and_then(|i| parts.get(i))
        .copied()
        .unwrap_or("")
        .into())
}

fn pad(s: &str, len: i64, fill: &str, left: bool) -> Res<String> {
    let len = to_usize(len);
    if len > MAX_RESULT_CHARS {
        return Err(format!(
            "{}: result would be too large",
            if left { "lpad" } else { "rpad" }
        ));
    }
    let have = s.chars().count();
    if len <= have {
        return Ok(s.chars().take(len).collect());
    }
    if fill.is_empty() {
        return Ok(s.to_string());
    }
    let padding: String = fill.chars().cycle().take(len - have).collect();
    Ok(if left {
        padding + s
    } else {
        s.to_string() + &padding
    })
}

/// GREATEST/LEAST skip NULLs; all-NULL gives NULL.
fn extreme(fname: &str, args: &[Cow<'_, Value>], greatest: bool) -> Res<Value> {
    let wanted = if greatest {
        Ordering::Greater
    } else {
        Ordering::Less
    };
    let op = fname.to_uppercase();
    let mut best: Option<&Value> = None;
    for v in args.iter().map(|v| v.as_ref()).filter(|v| !v.is_null()) {
        best = match best {
            Some(b) if sql_cmp(&op, v, b)? != Some(wanted) => Some(b),
            _ => Some(v),
        };
    }
    Ok(best.cloned().unwrap_or(Value::Null))
}

/// Rounds half away from zero; integers stay integers (negative digits
/// round to tens, hundreds...).
fn round(x: Num, digits: i64, fname: &str) -> Res<Value> {
    match x {
        Num::Int(i) if digits >= 0 => Ok(i.into()),
        Num::Int(i) => {
            // i128 holds every power of ten an i64 can be rounded to, and one more.
            let Some(unit) = u32::try_from(-digits)
                .ok()
                .and_then(|d| 10i128.checked_pow(d))
            else {
                return Ok(0.into());
            };
            let wide = i128::from(i);
            let (q, r) = (wide / unit, wide % unit);
            let q = if r.abs() * 2 >= unit {
                q + wide.signum()
            } else {
                q
            };
            i64::try_from(q * unit)
                .map(Value::from)
                .map_err(|_| format!("integer overflow in {fname}({i}, {digits})"))
        }
        Num::Float(f) => {
            let scale = 10f64.powi(i32::try_from(digits.clamp(-400, 400)).unwrap_or(0));
            let scaled = f * scale;
            if !scaled.is_finite() || scale == 0.0 {
                // More digits than f64 holds: already as rounded as it can be.
                return float_value(if scale == 0.0 { 0.0 } else { f }, fname);
            }
            float_value(scaled.round() / scale, fname)
        }
    }
}

fn power(base: Num, exp: Num, fname: &str) -> Res<Value> {
    if let (Num::Int(b), Num::Int(e)) = (base, exp)
        && e >= 0
    {
        return u32::try_from(e)
            .ok()
            .and_then(|e| b.checked_pow(e))
            .map(Value::from)
            .ok_or_else(|| format!("integer overflow in {fname}({b}, {e})"));
    }
    let (b, e) = (base.as_f64(), exp.as_f64());
    if b == 0.0 && e < 0.0 {
        return Err("zero raised to a negative power is undefined".into());
    }
    float_value(b.powf(e), fname)
}

fn log_arg(x: f64) -> Res<f64> {
    if x == 0.0 {
        Err("cannot take logarithm of zero".into())
    } else if x < 0.0 {
        Err("cannot take logarithm of a negative number".into())
    } else {
        Ok(x)
    }
}

/// Translates a PostgreSQL replacement (`\1`, `\&`, `\\`) into the regex
/// crate's syntax, where `$` is special and must be doubled.
fn rust_replacement(pg: &str) -> String {
    let mut out = String::with_capacity(pg.len());
    let mut chars = pg.chars();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d @ '0'..='9') => {
                    out.push_str("${");
                    out.push(d);
                    out.push('}');
                }
                Some('&') => out.push_str("${0}"),
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substr_follows_postgres_positions() {
        assert_eq!(substr("hello", 0, Some(3)), Ok("he".to_string()));
        assert_eq!(substr("hello", 2, None), Ok("ello".to_string()));
        assert_eq!(substr("hello", -5, Some(3)), Ok(String::new()));
        assert_eq!(substr("héllo", 2, Some(2)), Ok("él".to_string()));
        assert!(substr("hello", 1, Some(-1)).is_err());
    }

    #[test]
    fn replacement_translation() {
        assert_eq!(rust_replacement(r"<\1>"), "<${1}>");
        assert_eq!(rust_replacement(r"$\&\\"), "$$${0}\\");
    }

    #[test]
    fn arity_wording() {
        assert_eq!(arity_text(1, 1), "1 argument");
        assert_eq!(arity_text(2, 3), "2 or 3 arguments");
        assert_eq!(arity_text(1, usize::MAX), "at least 1 argument");
    }

    #[test]
    fn table_is_sorted_and_unique() {
        let names: Vec<&str> = TABLE.iter().map(|(n, ..)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
