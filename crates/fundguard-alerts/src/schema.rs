//! The schema both stores migrate to, written once: the migrations, in order, with the
//! two places the databases differ (an auto-numbered key, a 64-bit integer) filled in
//! from the [`Dialect`].
//!
//! A migration that has shipped is never edited: existing databases ran it as it was,
//! and the stores count migrations, not compare them. The test below pins each one's
//! text, per database, to the bytes that shipped.

use crate::sql::Dialect;

/// Migration 1: alerts and their timeline.
const ALERTS: &str = r#"
CREATE TABLE alerts (
    id              {serial} PRIMARY KEY,
    fingerprint     TEXT NOT NULL UNIQUE,
    rule            TEXT NOT NULL,
    key_json        TEXT NOT NULL,
    severity        TEXT NOT NULL,
    owner           TEXT NOT NULL,
    status          TEXT NOT NULL,
    assignee        TEXT,
    message         TEXT NOT NULL,
    count           {bigint} NOT NULL,
    event_time      {bigint} NOT NULL,
    first_seen      {bigint} NOT NULL,
    last_seen       {bigint} NOT NULL,
    acknowledged_at {bigint},
    resolved_at     {bigint},
    root_cause      TEXT,
    money_json      TEXT,
    evidence_json   TEXT NOT NULL
);
CREATE INDEX alerts_by_status ON alerts (status, last_seen);
CREATE INDEX alerts_by_owner ON alerts (owner, status, last_seen);
CREATE INDEX alerts_by_rule ON alerts (rule, status, last_seen);
CREATE INDEX alerts_by_last_seen ON alerts (last_seen);
CREATE TABLE timeline (
    id       {serial} PRIMARY KEY,
    alert_id {bigint} NOT NULL REFERENCES alerts (id),
    at       {bigint} NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    detail   TEXT
);
CREATE INDEX timeline_by_alert ON timeline (alert_id, id);
"#;

/// Migration 2: the outbox of notifications. (`attempts` is a 32-bit INTEGER in both.)
const OUTBOX: &str = r#"
CREATE TABLE outbox (
    id              {serial} PRIMARY KEY,
    alert_id        {bigint} NOT NULL REFERENCES alerts (id),
    channel         TEXT NOT NULL,
    event           TEXT NOT NULL,
    alert_json      TEXT NOT NULL,
    created_at      {bigint} NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at {bigint} NOT NULL,
    delivered_at    {bigint},
    failed_at       {bigint},
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
"#;

/// Migration 3: tags, and containment actions in the outbox.
const ACTIONS: &str = r#"
ALTER TABLE alerts ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]';
ALTER TABLE outbox ADD COLUMN action_json TEXT;
ALTER TABLE outbox ADD COLUMN awaiting_approval INTEGER NOT NULL DEFAULT 0;
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL AND awaiting_approval = 0;
CREATE INDEX outbox_failed ON outbox (failed_at) WHERE failed_at IS NOT NULL;
"#;

/// Migration 4. The console filters by one column and pages by recency: each filter
/// walks its own index in last_seen order instead of sorting every match (1M alerts:
/// 640 ms → ms).
const CONSOLE_INDEXES: &str = r#"
CREATE INDEX alerts_by_owner_seen ON alerts (owner, last_seen, id);
CREATE INDEX alerts_by_rule_seen ON alerts (rule, last_seen, id);
CREATE INDEX alerts_by_severity_seen ON alerts (severity, last_seen, id);
"#;

/// Migration 5: receipts of findings recorded since the last checkpoint.
const RECEIPTS: &str = r#"
CREATE TABLE finding_receipts (id TEXT PRIMARY KEY, epoch BIGINT NOT NULL);
CREATE INDEX finding_receipts_epoch ON finding_receipts (epoch);
"#;

/// Migration 6: per-rule statistics per UTC day, per table read, and drifts (rule health).
const RULE_STATS: &str = r#"
CREATE TABLE rule_days (
    rule         TEXT NOT NULL,
    day          TEXT NOT NULL,
    events       {bigint} NOT NULL,
    passed       {bigint} NOT NULL,
    findings     {bigint} NOT NULL,
    errors       {bigint} NOT NULL,
    runs         {bigint} NOT NULL,
    run_failures {bigint} NOT NULL,
    last_error   TEXT,
    first_event  {bigint},
    last_event   {bigint},
    last_passed  {bigint},
    last_finding {bigint},
    state_bytes  {bigint} NOT NULL,
    PRIMARY KEY (rule, day)
);
CREATE TABLE rule_table_days (
    rule       TEXT NOT NULL,
    table_name TEXT NOT NULL,
    day        TEXT NOT NULL,
    events     {bigint} NOT NULL,
    last_event {bigint},
    PRIMARY KEY (rule, table_name, day)
);
CREATE TABLE rule_drifts (
    rule       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    table_name TEXT NOT NULL,
    detail     TEXT NOT NULL,
    first_seen {bigint} NOT NULL,
    last_seen  {bigint} NOT NULL,
    PRIMARY KEY (rule, kind, subject)
);
CREATE INDEX alerts_by_first_seen ON alerts (first_seen);
CREATE INDEX timeline_by_action ON timeline (action, at);
"#;

/// Migration 7: incidents (alerts with one likely cause), the changes that may have caused
/// them, the traffic's baseline counts, and people's verdicts on ranked causes.
const INCIDENTS: &str = r#"
CREATE TABLE incidents (
    id              {serial} PRIMARY KEY,
    flow            TEXT NOT NULL,
    owner           TEXT NOT NULL,
    severity        TEXT NOT NULL,
    status          TEXT NOT NULL,
    first_alert     {bigint} NOT NULL,
    started_at      {bigint} NOT NULL,
    last_at         {bigint} NOT NULL,
    opened_at       {bigint} NOT NULL,
    alerts          {bigint} NOT NULL,
    money_json      TEXT NOT NULL,
    profile_json    TEXT NOT NULL,
    notified_alerts {bigint} NOT NULL,
    next_update_at  {bigint} NOT NULL,
    update_interval {bigint} NOT NULL,
    resolved_at     {bigint},
    root_cause      TEXT
);
CREATE INDEX incidents_by_flow ON incidents (flow, status, last_at);
CREATE INDEX incidents_by_last_at ON incidents (last_at, id);
ALTER TABLE alerts ADD COLUMN incident_id {bigint};
CREATE INDEX alerts_by_incident ON alerts (incident_id, id);
CREATE TABLE changes (
    id          {serial} PRIMARY KEY,
    service     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    version     TEXT,
    at          {bigint} NOT NULL,
    author      TEXT,
    link        TEXT,
    tables_json TEXT NOT NULL,
    description TEXT,
    received_at {bigint} NOT NULL
);
CREATE INDEX changes_by_at ON changes (at);
CREATE TABLE cause_feedback (
    incident_id {bigint} NOT NULL REFERENCES incidents (id),
    cause       TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          {bigint} NOT NULL,
    note        TEXT,
    PRIMARY KEY (incident_id, cause)
);
CREATE TABLE attribution_baseline (
    name         TEXT PRIMARY KEY,
    profile_json TEXT NOT NULL,
    updated_at   {bigint} NOT NULL
);
"#;

/// The migrations, in order, as `dialect` runs them; a store's schema version counts
/// how many have run.
pub(crate) fn migrations(dialect: &Dialect) -> Vec<String> {
    [ALERTS, OUTBOX, ACTIONS, CONSOLE_INDEXES, RECEIPTS, RULE_STATS, INCIDENTS]
        .iter()
        .map(|m| m.replace("{serial}", dialect.serial).replace("{bigint}", dialect.bigint))
        .collect()
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn digests(dialect: &Dialect) -> Vec<String> {
        migrations(dialect).iter().map(|m| hex::encode(Sha256::digest(m.as_bytes()))).collect()
    }

    /// SHA-256 of each migration's text as it shipped, before the stores shared one
    /// schema module: a database migrated then must read as migrated now.
    #[test]
    fn migrations_are_byte_identical_to_what_shipped() {
        assert_eq!(
            digests(&Dialect::SQLITE),
            [
                "fa5f881a80183e3b70c862eea53c1692a4c2c790ee109b13100843979bdbee9e",
                "5d5a8827c1b061b667bef530b706a4dbcc769a450c648676fa0b28204424e315",
                "29c7b4d18db164a95cd8e1b3fe75927cf6456e30f663efa0334312a87203d28e",
                "a02630b29338c4d2c06bd9013b8b2b3d693fe5c2c023ee0c6925b4f0a5a30c30",
                RECEIPTS_SHIPPED,
                "7522e6f42126498c1c36f8573fd7c6029d85dc6b8abcea8de0b6174d5ec197d7",
                "220ea3cbf286aedb4aa5ee41b754902dd4033407250386c0a313fc70a5683373",
            ]
        );
        assert_eq!(
            digests(&Dialect::POSTGRES),
            [
                "92ffe387e30b90dfd083033d99cc7337a9afbf1589ce05e2b032550475a45ad0",
                "854bfd7dbe8363ca6f307bdfc8f11f2d7e14c9f3de74e422d975bde941c26258",
                "29c7b4d18db164a95cd8e1b3fe75927cf6456e30f663efa0334312a87203d28e",
                "a02630b29338c4d2c06bd9013b8b2b3d693fe5c2c023ee0c6925b4f0a5a30c30",
                RECEIPTS_SHIPPED,
                "678997ecae5c7bcce796a749ff6c149bb69d221019229c30d48a03bf6493530f",
                "3be2e65d172a45930572db06ae95b569fb52e98638f206b3889072e11ed4b4d7",
            ]
        );
    }

    const RECEIPTS_SHIPPED: &str = "988d9904af9e4edfaf55c0ae57130e34cd2768528ee4cb97e67decbaf40ca3cd";
}
