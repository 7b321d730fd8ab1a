//! `type: mysql` — a MySQL or MariaDB binlog, read as a replica.

use std::path::PathBuf;

use fundguard_sources::binlog::{BinlogConfig, BinlogPosition, GtidState, StartAt};
use serde::Deserialize;

use super::tls::TlsFile;
use super::{Reported, Scope, SourceKind, SourceSpec};

/// The replica id fundguard registers with a MySQL/MariaDB server unless told otherwise.
const DEFAULT_SERVER_ID: u32 = 4_242_001;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct MysqlSource {
    name: String,
    url: String,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    tls: Option<TlsFile>,
    #[serde(default)]
    server_id: Option<u32>,
    /// `end` (default) or `beginning`, when no position is stored and none is given.
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    start_file: Option<String>,
    #[serde(default)]
    start_offset: Option<u64>,
    #[serde(default)]
    start_gtid: Option<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    /// The zone of DATETIME columns, `+08:00`; UTC when absent.
    #[serde(default)]
    datetime_offset: Option<String>,
}

impl SourceSpec for MysqlSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }

    fn validate(self: Box<Self>, scope: &mut Scope) -> Result<SourceKind, Reported> {
        let (password, tls) = scope.credentials(&self.password_env, &self.password_file, self.tls)?;
        let start = match (self.start.as_deref(), self.start_file, self.start_gtid) {
            (_, Some(file), None) => {
                StartAt::At(BinlogPosition { file, offset: self.start_offset.unwrap_or(4), gtid: GtidState::default() })
            }
            (_, None, Some(gtid)) => match GtidState::parse(&gtid) {
                Ok(gtid) => StartAt::At(BinlogPosition { file: String::new(), offset: 4, gtid }),
                Err(e) => return Err(scope.problem(format_args!("start_gtid: {e}"))),
            },
            (_, Some(_), Some(_)) => {
                return Err(scope.problem("give start_file (with start_offset) or start_gtid, not both"));
            }
            (None | Some("end"), None, None) => StartAt::End,
            (Some("beginning"), None, None) => StartAt::Beginning,
            (Some(other), None, None) => {
                return Err(scope
                    .problem(format_args!("start `{other}`: expected end or beginning (or start_file / start_gtid)")));
            }
        };
        let datetime_offset_secs = match self.datetime_offset.as_deref().map(parse_utc_offset) {
            None => 0,
            Some(Ok(secs)) => secs,
            Some(Err(e)) => return Err(scope.problem(format_args!("datetime_offset: {e}"))),
        };
        Ok(SourceKind::Mysql(BinlogConfig {
            url: self.url,
            password,
            tls,
            server_id: self.server_id.unwrap_or(DEFAULT_SERVER_ID),
            start,
            include: self.include,
            exclude: self.exclude,
            datetime_offset_secs,
        }))
    }
}

/// `+08:00`, `-05:30`, `Z` → seconds east of UTC.
fn parse_utc_offset(text: &str) -> Result<i32, String> {
    let bad = || format!("`{text}` is not a UTC offset: expected +HH:MM or -HH:MM (or Z)");
    if text == "Z" || text == "UTC" {
        return Ok(0);
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::parse_utc_offset;

    #[test]
    fn utc_offsets_are_seconds_east() {
        assert_eq!(parse_utc_offset("+08:00"), Ok(8 * 3600));
        assert_eq!(parse_utc_offset("-05:30"), Ok(-(5 * 3600 + 30 * 60)));
        assert_eq!(parse_utc_offset("Z"), Ok(0));
        for bad in ["08:00", "+8", "+15:00", "+08:60", ""] {
            assert!(parse_utc_offset(bad).is_err(), "{bad}");
        }
    }
}
