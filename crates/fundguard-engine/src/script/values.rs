//! Values between fundguard and a script: row values and JSON documents in, exactly (integers,
//! decimals, never floats); money amounts out; and the plain-data form a script's `state` is
//! kept and checkpointed in.

use fundguard_core::{Decimal, Row, Value};
use rhai::{Array, Blob, Dynamic, ImmutableString, Map};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Deeper JSON than this reaches a script as its text (serde_json refuses deeper input anyway).
const MAX_JSON_DEPTH: usize = 128;

/// A row value as a script sees it: NULL is `()`, timestamps are microseconds since the
/// epoch (an integer), a JSON document is arrays and maps.
pub(crate) fn dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Int(i) => Dynamic::from_int(*i),
        Value::Decimal(d) => Dynamic::from_decimal(*d),
        Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Timestamp(t) => Dynamic::from_int(t.as_micros()),
        Value::Json(text) => json(text, 0).unwrap_or_else(|| Dynamic::from(ImmutableString::from(text.as_str()))),
    }
}

/// The columns of a row image a script names, in the order a script map keeps its keys.
pub(crate) struct NamedColumns {
    /// By name, the order the map keeps its keys in; each with where it was in the last
    /// row (rows of a table share a layout, so the next row finds it at once).
    columns: Vec<(String, usize)>,
}

impl NamedColumns {
    pub(crate) fn new(names: impl IntoIterator<Item = String>) -> NamedColumns {
        let mut columns: Vec<(String, usize)> = names.into_iter().map(|n| (n, 0)).collect();
        columns.sort();
        columns.dedup_by(|a, b| a.0 == b.0);
        NamedColumns { columns }
    }

    /// A map with every named column, each `()` until [`fill_row`] gives it its value.
    pub(crate) fn empty_map(&self) -> Map {
        self.columns.iter().map(|(name, _)| (name.as_str().into(), Dynamic::UNIT)).collect()
    }
}

/// Makes `map` the row's map, reusing what it holds: with named columns, `map` came from
/// [`NamedColumns::empty_map`] and each value is overwritten in place (a decimal without a new
/// box, a text equal to the last one kept), so a row costs no allocation and the keys are
/// never compared; without, the map is every column of the row, made anew. Every value is
/// read-only, like the row it is bound as.
pub(crate) fn fill_row(map: &mut Map, row: &Row, columns: Option<&mut NamedColumns>) {
    let Some(named) = columns else {
        *map = row.iter().map(|(name, value)| (name.into(), dynamic(value).into_read_only())).collect();
        return;
    };
    debug_assert_eq!(map.len(), named.columns.len(), "the map is the one `empty_map` made");
    // Both in name order (`Map` is a `BTreeMap`); a column the row lacks is `()`, like a NULL.
    for (slot, (name, hint)) in map.values_mut().zip(named.columns.iter_mut()) {
        overwrite(slot, row.get_hinted(name, hint));
    }
}

/// Sets `slot` to `value` in place where the types allow, else to a new read-only value.
fn overwrite(slot: &mut Dynamic, value: Option<&Value>) {
    match value {
        Some(Value::Int(i)) => {
            if let Some(mut int) = slot.write_lock::<rhai::INT>() {
                *int = *i;
                return;
            }
        }
        Some(Value::Timestamp(t)) => {
            if let Some(mut int) = slot.write_lock::<rhai::INT>() {
                *int = t.as_micros();
                return;
            }
        }
        Some(Value::Decimal(d)) => {
            if let Some(mut decimal) = slot.write_lock::<Decimal>() {
                *decimal = *d;
                return;
            }
        }
        Some(Value::String(s)) if slot.read_lock::<ImmutableString>().is_some_and(|last| last.as_str() == s) => {
            return;
        }
        None | Some(Value::Null) if slot.is_unit() => return,
        _ => {}
    }
    *slot = value.map_or(Dynamic::UNIT, dynamic).into_read_only();
}

/// A JSON document, numbers read from their text: integers, or exact decimals.
fn json(text: &str, depth: usize) -> Option<Dynamic> {
    if depth > MAX_JSON_DEPTH {
        return None;
    }
    let text = text.trim();
    Some(match text.as_bytes().first()? {
        b'{' => {
            let fields: std::collections::BTreeMap<String, Box<RawValue>> = serde_json::from_str(text).ok()?;
            let mut map = Map::new();
            for (name, raw) in fields {
                map.insert(name.into(), json(raw.get(), depth + 1)?);
            }
            Dynamic::from_map(map)
        }
        b'[' => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text).ok()?;
            let array: Option<Array> = items.iter().map(|raw| json(raw.get(), depth + 1)).collect();
            Dynamic::from_array(array?)
        }
        b'"' => Dynamic::from(ImmutableString::from(serde_json::from_str::<String>(text).ok()?)),
        b't' | b'f' => Dynamic::from_bool(serde_json::from_str::<bool>(text).ok()?),
        b'n' if text == "null" => Dynamic::UNIT,
        _ => match Value::parse_number(text)? {
            Value::Int(i) => Dynamic::from_int(i),
            Value::Decimal(d) => Dynamic::from_decimal(d),
            _ => return None,
        },
    })
}

/// An integer or a decimal from a script (a money amount); `None` for anything else.
pub(crate) fn number(value: &Dynamic) -> Option<Value> {
    if let Ok(i) = value.as_int() {
        return Some(Value::Int(i));
    }
    value.as_decimal().ok().map(Value::Decimal)
}

/// The plain-data form of what a script keeps in `state`: what checkpoints hold, exactly
/// (decimals as their 16 bytes, like row values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Data {
    Unit,
    Bool(bool),
    Int(i64),
    Decimal([u8; 16]),
    Char(char),
    Str(String),
    Blob(Vec<u8>),
    Array(Vec<Data>),
    Map(Vec<(String, Data)>),
}

impl Data {
    /// Reads a script value; functions and other non-data values cannot be kept.
    pub(crate) fn of(value: &Dynamic) -> Result<Data, String> {
        let value = value.flatten_clone();
        if value.is_unit() {
            return Ok(Data::Unit);
        }
        if let Ok(b) = value.as_bool() {
            return Ok(Data::Bool(b));
        }
        if let Ok(i) = value.as_int() {
            return Ok(Data::Int(i));
        }
        if let Ok(d) = value.as_decimal() {
            return Ok(Data::Decimal(d.serialize()));
        }
        if let Ok(c) = value.as_char() {
            return Ok(Data::Char(c));
        }
        if value.is_string() {
            return Ok(Data::Str(value.into_string().unwrap_or_default()));
        }
        if value.is_blob() {
            return Ok(Data::Blob(value.cast::<Blob>()));
        }
        if value.is_array() {
            return value.cast::<Array>().iter().map(Data::of).collect::<Result<_, _>>().map(Data::Array);
        }
        if value.is_map() {
            return Data::of_map(&value.cast::<Map>()).map(Data::Map);
        }
        Err(format!("`state` can keep numbers, text, booleans, arrays and maps, not a {}", value.type_name()))
    }

    pub(crate) fn of_map(map: &Map) -> Result<Vec<(String, Data)>, String> {
        map.iter().map(|(k, v)| Data::of(v).map(|d| (k.to_string(), d))).collect()
    }

    /// The script value again.
    pub(crate) fn dynamic(&self) -> Dynamic {
        match self {
            Data::Unit => Dynamic::UNIT,
            Data::Bool(b) => Dynamic::from_bool(*b),
            Data::Int(i) => Dynamic::from_int(*i),
            Data::Decimal(bytes) => Dynamic::from_decimal(Decimal::deserialize(*bytes)),
            Data::Char(c) => Dynamic::from_char(*c),
            Data::Str(s) => Dynamic::from(ImmutableString::from(s.as_str())),
            Data::Blob(b) => Dynamic::from_blob(b.clone()),
            Data::Array(items) => Dynamic::from_array(items.iter().map(Data::dynamic).collect()),
            Data::Map(fields) => Dynamic::from_map(map_of(fields)),
        }
    }

    /// An estimate of the bytes it holds.
    pub(crate) fn bytes(&self) -> usize {
        32 + match self {
            Data::Str(s) => s.len(),
            Data::Blob(b) => b.len(),
            Data::Array(items) => items.iter().map(Data::bytes).sum(),
            Data::Map(fields) => fields.iter().map(|(k, v)| k.len() + v.bytes()).sum(),
            _ => 0,
        }
    }
}

/// A map of plain data as a script map.
pub(crate) fn map_of(fields: &[(String, Data)]) -> Map {
    fields.iter().map(|(k, v)| (k.as_str().into(), v.dynamic())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_stay_exact_and_nesting_becomes_arrays_and_maps() {
        let d = dynamic(&Value::Json(
            r#"{"items": [{"price": 0.1, "qty": 3}, {"price": 12345678901234567.89, "qty": 1}], "ok": true, "n": null}"#
                .into(),
        ));
        let map = d.cast::<Map>();
        let items = map["items"].clone().cast::<Array>();
        let first = items[0].clone().cast::<Map>();
        assert_eq!(first["price"].as_decimal().unwrap(), "0.1".parse::<Decimal>().unwrap());
        assert_eq!(first["qty"].as_int().unwrap(), 3);
        let second = items[1].clone().cast::<Map>();
        assert_eq!(second["price"].as_decimal().unwrap(), "12345678901234567.89".parse::<Decimal>().unwrap());
        assert!(map["ok"].as_bool().unwrap());
        assert!(map["n"].is_unit());
        assert!(dynamic(&Value::Json("{not json".into())).is_string(), "bad JSON reaches the script as text");
    }

    #[test]
    fn state_data_reads_back_exactly() {
        let mut map = Map::new();
        map.insert("paid".into(), Dynamic::from_decimal("10.50".parse().unwrap()));
        map.insert("seen".into(), Dynamic::from_array(vec![Dynamic::from_int(1), "x".into()]));
        let data = Data::of(&Dynamic::from_map(map)).unwrap();
        let bytes = rmp_serde::to_vec_named(&data).unwrap();
        let back: Data = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, data);
        let again = back.dynamic().cast::<Map>();
        assert_eq!(again["paid"].as_decimal().unwrap().scale(), 2);
        let f = rhai::FnPtr::new("f").unwrap();
        assert!(Data::of(&Dynamic::from(f)).is_err());
    }
}
