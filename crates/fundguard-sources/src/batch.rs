//! What a source that decodes its own log (binlog, logical decoding) hands the pipeline.

use fundguard_core::{ChangeEvent, EventTime, Position};

/// Events decoded from a database's log, with the rows that could not be decoded.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    pub events: Vec<ChangeEvent>,
    pub dead_letters: Vec<DeadLetter>,
    /// The server said it has nothing more to send (a binlog heartbeat, an empty slot):
    /// every change it sends later commits at or after this time, so the source's event
    /// time may move here — deadlines fire although no event comes.
    pub caught_up: Option<EventTime>,
    /// Schema statements (DDL) the log carried: changes alarm attribution ranks.
    pub schema_statements: Vec<SchemaStatement>,
}

/// One DDL statement of a database log (`ALTER TABLE items DROP COLUMN note`).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaStatement {
    /// When it committed.
    pub at: EventTime,
    /// The database it ran in (unqualified table names belong to it).
    pub database: String,
    pub statement: String,
}

/// Whether a statement changes a schema (rather than a transaction's `BEGIN`, a `SAVEPOINT`).
pub fn is_schema_statement(statement: &str) -> bool {
    let first = statement.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    matches!(first.as_str(), "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE")
}

impl DecodedBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.dead_letters.is_empty() && self.schema_statements.is_empty()
    }

    pub fn len(&self) -> usize {
        self.events.len() + self.dead_letters.len()
    }
}

/// The offset of a server's clock from ours (server minus local, in microseconds), from
/// one reading of the server's clock taken between two of ours.
pub(crate) fn clock_offset(local_before: i64, server: i64, local_after: i64) -> i64 {
    server - (local_before / 2 + local_after / 2)
}

/// The local wall clock in microseconds since the epoch.
pub(crate) fn local_micros() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

/// A row the source could not turn into an event: what it was, where, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// A readable rendering of the raw row (the source's own representation).
    pub payload: Vec<u8>,
    pub position: Position,
    pub reason: String,
}

/// Binary log bytes as hex text: how a dead letter keeps an event that is not text.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a `db.table` (`schema.table`) name matches an `include`/`exclude` pattern with `*`
/// wildcards (`shop.*`, `*.payments`, `shop.pay*`).
pub(crate) fn table_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_patterns() {
        assert!(table_matches("shop.*", "shop.orders"));
        assert!(table_matches("*.orders", "shop.orders"));
        assert!(table_matches("shop.pay*", "shop.payments"));
        assert!(!table_matches("shop.pay*", "shop.orders"));
        assert!(!table_matches("shop.orders", "shop.orders_archive"));
        assert!(table_matches("*", "x.y"));
    }
}
