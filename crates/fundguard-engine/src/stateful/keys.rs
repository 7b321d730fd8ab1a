//! Entity keys: normalised so the same entity matches across systems, and named for findings.

use fundguard_core::Value;
use fundguard_rules::{Expr, KeyType};

/// How a key value becomes the string state is indexed by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyNorm(pub KeyType);

impl KeyNorm {
    /// The normalised key, or `None` for a NULL key (such rows cannot be matched).
    pub(crate) fn key(self, v: &Value) -> Option<String> {
        match (self.0, v) {
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

    /// The key as a finding shows it: an integer when the key type is integer.
    pub(crate) fn shown(self, key: &str) -> Value {
        match self.0 {
            KeyType::Integer => key.parse::<i64>().map_or_else(|_| Value::String(key.to_string()), Value::Int),
            KeyType::Text => Value::String(key.to_string()),
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
}
