//! Changes — deploys, configuration and feature-flag changes, migrations, DDL — and which of
//! them most likely caused an incident.
//!
//! A change can only cause what follows it: changes from [`LOOKBACK`] before an incident's
//! start up to [`SLACK`] after it (clocks of different systems disagree a little) are
//! candidates. Each is scored by *proximity* — halved for every [`HALF_LIFE`] between the
//! change and the incident's start — times *relevance*: a change that touches a table the
//! incident's rules read (DDL on it, or a service the config maps to it) is fully relevant;
//! one to a service of the incident's owning team is partly; any other change a little,
//! since an unmapped service may still be the cause.

use std::collections::BTreeMap;

use fundguard_core::EventTime;
use serde::{Deserialize, Serialize};

/// How far back a change can still have caused an incident.
pub const LOOKBACK: i64 = 24 * 3600 * 1_000_000;
/// How long after an incident's start a change still counts (clock skew between systems).
pub const SLACK: i64 = 60 * 1_000_000;
/// Proximity halves with every half-life between the change and the incident.
pub const HALF_LIFE: i64 = 30 * 60 * 1_000_000;

/// Relevance of a change that touches a table the incident's rules read.
pub const TOUCHES_TABLE: f64 = 1.0;
/// Relevance of a change to a service of the incident's owning team.
pub const OWNERS_SERVICE: f64 = 0.6;
/// Relevance of any other change.
pub const UNRELATED: f64 = 0.2;

/// The kinds of change fundguard takes in.
pub const KINDS: [&str; 5] = ["deploy", "config", "flag", "migration", "ddl"];

/// One change to a system money flows through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The store's id (0 before it is stored).
    #[serde(default)]
    pub id: i64,
    pub service: String,
    /// One of [`KINDS`].
    pub kind: String,
    #[serde(default)]
    pub version: Option<String>,
    /// When it took effect.
    pub at: EventTime,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub link: Option<String>,
    /// Tables it touches directly (a migration's or DDL's tables).
    #[serde(default)]
    pub tables: Vec<String>,
    /// Free text: a commit message, the DDL statement.
    #[serde(default)]
    pub description: Option<String>,
}

impl Change {
    /// Refused unless its service is named and its kind is one of [`KINDS`].
    pub fn validate(&self) -> Result<(), String> {
        if self.service.trim().is_empty() {
            return Err("a change needs its `service`".into());
        }
        if !KINDS.contains(&self.kind.as_str()) {
            return Err(format!("kind `{}`: expected one of {}", self.kind, KINDS.join(", ")));
        }
        Ok(())
    }
}

/// The tables a DDL statement changes, as `db.table` (`default_db` for unqualified names):
/// `CREATE`/`ALTER`/`DROP`/`TRUNCATE TABLE t`, `RENAME TABLE a TO b, c TO d` and
/// `CREATE INDEX … ON t`. Quotes and backticks are removed; anything else names nothing.
pub fn tables_of_ddl(statement: &str, default_db: &str) -> Vec<String> {
    let words: Vec<&str> = statement
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    let upper = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    let qualify = |name: &str| {
        let name: String = name.chars().filter(|c| !matches!(c, '`' | '"' | '[' | ']')).collect();
        if name.is_empty() {
            None
        } else if name.contains('.') || default_db.is_empty() {
            Some(name)
        } else {
            Some(format!("{default_db}.{name}"))
        }
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        match upper(i).as_str() {
            "TABLE" => {
                let mut j = i + 1;
                while matches!(upper(j).as_str(), "IF" | "NOT" | "EXISTS" | "ONLY") {
                    j += 1;
                }
                // RENAME and DROP name several tables (`a TO b, c TO d`; `a, b`); the rest one.
                let several = matches!(upper(0).as_str(), "RENAME" | "DROP" | "TRUNCATE");
                let last = if several { words.len() } else { (j + 1).min(words.len()) };
                let names = words.iter().take(last).skip(j);
                for word in names
                    .filter(|w| !matches!(w.to_ascii_uppercase().as_str(), "TO" | "CASCADE" | "RESTRICT" | "PURGE"))
                {
                    out.extend(qualify(word));
                }
                break;
            }
            "ON" if upper(0) == "CREATE" && words.iter().any(|w| w.eq_ignore_ascii_case("INDEX")) => {
                out.extend(words.get(i + 1).and_then(|w| qualify(w)));
                break;
            }
            _ => i += 1,
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What the config says about services: the tables each writes, and the team that owns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceMap {
    pub services: BTreeMap<String, Service>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    #[serde(default)]
    pub tables: Vec<String>,
    #[serde(default)]
    pub team: Option<String>,
}

/// A candidate change with the figures behind its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeCause {
    pub change: Change,
    /// `change:<id>`: what feedback names it by.
    pub name: String,
    /// Minutes from the change to the incident's start (negative: after it).
    pub minutes_before: f64,
    pub proximity: f64,
    pub relevance: f64,
    /// Why it is relevant, in words.
    pub reason: String,
    pub score: f64,
}

/// What a change is ranked against: the incident's start, the tables its rules read and
/// its owning team.
pub struct IncidentContext<'a> {
    pub start: EventTime,
    pub tables: &'a [String],
    pub owner: &'a str,
}

/// The candidate changes of an incident, most likely cause first, at most `limit`.
pub fn rank_changes(
    changes: &[Change],
    incident: &IncidentContext<'_>,
    services: &ServiceMap,
    limit: usize,
) -> Vec<ChangeCause> {
    let start = incident.start.as_micros();
    let mut out: Vec<ChangeCause> = changes
        .iter()
        .filter(|c| {
            let at = c.at.as_micros();
            at >= start.saturating_sub(LOOKBACK) && at <= start.saturating_add(SLACK)
        })
        .map(|c| {
            let before = start - c.at.as_micros();
            let proximity = 0.5f64.powf(before.max(0) as f64 / HALF_LIFE as f64);
            let (relevance, reason) = relevance(c, incident, services);
            ChangeCause {
                change: c.clone(),
                name: format!("change:{}", c.id),
                minutes_before: before as f64 / 60e6,
                proximity,
                relevance,
                reason,
                score: proximity * relevance,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then(b.change.at.cmp(&a.change.at)).then(a.change.id.cmp(&b.change.id))
    });
    out.truncate(limit);
    out
}

fn relevance(change: &Change, incident: &IncidentContext<'_>, services: &ServiceMap) -> (f64, String) {
    let reads = |t: &String| incident.tables.iter().any(|r| r == t);
    if let Some(t) = change.tables.iter().find(|t| reads(t)) {
        return (TOUCHES_TABLE, format!("changes `{t}`, which the incident's rules read"));
    }
    let service = services.services.get(&change.service);
    if let Some(t) = service.and_then(|s| s.tables.iter().find(|t| reads(t))) {
        return (TOUCHES_TABLE, format!("`{}` writes `{t}`, which the incident's rules read", change.service));
    }
    if service.and_then(|s| s.team.as_deref()) == Some(incident.owner) {
        return (OWNERS_SERVICE, format!("`{}` belongs to the owning team `{}`", change.service, incident.owner));
    }
    (UNRELATED, format!("`{}` is not mapped to the incident's tables or team", change.service))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: i64, service: &str, minutes_before: i64) -> Change {
        Change {
            id,
            service: service.into(),
            kind: "deploy".into(),
            version: None,
            at: EventTime::from_micros(10_000 * 60_000_000 - minutes_before * 60_000_000),
            author: None,
            link: None,
            tables: vec![],
            description: None,
        }
    }

    #[test]
    fn ddl_names_the_tables_it_changes() {
        assert_eq!(tables_of_ddl("ALTER TABLE items DROP COLUMN note", "shop"), ["shop.items"]);
        assert_eq!(tables_of_ddl("alter table `pay`.`payments` add column x int", "shop"), ["pay.payments"]);
        assert_eq!(tables_of_ddl("CREATE TABLE IF NOT EXISTS t (id int)", "db"), ["db.t"]);
        assert_eq!(tables_of_ddl("DROP TABLE a, b", "db"), ["db.a", "db.b"]);
        assert_eq!(tables_of_ddl("RENAME TABLE a TO a_old, b TO a", "db"), ["db.a", "db.a_old", "db.b"]);
        assert_eq!(tables_of_ddl("CREATE INDEX i ON orders (status)", "shop"), ["shop.orders"]);
        assert!(tables_of_ddl("SAVEPOINT x", "db").is_empty());
        assert!(tables_of_ddl("", "").is_empty());
    }

    proptest::proptest! {
        /// Any text, however broken, gives a list (never a panic).
        #[test]
        fn any_statement_is_read_without_panicking(statement in ".{0,200}", db in "[a-z]{0,8}") {
            let _ = tables_of_ddl(&statement, &db);
        }
    }

    #[test]
    fn a_recent_change_to_the_tables_outranks_an_older_or_unrelated_one_and_later_ones_do_not_count() {
        let mut services = ServiceMap::default();
        services.services.insert("pay".into(), Service { tables: vec!["shop.payments".into()], team: None });
        services.services.insert("catalog".into(), Service { tables: vec![], team: Some("payments".into()) });
        let changes = vec![
            change(1, "search", 5),   // unrelated, recent
            change(2, "pay", 10),     // touches the tables
            change(3, "pay", 300),    // the same service, five hours earlier
            change(4, "catalog", 10), // the owner's service
            change(5, "pay", -30),    // after the incident started
        ];
        let tables = vec!["shop.payments".to_string()];
        let incident =
            IncidentContext { start: EventTime::from_micros(10_000 * 60_000_000), tables: &tables, owner: "payments" };
        let ranked = rank_changes(&changes, &incident, &services, 10);
        let ids: Vec<i64> = ranked.iter().map(|c| c.change.id).collect();
        assert_eq!(ids, [2, 4, 1, 3]);
        assert!(ranked[0].reason.contains("shop.payments"));
    }
}
