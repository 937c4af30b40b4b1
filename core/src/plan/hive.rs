//! Hive-partitioned inputs: `key=value` folders read as columns. Pure functions over the
//! listed paths; no I/O.

use datafusion::arrow::compute::kernels::cast_utils::Parser;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field};
use datafusion::common::ScalarValue;

use crate::error::{Error, Result};
use kask_api::Partitioning;

/// The folder value that Hive, Spark and pyarrow write for a null key.
pub const NULL_VALUE: &str = "__HIVE_DEFAULT_PARTITION__";

/// An input's folder keys: the columns and, per file in listing order, their values.
#[derive(Clone, Debug, PartialEq)]
pub struct HiveKeys {
    /// One field per key, in folder order, typed from the values.
    pub columns: Vec<Field>,
    /// Per file, one value per key (`None`: null).
    pub values: Vec<Vec<Option<String>>>,
}

/// The `key=value` folders of a path, outermost first, values percent-decoded.
pub fn folder_keys(path: &str) -> Vec<(String, Option<String>)> {
    let mut folders: Vec<&str> = path.split('/').collect();
    folders.pop();
    folders
        .into_iter()
        .filter_map(|folder| {
            let (key, value) = folder.split_once('=')?;
            if key.is_empty() || key.contains(['%', ' ']) {
                return None;
            }
            let value = decode(value);
            let value = (!value.is_empty() && value != NULL_VALUE).then_some(value);
            Some((key.to_string(), value))
        })
        .collect()
}

/// `%XX` escapes decoded, as Spark and pyarrow write `/`, `=`, `%` and others in values; a
/// malformed escape is kept as written.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_string())
}

/// The folder keys of input `name`'s files (`paths`, in listing order), or `None` when its
/// folders are plain paths: by `mode`, else detected when every file has the same non-empty
/// keys. Files whose keys differ are refused, naming two of them, since the columns they
/// would give are ambiguous.
pub fn detect(name: &str, paths: &[&str], mode: Option<Partitioning>) -> Result<Option<HiveKeys>> {
    if mode == Some(Partitioning::None) || paths.is_empty() {
        return Ok(None);
    }
    let keyed: Vec<Vec<(String, Option<String>)>> = paths.iter().map(|p| folder_keys(p)).collect();
    let names = |k: &[(String, Option<String>)]| k.iter().map(|(n, _)| n.clone()).collect();
    let first: Vec<String> = names(&keyed[0]);
    if let Some(i) = keyed.iter().position(|k| names(k) != first) {
        // Auto-detected, plain files beside keyed ones are a plain input with a stray
        // `a=b` folder, not partitioning.
        if mode.is_none() && keyed.iter().any(Vec::is_empty) {
            return Ok(None);
        }
        let keys_of_i: Vec<String> = names(&keyed[i]);
        return Err(Error::input(
            name,
            format!(
                "{} lies below the folder keys {first:?} but {} below {keys_of_i:?}; a \
                 Hive-partitioned input needs the same keys in every path (set \
                 `partitioning: none` to read the folders as plain paths)",
                paths[0], paths[i],
            ),
        ));
    }
    if first.is_empty() {
        return match mode {
            Some(Partitioning::Hive) => Err(Error::input(
                name,
                format!(
                    "`partitioning: hive`, but {} lies below no `key=value` folder",
                    paths[0]
                ),
            )),
            _ => Ok(None),
        };
    }
    if let Some(dup) = first
        .iter()
        .enumerate()
        .find_map(|(i, k)| first[..i].contains(k).then_some(k))
    {
        return Err(Error::input(
            name,
            format!("{} names the folder key {dup:?} twice", paths[0]),
        ));
    }
    let values: Vec<Vec<Option<String>>> = keyed
        .into_iter()
        .map(|k| k.into_iter().map(|(_, v)| v).collect())
        .collect();
    let columns = first
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let column: Vec<Option<&str>> = values.iter().map(|v| v[i].as_deref()).collect();
            let nullable = column.iter().any(Option::is_none);
            Field::new(key, value_type(&column), nullable)
        })
        .collect();
    Ok(Some(HiveKeys { columns, values }))
}

/// The outermost key typed from `seen` as well: every value of its folders, when they were
/// listed (some without the files that `keys` came from); nothing when `seen` is empty.
pub fn retype_outermost(keys: &mut HiveKeys, seen: &[Option<String>]) {
    let Some(first) = keys.columns.first_mut() else {
        return;
    };
    if seen.is_empty() {
        return;
    }
    let mut values: Vec<Option<&str>> = seen.iter().map(Option::as_deref).collect();
    values.extend(keys.values.iter().map(|v| v[0].as_deref()));
    let nullable = values.iter().any(Option::is_none);
    *first = Field::new(first.name(), value_type(&values), nullable);
}

/// The type of a key from its values: Int64 when every value is an integer, Date32 when every
/// value is a `YYYY-MM-DD` date, else a string (as DuckDB and Polars infer; pyarrow gives
/// int32 for integers, and strings for dates).
pub fn value_type(values: &[Option<&str>]) -> DataType {
    let present = || values.iter().flatten();
    if present().next().is_none() {
        return DataType::Utf8View;
    }
    if present().all(|v| v.parse::<i64>().is_ok()) {
        DataType::Int64
    } else if present().all(|v| is_date(v)) {
        DataType::Date32
    } else {
        DataType::Utf8View
    }
}

fn is_date(v: &str) -> bool {
    v.len() == 10
        && v.as_bytes()[4] == b'-'
        && v.as_bytes()[7] == b'-'
        && Date32Type::parse(v).is_some()
}

/// A key's value as a scalar of the key's type; a value that does not parse as that type is
/// our fault (the type came from the values).
pub fn scalar(value: Option<&str>, dt: &DataType) -> Result<ScalarValue> {
    let Some(v) = value else {
        return ScalarValue::try_from(dt)
            .map_err(|e| Error::internal(format!("a null of type {dt}: {e}")));
    };
    let wrong = || Error::internal(format!("folder value {v:?} is not a {dt}"));
    Ok(match dt {
        DataType::Int64 => ScalarValue::Int64(Some(v.parse().map_err(|_| wrong())?)),
        DataType::Date32 => ScalarValue::Date32(Some(Date32Type::parse(v).ok_or_else(wrong)?)),
        _ => ScalarValue::Utf8View(Some(v.to_string())),
    })
}
