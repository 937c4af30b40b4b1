//! The keyed states of `distinct` and `frequencies`: a value per record, by the record's
//! canonical JSON. Strings that JSON writes without escapes (nearly every word of a word count)
//! are kept in a map of their own, keyed by the string itself, so that the inner loop neither
//! builds their JSON text nor hashes the quotes. A key lives in exactly one of the two maps,
//! and [`Keys::into_map`] joins them under canonical JSON.

use std::collections::HashMap;
use std::fmt::Write as _;

use datafusion::arrow::array::{Int64Array, StringArray, StringBuilder};

use serde_json::Value;

use super::canonical;

/// A map with a hasher much faster than SipHash on short keys (foldhash, randomly seeded per
/// map): the keys are the job's own data, hashed within one task.
pub type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// Values by canonical JSON.
#[derive(Debug, Default)]
pub struct Keys<V> {
    /// Keys that are canonical JSON text.
    json: Map<V>,
    /// Strings that need no escaping, without their quotes.
    plain: Map<V>,
    /// About how many bytes the maps hold.
    held: usize,
}

/// What a map entry costs besides its key's bytes: the `String`, the value, the table's slot.
const ENTRY_BYTES: usize = 48;

/// Whether JSON writes `s` as `"s"`: the characters it escapes are all ASCII, and no byte of a
/// multi-byte UTF-8 character is ASCII, so a byte scan suffices.
fn is_plain(s: &str) -> bool {
    !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Updates `m[k]` with `f`, starting from the default; a key seen before costs no allocation.
/// Returns the bytes a new key added.
fn update<V: Default>(m: &mut Map<V>, k: &str, f: impl FnOnce(&mut V)) -> usize {
    match m.get_mut(k) {
        Some(v) => {
            f(v);
            0
        }
        None => {
            let mut v = V::default();
            f(&mut v);
            m.insert(k.to_owned(), v);
            k.len() + ENTRY_BYTES
        }
    }
}

impl<V: Default> Keys<V> {
    /// Updates the value of a string record.
    pub fn update_str(&mut self, s: &str, f: impl FnOnce(&mut V)) {
        self.held += if is_plain(s) {
            update(&mut self.plain, s, f)
        } else {
            update(&mut self.json, &canonical(&Value::String(s.to_owned())), f)
        };
    }

    /// Updates the value of a record.
    pub fn update_value(&mut self, v: &Value, f: impl FnOnce(&mut V)) {
        match v {
            Value::String(s) => self.update_str(s, f),
            other => self.held += update(&mut self.json, &canonical(other), f),
        }
    }

    /// Updates the value of a record given as canonical JSON text (a shuffle row's key).
    pub fn update_canonical(&mut self, k: &str, f: impl FnOnce(&mut V)) {
        self.held += match k.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) if is_plain(inner) => update(&mut self.plain, inner, f),
            _ => update(&mut self.json, k, f),
        };
    }

    /// About how many bytes the keys and their entries take.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Every key as canonical JSON and its value, as shuffle columns. Built straight from the
    /// two maps: joining them first ([`Keys::into_map`]) would copy every key into a new map
    /// while the old ones are still held, and a map task flushes its state exactly when memory
    /// is short.
    pub fn into_columns(self, mut value: impl FnMut(V) -> i64) -> (StringArray, Int64Array) {
        let n = self.json.len() + self.plain.len();
        let key_bytes = self.held.saturating_sub(n * ENTRY_BYTES) + 2 * self.plain.len();
        let mut keys = StringBuilder::with_capacity(n, key_bytes);
        let mut values = Vec::with_capacity(n);
        for (k, v) in self.json {
            keys.append_value(&k);
            values.push(value(v));
        }
        for (k, v) in self.plain {
            let _ = write!(keys, "\"{k}\"");
            keys.append_value("");
            values.push(value(v));
        }
        (keys.finish(), Int64Array::from(values))
    }

    /// Every key as canonical JSON, with its value.
    pub fn into_map(self) -> Map<V> {
        let mut m = self.json;
        m.reserve(self.plain.len());
        for (k, v) in self.plain {
            m.insert(format!("\"{k}\""), v);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;
    use crate::canonical;
    use serde_json::{Value, json};

    #[test]
    fn one_key_however_it_arrives() {
        let mut k: Keys<i64> = Keys::default();
        let words = ["a", "a\"b", "tab\there", "é€", ""];
        for w in words {
            k.update_str(w, |n| *n += 1);
            k.update_value(&Value::String(w.into()), |n| *n += 10);
            k.update_canonical(&canonical(&json!(w)), |n| *n += 100);
        }
        k.update_value(&json!({"b": 1, "a": [1, "x"]}), |n| *n += 1);
        k.update_canonical(&canonical(&json!({"a": [1, "x"], "b": 1})), |n| *n += 100);
        k.update_value(&json!(1), |n| *n += 1);
        let m = k.into_map();
        assert_eq!(m.len(), words.len() + 2);
        for w in words {
            assert_eq!(m.get(&canonical(&json!(w))), Some(&111), "{w:?}");
        }
        assert_eq!(m.get(r#"{"a":[1,"x"],"b":1}"#), Some(&101));
        assert_eq!(m.get("1"), Some(&1));
    }

    #[test]
    fn columns_hold_the_same_keys_and_values_as_the_map() {
        let mut k: Keys<i64> = Keys::default();
        for w in ["a", "b", "a", "q\"uote", "é"] {
            k.update_str(w, |n| *n += 1);
        }
        k.update_value(&json!([1, 2]), |n| *n += 5);
        let (keys, values) = k.into_columns(|n| n);
        let mut got: Vec<(String, i64)> = keys
            .iter()
            .zip(values.iter())
            .map(|(k, v)| (k.unwrap_or_default().to_string(), v.unwrap_or_default()))
            .collect();
        got.sort();
        let mut want = vec![
            (canonical(&json!("a")), 2),
            (canonical(&json!("b")), 1),
            (canonical(&json!("q\"uote")), 1),
            (canonical(&json!("é")), 1),
            ("[1,2]".to_string(), 5),
        ];
        want.sort();
        assert_eq!(got, want);
    }
}
