//! Validation of the `sql` rule kind: a scheduled query over warehouse tables.
//!
//! What can be checked without the tables is checked here (the schedule, the time zone,
//! column lists, limits); the query itself is planned against the declared tables by
//! `fundguard validate` (see the `fundguard-warehouse` crate).

use std::str::FromStr;
use std::time::Duration;

use serde_saphyr::Spanned;

use crate::file::SqlBody;
use crate::load::Validator;
use crate::{CatchUp, Schedule, SqlRule};

/// How long a run may take unless the rule says otherwise.
pub const DEFAULT_SQL_TIMEOUT: Duration = Duration::from_secs(600);
/// How many findings one run may produce unless the rule says otherwise.
pub const DEFAULT_MAX_FINDINGS: u64 = 1000;

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
            message: body.message.as_ref().map(|m| self.expr(m)),
            timeout,
            max_findings,
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
