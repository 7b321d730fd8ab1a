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

/// A commit time a change log carried that fundguard refuses: outside
/// [`EventTime::EARLIEST_COMMIT`]..=[`EventTime::LATEST_COMMIT`], or not even a number of
/// microseconds (`-9300000000000` seconds is beyond `i64`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "commit time {shown} is out of range: expected a time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
)]
pub struct CommitTimeError {
    /// The time as the message had it (`-9300000000000 s`, `+262142-01-01T00:00:00Z`).
    pub shown: String,
}

impl EventTime {
    /// The earliest commit time a change log may carry: the Unix epoch.
    pub const EARLIEST_COMMIT: EventTime = EventTime(0);
    /// The latest commit time a change log may carry: the end of year 9999, the last
    /// instant RFC 3339 (and every database's DATETIME) can write.
    pub const LATEST_COMMIT: EventTime = EventTime(253_402_300_799_999_999);

    pub const fn from_micros(micros: i64) -> Self {
        EventTime(micros)
    }

    /// A commit time of `secs` seconds since the epoch, refused outside
    /// [`EARLIEST_COMMIT`](Self::EARLIEST_COMMIT)..=[`LATEST_COMMIT`](Self::LATEST_COMMIT)
    /// instead of saturating: decoders dead-letter such a message rather than let a time
    /// near `i64::MIN` or `i64::MAX` reach the arithmetic of lags and deadlines.
    pub fn commit_from_secs(secs: i64) -> Result<Self, CommitTimeError> {
        Self::commit(secs, 1_000_000, "s")
    }

    /// As [`EventTime::commit_from_secs`], for milliseconds.
    pub fn commit_from_millis(millis: i64) -> Result<Self, CommitTimeError> {
        Self::commit(millis, 1_000, "ms")
    }

    /// As [`EventTime::commit_from_secs`], for microseconds.
    pub fn commit_from_micros(micros: i64) -> Result<Self, CommitTimeError> {
        Self::commit(micros, 1, "us")
    }

    fn commit(value: i64, micros_per_unit: i64, unit: &str) -> Result<Self, CommitTimeError> {
        let time = value.checked_mul(micros_per_unit).map(EventTime);
        time.filter(|t| t.is_commit_time()).ok_or_else(|| CommitTimeError { shown: format!("{value} {unit}") })
    }

    /// This time as a commit time (read from text, say): refused outside
    /// [`EARLIEST_COMMIT`](Self::EARLIEST_COMMIT)..=[`LATEST_COMMIT`](Self::LATEST_COMMIT).
    pub fn checked_commit(self) -> Result<Self, CommitTimeError> {
        if self.is_commit_time() { Ok(self) } else { Err(CommitTimeError { shown: self.to_string() }) }
    }

    /// Whether this time lies in the range of commit times fundguard accepts.
    pub fn is_commit_time(self) -> bool {
        (Self::EARLIEST_COMMIT..=Self::LATEST_COMMIT).contains(&self)
    }

    /// Microseconds from `earlier` to `self`, saturating rather than overflowing for
    /// times at the ends of the range (a lag, a latency).
    pub const fn micros_since(self, earlier: EventTime) -> i64 {
        self.0.saturating_sub(earlier.0)
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

    #[test]
    fn commit_times_outside_the_range_are_refused_not_saturated() {
        assert_eq!(EventTime::commit_from_secs(1_714_550_401).unwrap().to_string(), "2024-05-01T08:00:01Z");
        assert_eq!(EventTime::commit_from_millis(1_714_550_401_250).unwrap().as_millis(), 1_714_550_401_250);
        assert_eq!(EventTime::commit_from_micros(0).unwrap(), EventTime::EARLIEST_COMMIT);
        let err = EventTime::commit_from_secs(-9_300_000_000_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "commit time -9300000000000 s is out of range: expected a time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
        );
        assert!(EventTime::commit_from_millis(i64::MAX).is_err());
        assert!(EventTime::commit_from_millis(-1).is_err());
        assert!(EventTime::commit_from_secs(253_402_300_800).is_err(), "year 10000");
        assert!(EventTime::commit_from_micros(EventTime::LATEST_COMMIT.as_micros()).is_ok());
        let far = EventTime::from_micros(EventTime::LATEST_COMMIT.as_micros() + 1).checked_commit().unwrap_err();
        assert!(far.to_string().starts_with("commit time +10000-01-01T00:00:00Z is out of range"), "{far}");
        let before = EventTime::parse("1969-12-31T23:59:59Z").unwrap().checked_commit().unwrap_err();
        assert!(before.to_string().starts_with("commit time 1969-12-31T23:59:59Z is out of range"), "{before}");
        assert_eq!(EventTime::LATEST_COMMIT.to_string(), "9999-12-31T23:59:59.999999Z");
        assert_eq!(EventTime::from_micros(i64::MAX).micros_since(EventTime::from_micros(i64::MIN)), i64::MAX);
        assert_eq!(EventTime::from_micros(i64::MIN).micros_since(EventTime::from_micros(1)), i64::MIN);
    }
}
