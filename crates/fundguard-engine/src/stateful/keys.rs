//! Entity keys: normalised so the same entity matches across systems, and named for findings.
//!
//! A key's identity is its normalised *text*: `42`, `" 42"` and `42.00` are one order under
//! an integer key, and the integer 42 and the text `"42"` are one entity under a text key. State
//! is indexed by [`StateKey`], which holds the same identity without the text where it can:
//! a text that is exactly how an `i64` prints is kept as that integer. The mapping from text
//! to key is one-to-one, so keys are equal exactly when their texts are — and an integer key,
//! the common case (order ids), is hashed and compared as one machine word, with nothing
//! formatted or allocated per record.

use std::fmt;
use std::sync::Arc;

use fundguard_core::Value;
use fundguard_rules::{Expr, KeyType};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The key a stateful rule's state is indexed by: a key text that is the canonical form of
/// an `i64` as that integer, any other text as itself. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum StateKey {
    Int(i64),
    Text(Arc<str>),
}

impl StateKey {
    /// The key of a key text.
    pub(crate) fn from_text(text: &str) -> StateKey {
        match canonical_int(text) {
            Some(i) => StateKey::Int(i),
            None => StateKey::Text(Arc::from(text)),
        }
    }

    /// The length of the key's text, for state size estimates (an integer is not formatted).
    pub(crate) fn text_len(&self) -> usize {
        match self {
            StateKey::Int(i) => {
                let digits = i.unsigned_abs().checked_ilog10().map_or(1, |d| d as usize + 1);
                digits + usize::from(*i < 0)
            }
            StateKey::Text(t) => t.len(),
        }
    }
}

/// The key's text: what it was normalised to.
impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateKey::Int(i) => write!(f, "{i}"),
            StateKey::Text(t) => f.write_str(t),
        }
    }
}

/// `text` as an integer when it is exactly how that integer prints: no sign but a leading
/// `-`, no leading zeros, no `-0`, no spaces. Any other text that parses (`+7`, `007`)
/// stays text, so no two texts share a key.
fn canonical_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let first = *digits.as_bytes().first()?;
    if !first.is_ascii_digit() || (first == b'0' && (digits.len() > 1 || digits.len() < text.len())) {
        return None;
    }
    text.parse().ok()
}

/// Checkpoints hold an integer key as an integer and a text key as text.
impl Serialize for StateKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StateKey::Int(i) => serializer.serialize_i64(*i),
            StateKey::Text(t) => serializer.serialize_str(t),
        }
    }
}

/// Reads either form; checkpoints written before keys were typed hold every key as text,
/// which [`StateKey::from_text`] maps to the key the same record makes today.
impl<'de> Deserialize<'de> for StateKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = StateKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a state key: an integer or a text")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StateKey, E> {
                Ok(StateKey::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StateKey, E> {
                Ok(i64::try_from(v).map_or_else(|_| StateKey::Text(Arc::from(v.to_string())), StateKey::Int))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StateKey, E> {
                Ok(StateKey::from_text(v))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// How a key value becomes the key state is indexed by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyNorm(pub KeyType);

impl KeyNorm {
    /// The normalised key, or `None` for a NULL key (such rows cannot be matched).
    pub(crate) fn key(self, v: &Value) -> Option<StateKey> {
        Some(match (self.0, v) {
            (_, Value::Null) => return None,
            (_, Value::Int(i)) => StateKey::Int(*i),
            (KeyType::Integer, Value::String(s)) => {
                let t = s.trim();
                t.parse::<i64>().map_or_else(|_| StateKey::Text(Arc::from(t)), StateKey::Int)
            }
            (KeyType::Integer, Value::Decimal(d)) if d.fract().is_zero() => match i64::try_from(d.trunc()) {
                Ok(i) => StateKey::Int(i),
                Err(_) => StateKey::from_text(&d.trunc().normalize().to_string()),
            },
            (_, Value::String(s)) => StateKey::from_text(s),
            (_, other) => StateKey::from_text(&other.to_string()),
        })
    }

    /// The key as a finding shows it: an integer when the key type is integer.
    pub(crate) fn shown(self, key: &StateKey) -> Value {
        match (self.0, key) {
            (KeyType::Integer, StateKey::Int(i)) => Value::Int(*i),
            (KeyType::Integer, StateKey::Text(t)) => {
                t.parse::<i64>().map_or_else(|_| Value::String(t.to_string()), Value::Int)
            }
            (KeyType::Text, key) => Value::String(key.to_string()),
        }
    }
}

/// The name a key gets in findings: the column for `after.x` / `before.x`, else `key`.
pub(crate) fn key_name(expr: &Expr) -> String {
    let sql = expr.sql.trim();
    for prefix in ["after.", "before."] {
        if let Some(col) = sql.strip_prefix(prefix)
            && !col.is_empty()
            && col.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return col.to_lowercase();
        }
    }
    if sql.starts_with("coalesce(after.id") {
        return "id".into();
    }
    "key".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integer_keys_match_across_types() {
        let n = KeyNorm(KeyType::Integer);
        assert_eq!(n.key(&Value::Int(42)), n.key(&Value::String(" 42".into())));
        assert_eq!(n.key(&Value::Int(42)), n.key(&Value::Decimal("42.00".parse().unwrap())));
        assert_eq!(n.key(&Value::Null), None);
        let t = KeyNorm(KeyType::Text);
        assert_ne!(t.key(&Value::Int(42)), t.key(&Value::String("042".into())));
        assert_eq!(t.key(&Value::Int(42)), t.key(&Value::String("42".into())));
    }

    /// The normalisation keys had when they were texts: what [`KeyNorm::key`] must agree with.
    fn text_key(norm: KeyType, v: &Value) -> Option<String> {
        match (norm, v) {
            (_, Value::Null) => None,
            (KeyType::Integer, Value::String(s)) => {
                let t = s.trim();
                Some(t.parse::<i64>().map(|i| i.to_string()).unwrap_or_else(|_| t.to_string()))
            }
            (KeyType::Integer, Value::Decimal(d)) if d.fract().is_zero() => Some(d.trunc().normalize().to_string()),
            (_, Value::String(s)) => Some(s.clone()),
            (_, other) => Some(other.to_string()),
        }
    }

    fn any_key_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Int),
            (-1000i64..1000).prop_map(Value::Int),
            "[ +-]?0*[0-9]{0,20}[ ]?".prop_map(Value::String),
            "[a-z0-9-]{0,6}".prop_map(Value::String),
            (any::<i64>(), 0u32..6).prop_map(|(m, s)| Value::Decimal(fundguard_core::Decimal::new(m, s))),
            any::<i128>()
                .prop_map(|m| Value::Decimal(fundguard_core::Decimal::from_i128_with_scale(m % 10i128.pow(28), 0))),
            any::<bool>().prop_map(Value::Bool),
        ]
    }

    fn any_norm() -> impl Strategy<Value = KeyType> {
        prop_oneof![Just(KeyType::Integer), Just(KeyType::Text)]
    }

    proptest! {
        /// Two values share a key exactly when their normalised texts are equal, the key's
        /// text is that text, and a checkpoint's text form reads back to the same key.
        #[test]
        fn keys_are_equal_exactly_when_their_texts_are(norm in any_norm(), a in any_key_value(), b in any_key_value()) {
            let (ka, kb) = (KeyNorm(norm).key(&a), KeyNorm(norm).key(&b));
            let (ta, tb) = (text_key(norm, &a), text_key(norm, &b));
            prop_assert_eq!(ka == kb, ta == tb);
            prop_assert_eq!(ka.as_ref().map(ToString::to_string), ta.clone());
            if let (Some(k), Some(t)) = (ka, ta) {
                prop_assert_eq!(k.text_len(), t.len());
                prop_assert_eq!(&StateKey::from_text(&t), &k);
                let bytes = rmp_serde::to_vec(&k).unwrap();
                prop_assert_eq!(rmp_serde::from_slice::<StateKey>(&bytes).unwrap(), k.clone());
                let old = rmp_serde::to_vec(&t).unwrap();
                prop_assert_eq!(rmp_serde::from_slice::<StateKey>(&old).unwrap(), k);
            }
        }

        #[test]
        fn canonical_ints_are_exactly_the_printed_ones(text in "[ +-]?0*[0-9]{0,20}") {
            let printed = text.parse::<i64>().ok().filter(|i| i.to_string() == text);
            prop_assert_eq!(canonical_int(&text), printed);
        }
    }
}
