//! JSON building blocks shared by the decoders: exact values from raw JSON text,
//! borrowed row objects and interned column names.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use fundguard_core::Value;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::DecodeError;

/// Shares one `Arc<str>` per distinct column or table name across all rows of a stream.
///
/// Rows of a table repeat the same columns in the same order, so the name at each
/// position of the previous row is tried first: a string comparison instead of a hash lookup.
#[derive(Default)]
pub struct Interner {
    names: HashMap<Box<str>, Arc<str>>,
    recent: Vec<Arc<str>>,
    last_table: Option<(String, String, Arc<str>)>,
}

impl Interner {
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.get(name) {
            return n.clone();
        }
        if self.names.len() > 100_000 {
            self.names.clear(); // a stream of unbounded distinct names must not grow memory
        }
        let n: Arc<str> = Arc::from(name);
        self.names.insert(name.into(), n.clone());
        n
    }

    /// Interns `namespace.table` without building the string when it was the last one seen.
    pub fn intern_table(&mut self, namespace: &str, table: &str) -> Arc<str> {
        if let Some((ns, t, name)) = &self.last_table
            && ns == namespace
            && t == table
        {
            return name.clone();
        }
        let name = self.intern(&format!("{namespace}.{table}"));
        self.last_table = Some((namespace.to_string(), table.to_string(), name.clone()));
        name
    }

    /// Interns the name of the `index`-th column of a row.
    pub fn intern_column(&mut self, index: usize, name: &str) -> Arc<str> {
        if let Some(n) = self.recent.get(index)
            && &**n == name
        {
            return n.clone();
        }
        let n = self.intern(name);
        if index < self.recent.len() {
            self.recent[index] = n.clone();
        } else if index == self.recent.len() && index < 1024 {
            self.recent.push(n.clone());
        }
        n
    }
}

/// A JSON object whose values stay raw text until we know how to read them.
/// Borrowed from the input line, so reading it allocates only the index vector.
pub(crate) struct RawRow<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawRow<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for RowVisitor<'a> {
            type Value = RawRow<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of column values")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(RawRow(entries))
            }
        }
        deserializer.deserialize_map(RowVisitor(std::marker::PhantomData))
    }
}

/// Reads a raw JSON value exactly: numbers keep their digits (integers or decimals,
/// never floats), objects and arrays become JSON text.
pub(crate) fn value_from_raw(raw: &RawValue) -> Result<Value, DecodeError> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => Ok(Value::String(string_from_raw(raw)?.into_owned())),
        Some(b't') => Ok(Value::Bool(true)),
        Some(b'f') => Ok(Value::Bool(false)),
        Some(b'n') => Ok(Value::Null),
        Some(b'{' | b'[') => Ok(Value::Json(text.to_owned())),
        Some(_) => Value::parse_number(text).ok_or_else(|| {
            DecodeError::invalid(format!(
                "number `{}` does not fit an exact decimal (at most 28 significant digits and 28 decimal places)",
                excerpt(text)
            ))
        }),
        None => Err(DecodeError::invalid("empty JSON value")),
    }
}

/// Input text as an error message shows it: whole when short, else its start and its length
/// (a dead letter keeps the whole message anyway).
pub(crate) fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    const SHOWN: usize = 40;
    if text.len() <= SHOWN {
        return text.into();
    }
    let end = (0..=SHOWN).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}… ({} bytes)", &text[..end], text.len()).into()
}

/// Reads a raw JSON string, unescaping only when it has escapes.
pub(crate) fn string_from_raw(raw: &RawValue) -> Result<Cow<'_, str>, DecodeError> {
    Ok(serde_json::from_str::<Cow<'_, str>>(raw.get())?)
}

/// Reads a raw JSON value that must be a string or null.
pub(crate) fn opt_string_from_raw(raw: &RawValue) -> Result<Option<Cow<'_, str>>, DecodeError> {
    if raw.get() == "null" {
        return Ok(None);
    }
    string_from_raw(raw).map(Some)
}

/// Writes a value as JSON for the encoders: decimals as bare JSON numbers with all their digits.
pub(crate) fn write_value(out: &mut String, value: &Value) {
    use std::fmt::Write;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Decimal(d) => {
            let _ = write!(out, "{d}");
        }
        Value::String(s) => write_str(out, s),
        Value::Timestamp(t) => write_str(out, &t.to_string()),
        Value::Json(j) => out.push_str(j),
    }
}

pub(crate) fn write_str(out: &mut String, s: &str) {
    // serde_json escapes correctly; writing into a String cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Value {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        value_from_raw(&raw).unwrap()
    }

    #[test]
    fn reads_values_exactly() {
        assert_eq!(read("12"), Value::Int(12));
        assert_eq!(read("12.30"), Value::Decimal("12.30".parse().unwrap()));
        assert_eq!(read("\"a\\nb\""), Value::String("a\nb".into()));
        assert_eq!(read("{\"a\": 1}"), Value::Json("{\"a\": 1}".into()));
        assert_eq!(read("null"), Value::Null);
    }

    #[test]
    fn long_input_is_shown_shortened() {
        assert_eq!(excerpt("12"), "12");
        let long = "9".repeat(100);
        assert_eq!(excerpt(&long), format!("{}… (100 bytes)", "9".repeat(40)));
        assert_eq!(excerpt(&"é".repeat(30)), format!("{}… (60 bytes)", "é".repeat(20)));
    }
}
