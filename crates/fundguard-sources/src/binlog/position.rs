//! Binlog positions: a file and offset, and the GTID state after the last transaction.
//!
//! MariaDB GTIDs are `domain-server-sequence`, one per replication domain; a replica
//! resumes by sending the last one of each domain (`@slave_connect_state`). MySQL GTIDs
//! are `source_uuid:transaction_number`; fundguard records the last one per source
//! UUID and resumes MySQL (with `gtid_mode=ON`) from the set `uuid:1-last` per UUID —
//! what a primary's `gtid_executed` is unless transactions were skipped by hand.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Where to resume reading, after a whole transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogPosition {
    /// The binlog file; empty means the first binlog the server still has.
    pub file: String,
    /// The offset of the next event in `file`.
    pub offset: u64,
    /// The GTID state after the last transaction, when the server writes GTIDs.
    #[serde(default, skip_serializing_if = "GtidState::is_empty")]
    pub gtid: GtidState,
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)?;
        if !self.gtid.is_empty() {
            write!(f, " gtid {}", self.gtid)?;
        }
        Ok(())
    }
}

/// The last GTID seen per MariaDB domain or per MySQL source UUID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidState {
    /// MariaDB: domain → (server id, sequence number).
    mariadb: BTreeMap<u32, (u32, u64)>,
    /// MySQL: source UUID (text) → transaction number.
    mysql: BTreeMap<String, u64>,
}

/// A GTID text that is neither MariaDB's `D-S-N` nor MySQL's `uuid:N`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a GTID: expected MariaDB `domain-server-sequence` (0-1-42) or MySQL `uuid:number`, comma-separated"
)]
pub struct GtidParseError(pub String);

impl GtidState {
    pub fn is_empty(&self) -> bool {
        self.mariadb.is_empty() && self.mysql.is_empty()
    }

    /// Parses `0-1-42,1-1-7` (MariaDB) or `3e11fa47-71ca-11e1-9e33-c80aa9429562:23` (MySQL);
    /// an empty text is an empty state.
    pub fn parse(text: &str) -> Result<GtidState, GtidParseError> {
        let mut state = GtidState::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || GtidParseError(part.to_string());
            if let Some((uuid, number)) = part.split_once(':') {
                let number = number.rsplit('-').next().unwrap_or(number);
                if uuid.len() != 36 || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                    return Err(bad());
                }
                state.mysql.insert(uuid.to_ascii_lowercase(), number.parse().map_err(|_| bad())?);
            } else {
                let mut fields = part.splitn(3, '-').map(str::parse::<u64>);
                let (Some(Ok(domain)), Some(Ok(server)), Some(Ok(sequence))) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    return Err(bad());
                };
                let domain = u32::try_from(domain).map_err(|_| bad())?;
                let server = u32::try_from(server).map_err(|_| bad())?;
                state.mariadb.insert(domain, (server, sequence));
            }
        }
        Ok(state)
    }

    /// Records a MariaDB transaction's GTID.
    pub fn mariadb(&mut self, domain: u32, server: u32, sequence: u64) {
        self.mariadb.insert(domain, (server, sequence));
    }

    /// Records a MySQL transaction's GTID.
    pub fn mysql(&mut self, uuid: [u8; 16], number: u64) {
        self.mysql.insert(format_uuid(uuid), number);
    }

    /// The MariaDB state to resume from (`@slave_connect_state`), if any.
    pub fn mariadb_connect_state(&self) -> Option<String> {
        if self.mariadb.is_empty() {
            return None;
        }
        let parts: Vec<String> = self.mariadb.iter().map(|(d, (s, n))| format!("{d}-{s}-{n}")).collect();
        Some(parts.join(","))
    }
}

impl GtidState {
    /// The MySQL GTID set to resume from: per source UUID, its transactions 1 to last.
    pub fn mysql_executed(&self) -> Vec<([u8; 16], u64)> {
        self.mysql
            .iter()
            .filter_map(|(uuid, last)| {
                let hex: String = uuid.chars().filter(|c| *c != '-').collect();
                let mut bytes = [0u8; 16];
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                Some((bytes, *last))
            })
            .collect()
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mariadb = self.mariadb.iter().map(|(d, (s, n))| format!("{d}-{s}-{n}"));
        let mysql = self.mysql.iter().map(|(u, n)| format!("{u}:{n}"));
        f.write_str(&mariadb.chain(mysql).collect::<Vec<_>>().join(","))
    }
}

impl Serialize for GtidState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GtidState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        GtidState::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn format_uuid(b: [u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mariadb_and_mysql_gtids_read_and_print() {
        let state = GtidState::parse("0-1-42, 3-2-7").unwrap();
        assert_eq!(state.to_string(), "0-1-42,3-2-7");
        assert_eq!(state.mariadb_connect_state().as_deref(), Some("0-1-42,3-2-7"));
        let mut mysql = GtidState::parse("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-23").unwrap();
        assert_eq!(mysql.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:23");
        assert_eq!(mysql.mariadb_connect_state(), None);
        mysql.mysql(
            [0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62],
            24,
        );
        assert_eq!(mysql.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:24");
        let executed = mysql.mysql_executed();
        assert_eq!(executed.len(), 1);
        assert_eq!((executed[0].0[0], executed[0].0[15], executed[0].1), (0x3e, 0x62, 24));
        for bad in ["0-1", "a-b-c", "0-1-2-3", "xyz:5", "0-99999999999-1"] {
            assert!(GtidState::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn positions_survive_the_position_file() {
        let mut position = BinlogPosition { file: "mysql-bin.000002".into(), offset: 1234, ..Default::default() };
        position.gtid.mariadb(0, 1, 99);
        let json = serde_json::to_string(&position).unwrap();
        assert_eq!(json, r#"{"file":"mysql-bin.000002","offset":1234,"gtid":"0-1-99"}"#);
        assert_eq!(serde_json::from_str::<BinlogPosition>(&json).unwrap(), position);
        assert_eq!(position.to_string(), "mysql-bin.000002:1234 gtid 0-1-99");
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panic(text in ".{0,60}") {
            let _ = GtidState::parse(&text);
        }

        #[test]
        fn mariadb_states_round_trip(domains in proptest::collection::btree_map(any::<u32>(), (any::<u32>(), any::<u64>()), 0..5)) {
            let mut state = GtidState::default();
            for (d, (s, n)) in &domains {
                state.mariadb(*d, *s, *n);
            }
            prop_assert_eq!(GtidState::parse(&state.to_string()).unwrap(), state);
        }
    }
}
