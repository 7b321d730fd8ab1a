//! `limits:` — how much memory rule state may hold and how large a message may be.

use serde::Deserialize;

use super::loader::Loader;

/// The memory budget of rule state unless `limits.state_memory` says otherwise.
const DEFAULT_STATE_MEMORY: u64 = 2 << 30;

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    /// Bytes of rule state all rules together may hold: `512MiB`, `2GiB`, or a number of bytes.
    #[serde(default)]
    state_memory: Option<serde_json::Value>,
    /// The largest message (file line, Kafka record, NATS message) decoded: longer ones are
    /// dead-lettered unread. `4MiB` by default.
    #[serde(default)]
    max_message_bytes: Option<serde_json::Value>,
}

/// Validated limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub state_memory: u64,
    pub max_message_bytes: usize,
}

impl LimitsFile {
    pub fn validate(&self, loader: &mut Loader) -> Limits {
        let mut size = |key: &str, value: Option<&serde_json::Value>, default: u64| {
            let Some(value) = value else { return default };
            parse_bytes(value).unwrap_or_else(|e| {
                loader.problem(loader.at(0, 0), format!("limits.{key}: {e}"));
                default
            })
        };
        let state_memory = size("state_memory", self.state_memory.as_ref(), DEFAULT_STATE_MEMORY);
        let default_message = fundguard_formats::MAX_MESSAGE_BYTES;
        let max_message = size("max_message_bytes", self.max_message_bytes.as_ref(), default_message as u64);
        let max_message_bytes = usize::try_from(max_message).unwrap_or_else(|e| {
            loader.problem(loader.at(0, 0), format!("limits.max_message_bytes: {e}"));
            default_message
        });
        Limits { state_memory, max_message_bytes }
    }
}

/// A size: a number of bytes, or a number with `KiB`, `MiB` or `GiB`.
fn parse_bytes(value: &serde_json::Value) -> Result<u64, String> {
    let expected = || format!("expected a number of bytes or a size like 512MiB or 2GiB, found {value}");
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    let text = value.as_str().ok_or_else(expected)?.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(expected()),
    };
    n.checked_mul(scale).ok_or_else(expected)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_are_bytes_or_binary_units() {
        assert_eq!(parse_bytes(&serde_json::json!(1024)), Ok(1024));
        assert_eq!(parse_bytes(&serde_json::json!("512MiB")), Ok(512 << 20));
        assert_eq!(parse_bytes(&serde_json::json!("2 GiB")), Ok(2 << 30));
        assert!(parse_bytes(&serde_json::json!("2GB")).is_err());
        assert!(parse_bytes(&serde_json::json!("99999999999999GiB")).is_err());
        assert!(parse_bytes(&serde_json::json!(-1)).is_err());
    }
}
