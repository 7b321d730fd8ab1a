//! Durations in rule files: `500ms`, `30s`, `5m`, `1h30m`, `1d`.

use std::time::Duration;

/// Parses a duration, or says what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}): expected a number with a unit, like 500ms, 30s, 5m, 1h30m or 1d")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert!(parse_duration("soon").unwrap_err().contains("expected a number with a unit"));
    }
}
