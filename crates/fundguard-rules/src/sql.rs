//! Validation of the `sql` rule kind: a scheduled query over warehouse tables.
//!
//! What can be checked without the tables is checked here (the schedule, the time zone,
//! column lists, limits: timeout, findings cap, memory); the query itself is checked to be
//! one read-only query and planned against the declared tables by the
//! `fundguard-warehouse` crate (`check_rules`, `plan`).

use std::str::FromStr;
use std::time::Duration;

use serde_saphyr::Spanned;

use crate::file::SqlBody;
use crate::load::Validator;
use crate::size::parse_size;
use crate::{CatchUp, Schedule, SqlRule};

/// How long a run may take unless the rule says otherwise.
pub const DEFAULT_SQL_TIMEOUT: Duration = Duration::from_secs(600);
/// How many findings one run may produce unless the rule says otherwise.
pub const DEFAULT_MAX_FINDINGS: u64 = 1000;
/// How much memory one run may hold in DataFusion's memory pool unless the rule says otherwise.
pub const DEFAULT_SQL_MEMORY_LIMIT: u64 = 1 << 30;
/// The smallest `memory_limit` accepted: less is almost certainly a unit forgotten (`512`
/// for `512MiB`), and no query could plan and run in it.
pub const MIN_SQL_MEMORY_LIMIT: u64 = 1 << 20;

impl Validator {
    pub(crate) fn sql(&mut self, body: SqlBody) -> Option<SqlRule> {
        if body.query.value.trim().is_empty() {
            self.error(self.at(&body.query), "the query is empty: expected a SELECT whose rows are the findings");
        }
        let timezone = match &body.timezone {
            Some(tz) => match chrono_tz::Tz::from_str(tz.value.trim()) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    self.error(
                        self.at(tz),
                        format!("time zone `{}`: expected an IANA name such as Asia/Shanghai or UTC", tz.value),
                    );
                    None
                }
            },
            None => Some(chrono_tz::UTC),
        };
        let schedule = match &body.schedule {
            Some(text) => match croner::Cron::from_str(text.value.trim()) {
                Ok(cron) => timezone.map(|timezone| Schedule { cron, timezone, text: text.value.trim().to_string() }),
                Err(e) => {
                    self.error(
                        self.at(text),
                        format!("schedule `{}`: {e}; expected a cron pattern such as \"30 2 * * *\"", text.value),
                    );
                    None
                }
            },
            None => None,
        };
        let key = self.columns(&body.key, "key");
        let evidence = body.evidence.as_ref().map(|e| self.columns(e, "evidence"));
        let money_unit = self.money_unit(body.money.as_ref().and_then(|m| m.unit.as_ref()));
        let money = body.money.map(|m| (m.amount.value, m.currency.map(|c| c.value)));
        let timeout = self.duration(body.timeout.as_ref()).unwrap_or(DEFAULT_SQL_TIMEOUT);
        let max_findings = match &body.max_findings {
            Some(m) if m.value == 0 => {
                self.error(self.at(m), "max_findings is 0: expected at least 1");
                DEFAULT_MAX_FINDINGS
            }
            Some(m) => m.value,
            None => DEFAULT_MAX_FINDINGS,
        };
        let memory_limit = match &body.memory_limit {
            Some(m) => match parse_size(&m.value) {
                Ok(bytes) if bytes >= MIN_SQL_MEMORY_LIMIT => bytes,
                Ok(_) => {
                    self.error(
                        self.at(m),
                        format!("memory_limit `{}` is below 1MiB: expected a size such as 512MiB or 2GiB", m.value),
                    );
                    DEFAULT_SQL_MEMORY_LIMIT
                }
                Err(e) => {
                    self.error(self.at(m), format!("memory_limit: {e}"));
                    DEFAULT_SQL_MEMORY_LIMIT
                }
            },
            None => DEFAULT_SQL_MEMORY_LIMIT,
        };
        let catch_up = match body.catch_up.as_ref().map(|c| (c, c.value.as_str())) {
            None | Some((_, "all")) => CatchUp::All,
            Some((_, "latest")) => CatchUp::Latest,
            Some((_, "none")) => CatchUp::Skip,
            Some((c, other)) => {
                self.error(self.at(c), format!("catch_up `{other}`: expected all, latest or none"));
                CatchUp::All
            }
        };
        Some(SqlRule {
            query: self.expr(&body.query),
            schedule,
            key,
            evidence,
            money,
            money_unit,
            message: body.message.as_ref().map(|m| self.expr(m)),
            timeout,
            max_findings,
            memory_limit,
            catch_up,
        })
    }

    /// A non-empty list of result column names.
    fn columns(&mut self, columns: &Spanned<Vec<String>>, what: &str) -> Vec<String> {
        if columns.value.is_empty() || columns.value.iter().any(|c| c.trim().is_empty()) {
            self.error(self.at(columns), format!("`{what}` lists no columns: expected result column names"));
        }
        columns.value.clone()
    }
}
