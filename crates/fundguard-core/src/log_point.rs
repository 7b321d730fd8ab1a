//! A place in a database's replication log, ordered the way the log is.
//!
//! Stateful rules apply events in (commit time, position) order. A busy server commits
//! many transactions within one binlog second, so the position decides their order — and
//! must compare as the log does: `mysql-bin.000001:5433` before `mysql-bin.000001:228403`,
//! and `0/FFFF` before `0/10000`. Compared as text they would not. A [`LogPoint`] keeps
//! the numbers and compares them; it is written and read as the text the server itself
//! shows, so findings stay readable and positions written by older versions (text only)
//! read back as ordered points.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a row change sits in its database's log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogPoint {
    /// A MySQL/MariaDB binlog event: file `base.NNNNNN` and the event's offset in it.
    /// Ordered by file sequence number, then offset.
    Binlog { base: Arc<str>, file: u64, offset: u64 },
    /// A PostgreSQL WAL location (a transaction's commit LSN), as a 64-bit number.
    Lsn(u64),
    /// A MariaDB GTID `domain-server-sequence`: ordered by domain, then sequence.
    Gtid { domain: u32, server: u32, sequence: u64 },
    /// Text in no known form (kept as it was; ordered after every known form, by text).
    Text(Arc<str>),
}

impl LogPoint {
    /// Reads the text form the servers print: `base.NNNNNN:offset`, `HI/LO` (hexadecimal
    /// LSN, upper case) or `D-S-N`; anything else, including these forms written
    /// differently, is kept as [`LogPoint::Text`], so every text prints back as it was.
    pub fn parse(text: &str) -> LogPoint {
        parse_binlog(text)
            .or_else(|| parse_lsn(text))
            .or_else(|| parse_gtid(text))
            .unwrap_or_else(|| LogPoint::Text(Arc::from(text)))
    }

    /// The numbers this point is ordered by, after the form's rank.
    fn order_key(&self) -> (u8, u64, u64, u64) {
        match self {
            LogPoint::Binlog { file, offset, .. } => (0, *file, *offset, 0),
            LogPoint::Lsn(lsn) => (1, *lsn, 0, 0),
            LogPoint::Gtid { domain, server, sequence } => (2, u64::from(*domain), *sequence, u64::from(*server)),
            LogPoint::Text(_) => (3, 0, 0, 0),
        }
    }
}

impl Ord for LogPoint {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order_key().cmp(&other.order_key()).then_with(|| match (self, other) {
            (LogPoint::Binlog { base: a, .. }, LogPoint::Binlog { base: b, .. }) => a.cmp(b),
            (LogPoint::Text(a), LogPoint::Text(b)) => a.cmp(b),
            _ => Ordering::Equal,
        })
    }
}

impl PartialOrd for LogPoint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for LogPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The file number keeps its six-digit padding, as the server names files.
            LogPoint::Binlog { base, file, offset } => write!(f, "{base}.{file:06}:{offset}"),
            LogPoint::Lsn(lsn) => write!(f, "{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF),
            LogPoint::Gtid { domain, server, sequence } => write!(f, "{domain}-{server}-{sequence}"),
            LogPoint::Text(text) => f.write_str(text),
        }
    }
}

impl Serialize for LogPoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogPoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(LogPoint::parse(&text))
    }
}

/// `mysql-bin.000012:4711`: a file name ending in a dot and digits, a colon, an offset.
fn parse_binlog(text: &str) -> Option<LogPoint> {
    let (file, offset) = text.rsplit_once(':')?;
    let (base, number) = file.rsplit_once('.')?;
    if base.is_empty() || !all_digits(number) || !all_digits(offset) {
        return None;
    }
    let point = LogPoint::Binlog { base: Arc::from(base), file: number.parse().ok()?, offset: offset.parse().ok()? };
    // Only a text that prints back the same is this form (no lost zeros or signs).
    (point.to_string() == text).then_some(point)
}

/// `16/B374D848`: two hexadecimal halves of a 64-bit WAL location.
fn parse_lsn(text: &str) -> Option<LogPoint> {
    let (hi, lo) = text.split_once('/')?;
    let half = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16).ok()
    };
    let (hi, lo) = (half(hi)?, half(lo)?);
    let point = LogPoint::Lsn(hi << 32 | lo);
    (point.to_string() == text).then_some(point)
}

/// `0-1-42`: a MariaDB GTID.
fn parse_gtid(text: &str) -> Option<LogPoint> {
    let mut parts = text.split('-');
    let (domain, server, sequence) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ![domain, server, sequence].iter().all(|p| all_digits(p)) {
        return None;
    }
    let point =
        LogPoint::Gtid { domain: domain.parse().ok()?, server: server.parse().ok()?, sequence: sequence.parse().ok()? };
    (point.to_string() == text).then_some(point)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_server_forms_read_and_print_back() {
        for text in
            ["mysql-bin.000001:228403", "host-relay.bin.123456:4", "0/16B3748", "16/B374D848", "0-1-42", "what?"]
        {
            assert_eq!(LogPoint::parse(text).to_string(), text);
        }
        assert_eq!(LogPoint::parse("0/FFFF"), LogPoint::Lsn(0xFFFF));
        assert!(matches!(LogPoint::parse("bin.1:2"), LogPoint::Text(_)), "an unpadded file number is not the server's");
        assert!(matches!(LogPoint::parse("mysql-bin.000001:-3"), LogPoint::Text(_)));
    }

    #[test]
    fn busy_seconds_compare_as_the_log_does() {
        // Compared as text, each of these pairs sorts the wrong way round.
        let pairs = [
            ("mysql-bin.000001:5433", "mysql-bin.000001:228403"),
            ("mysql-bin.000999:98765", "mysql-bin.1000000:4"),
            ("0/FFFF", "0/10000"),
            ("0/FFFFFFFF", "1/0"),
            ("0-1-9", "0-1-10"),
        ];
        for (earlier, later) in pairs {
            assert!(LogPoint::parse(earlier) < LogPoint::parse(later), "{earlier} < {later}");
        }
    }

    #[test]
    fn points_travel_as_their_text() {
        let point = LogPoint::parse("mysql-bin.000002:1234");
        assert_eq!(serde_json::to_string(&point).unwrap(), "\"mysql-bin.000002:1234\"");
        assert_eq!(serde_json::from_str::<LogPoint>("\"0/10000\"").unwrap(), LogPoint::Lsn(0x10000));
    }

    #[test]
    fn positions_of_older_checkpoints_read_back_in_log_order() {
        // Checkpoints written before positions had an order kept `at` as bare text.
        #[derive(Serialize)]
        struct OldLog<'a> {
            kind: &'a str,
            source: &'a str,
            at: &'a str,
            index: u32,
        }
        let read = |at| {
            let bytes = rmp_serde::to_vec_named(&OldLog { kind: "log", source: "shopdb", at, index: 0 }).unwrap();
            rmp_serde::from_slice::<crate::Position>(&bytes).unwrap()
        };
        let expected = LogPoint::Binlog { base: Arc::from("mysql-bin"), file: 1, offset: 5433 };
        assert_eq!(
            read("mysql-bin.000001:5433"),
            crate::Position::Log { source: Arc::from("shopdb"), at: expected, index: 0 }
        );
        assert!(read("mysql-bin.000001:5433") < read("mysql-bin.000001:228403"));
        assert!(read("0/FFFF") < read("0/10000"));
    }

    proptest! {
        #[test]
        fn binlog_points_order_like_their_numbers(a in (0u64..2_000_000, any::<u32>()), b in (0u64..2_000_000, any::<u32>())) {
            let point = |(file, offset): (u64, u32)| LogPoint::parse(&format!("mysql-bin.{file:06}:{offset}"));
            prop_assert_eq!(point(a).cmp(&point(b)), (a.0, a.1).cmp(&(b.0, b.1)));
        }

        #[test]
        fn lsns_order_like_their_numbers(a in any::<u64>(), b in any::<u64>()) {
            let point = |lsn: u64| LogPoint::parse(&LogPoint::Lsn(lsn).to_string());
            prop_assert_eq!(point(a), LogPoint::Lsn(a));
            prop_assert_eq!(point(a).cmp(&point(b)), a.cmp(&b));
        }

        #[test]
        fn gtids_order_by_domain_then_sequence(a in (any::<u32>(), any::<u32>(), any::<u64>()), b in (any::<u32>(), any::<u32>(), any::<u64>())) {
            let point = |(d, s, n): (u32, u32, u64)| LogPoint::parse(&format!("{d}-{s}-{n}"));
            prop_assert_eq!(point(a).cmp(&point(b)), (a.0, a.2, a.1).cmp(&(b.0, b.2, b.1)));
        }

        #[test]
        fn any_text_reads_without_panic_and_prints_back(text in ".{0,40}") {
            prop_assert_eq!(LogPoint::parse(&text).to_string(), text);
        }
    }
}
