//! Event time: when a change was committed at its source, in microseconds since the epoch.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in event time (UTC), with microsecond precision.
///
/// Engine logic compares `EventTime`s only; it never asks the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventTime(i64);

/// A timestamp text that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a timestamp: expected RFC 3339 (2024-05-01T12:00:00Z) or `YYYY-MM-DD HH:MM:SS[.ffffff]`")]
pub struct TimeParseError {
    pub text: String,
}

impl EventTime {
    pub const fn from_micros(micros: i64) -> Self {
        EventTime(micros)
    }

    pub fn from_millis(millis: i64) -> Self {
        EventTime(millis.saturating_mul(1_000))
    }

    pub fn from_secs(secs: i64) -> Self {
        EventTime(secs.saturating_mul(1_000_000))
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000)
    }

    /// Adds a duration, saturating at the ends of time.
    pub fn plus(self, d: std::time::Duration) -> Self {
        EventTime(self.0.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// Reads RFC 3339 text, or a zone-less `YYYY-MM-DD[ HH:MM:SS[.f]]` taken as UTC
    /// (the form MySQL, Canal and Maxwell print).
    pub fn parse(text: &str) -> Result<Self, TimeParseError> {
        let err = || TimeParseError { text: text.to_owned() };
        if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            return Ok(EventTime(dt.timestamp_micros()));
        }
        for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(EventTime(dt.and_utc().timestamp_micros()));
            }
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| err())?;
        let midnight = date.and_hms_opt(0, 0, 0).ok_or_else(err)?;
        Ok(EventTime(midnight.and_utc().timestamp_micros()))
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::<Utc>::from_timestamp_micros(self.0) {
            Some(dt) => f.write_str(&dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => write!(f, "{}us", self.0),
        }
    }
}

/// RFC 3339 text in human-readable formats (JSON, YAML); the microseconds as an integer
/// in binary ones (checkpoints), where nothing is parsed back.
impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() { serializer.collect_str(self) } else { serializer.serialize_i64(self.0) }
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return i64::deserialize(deserializer).map(EventTime);
        }
        let text = String::deserialize(deserializer)?;
        EventTime::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_rfc3339() {
        let t = EventTime::parse("2024-05-01T12:00:00.250+08:00").unwrap();
        assert_eq!(t.to_string(), "2024-05-01T04:00:00.250Z");
        assert_eq!(EventTime::parse("2024-05-01 04:00:00.25").unwrap(), t);
        assert_eq!(EventTime::parse("2024-05-01").unwrap().to_string(), "2024-05-01T00:00:00Z");
        assert!(EventTime::parse("yesterday").is_err());
    }
}
