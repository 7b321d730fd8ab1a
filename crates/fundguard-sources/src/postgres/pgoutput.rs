//! The `pgoutput` output plugin, built into PostgreSQL 10+ (what built-in logical
//! replication and Debezium use), protocol version 1: binary messages for begin, commit,
//! relation (a table's columns and their type OIDs), and row changes whose values are the
//! types' text output.
//!
//! A relation message comes before the first change of its table on each replication
//! connection and again after its schema changes, so the decoder keeps the relations it
//! has seen for as long as the connection lasts ([`PgOutput`] is made per connection).

use std::collections::HashMap;
use std::sync::Arc;

use fundguard_core::{EventTime, Op, Row, Value};

use super::replication::PG_EPOCH_MICROS;
use super::types::PgType;
use super::{PostgresBatch, Record, Rejected, RowChange, decode_records};
use crate::batch::{hex, table_matches};

/// The plugin options fundguard streams with: the protocol it speaks and the publications
/// that say which tables the server sends.
pub(super) fn options(publication: &str) -> Vec<(&'static str, String)> {
    vec![
        ("proto_version", "1".to_string()),
        // A list of names: quoted as identifiers, so any name is taken as written.
        ("publication_names", format!("\"{}\"", publication.replace('"', "\"\""))),
    ]
}

/// A decoder for one replication connection's pgoutput messages.
#[derive(Debug, Default)]
pub(super) struct PgOutput {
    /// `schema.table` patterns to keep; empty keeps every table the publication sends.
    include: Vec<String>,
    /// Relations by OID, as their last relation message described them.
    relations: HashMap<u32, Relation>,
}

#[derive(Debug)]
struct Relation {
    table: Arc<str>,
    included: bool,
    columns: Vec<Column>,
}

#[derive(Debug)]
struct Column {
    name: Arc<str>,
    ty: PgType,
    type_name: &'static str,
    /// Part of the replica identity (every column under `REPLICA IDENTITY FULL`).
    identity: bool,
}

/// Which image a tuple is, as its tag says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Image {
    /// `N`: the new row.
    New,
    /// `K`: the old row's replica identity columns (the others are sent as nulls).
    Key,
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    Old,
}

impl PgOutput {
    pub(super) fn new(include: &[String]) -> PgOutput {
        PgOutput { include: include.to_vec(), relations: HashMap::new() }
    }

    /// Reads one message. Never fails: a message that cannot be read, or a change that
    /// cannot be converted, is a [`Rejected`] change of its transaction (a dead letter at
    /// its commit).
    pub(super) fn record(&mut self, data: &[u8]) -> Record {
        match self.read(data) {
            Ok(record) => record,
            // Binary: kept as hex, as the binlog source keeps its events.
            Err(reason) => Record::Change(Err(Rejected { payload: hex(data).into_bytes(), reason })),
        }
    }

    fn read(&mut self, data: &[u8]) -> Result<Record, String> {
        let mut message = Reader(data);
        match message.u8()? {
            b'C' => {
                let _flags = message.u8()?;
                let _commit_lsn = message.u64()?;
                let _end_lsn = message.u64()?;
                let time = message.i64()?;
                // A time outside what a commit can be leaves the changes' own (none): as a
                // wal2json commit whose time does not parse.
                Ok(Record::Commit { time: EventTime::commit_from_micros(time.saturating_add(PG_EPOCH_MICROS)).ok() })
            }
            b'R' => {
                self.relation(&mut message)?;
                Ok(Record::Other)
            }
            b'I' => {
                let Some(relation) = self.relation_of(&mut message)? else { return Ok(Record::Other) };
                expect_tag(&mut message, b'N')?;
                let after = relation.tuple(&mut message, Image::New)?;
                Ok(Record::Change(Ok(relation.change(Op::Insert, None, Some(after)))))
            }
            b'U' => {
                let Some(relation) = self.relation_of(&mut message)? else { return Ok(Record::Other) };
                let mut before = None;
                let mut tag = message.u8()?;
                if tag == b'K' || tag == b'O' {
                    let image = if tag == b'K' { Image::Key } else { Image::Old };
                    before = Some(relation.tuple(&mut message, image)?);
                    tag = message.u8()?;
                }
                if tag != b'N' {
                    return Err(format!("an update without its new row (tag `{}`)", tag.escape_ascii()));
                }
                let after = relation.tuple(&mut message, Image::New)?;
                // The old key is sent only when it changed: otherwise it is the new row's, as
                // wal2json reports it too.
                let before = before.unwrap_or_else(|| relation.identity_of(&after));
                let before = (!before.is_empty()).then_some(before);
                Ok(Record::Change(Ok(relation.change(Op::Update, before, Some(after)))))
            }
            b'D' => {
                let Some(relation) = self.relation_of(&mut message)? else { return Ok(Record::Other) };
                let image = match message.u8()? {
                    b'K' => Image::Key,
                    b'O' => Image::Old,
                    tag => return Err(format!("a delete without its old row (tag `{}`)", tag.escape_ascii())),
                };
                let before = relation.tuple(&mut message, image)?;
                Ok(Record::Change(Ok(relation.change(Op::Delete, Some(before), None))))
            }
            // Begin (its commit comes with the commit message), origin, type (user types are
            // read as text, so their names are not needed), truncate (no rows), logical
            // decoding messages.
            b'B' | b'O' | b'Y' | b'T' | b'M' => Ok(Record::Other),
            other => Err(format!("an unknown pgoutput message `{}` (protocol version 1)", other.escape_ascii())),
        }
    }

    /// Reads a relation message and keeps what it says, replacing an older description.
    fn relation(&mut self, message: &mut Reader<'_>) -> Result<(), String> {
        let oid = message.u32()?;
        let schema = message.string()?;
        let name = message.string()?;
        let _replica_identity = message.u8()?;
        let count = message.u16()?;
        let mut columns = Vec::with_capacity(usize::from(count).min(message.0.len()));
        for _ in 0..count {
            let flags = message.u8()?;
            let column = message.string()?;
            let (ty, type_name) = PgType::of_oid(message.u32()?);
            let _typmod = message.i32()?;
            columns.push(Column { name: Arc::from(column), ty, type_name, identity: flags & 1 == 1 });
        }
        let schema = if schema.is_empty() { "pg_catalog" } else { schema };
        let table = format!("{schema}.{name}");
        let included = self.include.is_empty() || self.include.iter().any(|p| table_matches(p, &table));
        self.relations.insert(oid, Relation { table: Arc::from(table), included, columns });
        Ok(())
    }

    /// The relation a change names, or `None` when it is not included.
    fn relation_of(&self, message: &mut Reader<'_>) -> Result<Option<&Relation>, String> {
        let oid = message.u32()?;
        let relation = self
            .relations
            .get(&oid)
            .ok_or_else(|| format!("a change of relation {oid}, which no relation message described"))?;
        Ok(relation.included.then_some(relation))
    }
}

impl Relation {
    fn change(&self, op: Op, before: Option<Row>, after: Option<Row>) -> RowChange {
        RowChange { table: self.table.clone(), op, before, after, time: None }
    }

    /// A tuple's row: null columns are null, unchanged TOASTed values (not sent) are left
    /// out, and a key image keeps only the replica identity columns.
    fn tuple(&self, message: &mut Reader<'_>, image: Image) -> Result<Row, String> {
        let count = usize::from(message.u16()?);
        if count != self.columns.len() {
            return Err(format!(
                "a row of {count} columns for `{}`, described with {}: a relation message is missing",
                self.table,
                self.columns.len()
            ));
        }
        let mut row = Row::with_capacity(count);
        for column in &self.columns {
            let value = match message.u8()? {
                b'n' => Some(Value::Null),
                b'u' => None,
                b't' => {
                    let length = message.u32()? as usize;
                    let bytes = message.take(length)?;
                    let text = std::str::from_utf8(bytes)
                        .map_err(|_| format!("column `{}.{}`: not UTF-8 text", self.table, column.name))?;
                    let value = column
                        .ty
                        .value(text, column.type_name)
                        .map_err(|e| format!("column `{}.{}`: {e}", self.table, column.name))?;
                    Some(value)
                }
                tag => {
                    return Err(format!(
                        "column `{}.{}`: value kind `{}` (fundguard asks for text values)",
                        self.table,
                        column.name,
                        tag.escape_ascii()
                    ));
                }
            };
            if let Some(value) = value
                && (image != Image::Key || column.identity)
            {
                row.push(column.name.clone(), value);
            }
        }
        Ok(row)
    }

    /// The replica identity columns of a new row (the old key of an update that kept it).
    fn identity_of(&self, row: &Row) -> Row {
        let mut key = Row::new();
        for column in self.columns.iter().filter(|c| c.identity) {
            if let Some(value) = row.get(&column.name) {
                key.push(column.name.clone(), value.clone());
            }
        }
        key
    }
}

/// Turns `(lsn, pgoutput message)` rows of one connection into events, up to the last
/// whole transaction (see [`decode_records`]). Pure (no server), for tests and fuzzing.
pub fn decode_messages(source: &Arc<str>, include: &[String], rows: &[(String, Vec<u8>)]) -> PostgresBatch {
    let mut decoder = PgOutput::new(include);
    let records: Vec<(String, Record)> = rows.iter().map(|(lsn, data)| (lsn.clone(), decoder.record(data))).collect();
    decode_records(source, records)
}

fn expect_tag(message: &mut Reader<'_>, tag: u8) -> Result<(), String> {
    match message.u8()? {
        t if t == tag => Ok(()),
        t => Err(format!("expected tuple `{}`, found `{}`", tag as char, t.escape_ascii())),
    }
}

/// Big-endian fields off the front of a message; running out is an error, never a panic.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("a message cut short: {n} more bytes expected, {} left", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A NUL-terminated UTF-8 string.
    fn string(&mut self) -> Result<&'a str, String> {
        let end = self.0.iter().position(|&b| b == 0).ok_or("a string without its terminating NUL")?;
        let text = std::str::from_utf8(&self.0[..end]).map_err(|_| "a name that is not UTF-8".to_string())?;
        self.0 = &self.0[end + 1..];
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::wal2json;
    use proptest::prelude::*;

    /// A column value as pgoutput sends it: `None` is SQL NULL, `Some(None)` an unchanged
    /// TOASTed value (not sent).
    type Sent<'a> = Option<Option<&'a str>>;

    fn relation(oid: u32, schema: &str, name: &str, columns: &[(u8, &str, u32)]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(oid.to_be_bytes());
        for text in [schema, name] {
            m.extend(text.as_bytes());
            m.push(0);
        }
        m.push(b'd');
        m.extend((columns.len() as u16).to_be_bytes());
        for (flags, column, ty) in columns {
            m.push(*flags);
            m.extend(column.as_bytes());
            m.push(0);
            m.extend(ty.to_be_bytes());
            m.extend((-1i32).to_be_bytes());
        }
        m
    }

    fn tuple(m: &mut Vec<u8>, tag: u8, values: &[Sent<'_>]) {
        m.push(tag);
        m.extend((values.len() as u16).to_be_bytes());
        for value in values {
            match value {
                None => m.push(b'n'),
                Some(None) => m.push(b'u'),
                Some(Some(text)) => {
                    m.push(b't');
                    m.extend((text.len() as u32).to_be_bytes());
                    m.extend(text.as_bytes());
                }
            }
        }
    }

    fn row_message(kind: u8, oid: u32, tuples: &[(u8, &[Sent<'_>])]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend(oid.to_be_bytes());
        for (tag, values) in tuples {
            tuple(&mut m, *tag, values);
        }
        m
    }

    fn begin() -> Vec<u8> {
        let mut m = vec![b'B'];
        m.extend([0; 20]);
        m
    }

    fn commit(micros_since_2000: i64) -> Vec<u8> {
        let mut m = vec![b'C', 0];
        m.extend([0; 16]);
        m.extend(micros_since_2000.to_be_bytes());
        m
    }

    const ORDERS: [(u8, &str, u32); 5] =
        [(1, "id", 20), (0, "amount", 1700), (0, "paid", 16), (0, "at", 1184), (0, "note", 25)];

    /// pgoutput messages and the wal2json records of the same transaction decode to the
    /// same events, positions and dead letters.
    fn same_as_wal2json(messages: &[Vec<u8>], records: &[&str]) {
        let lsn = |i: usize| format!("0/{:X}", 0x100 + i);
        let ours: Vec<(String, Vec<u8>)> = messages.iter().enumerate().map(|(i, m)| (lsn(i), m.clone())).collect();
        let theirs: Vec<(String, String)> = records.iter().enumerate().map(|(i, r)| (lsn(i), r.to_string())).collect();
        let (ours, theirs) =
            (decode_messages(&Arc::from("pg"), &[], &ours), wal2json::decode_changes(&Arc::from("pg"), &theirs));
        assert_eq!(ours.confirm, theirs.confirm);
        let shown = |batch: &crate::DecodedBatch| -> Vec<String> {
            batch.events.iter().map(|e| serde_json::to_string(e).unwrap()).collect()
        };
        assert_eq!(shown(&ours.batch), shown(&theirs.batch));
        assert!(!ours.batch.events.is_empty());
    }

    #[test]
    fn changes_decode_as_wal2json_reports_them() {
        let row = |id: &'static str, amount: &'static str| -> [Sent<'static>; 5] {
            [Some(Some(id)), Some(Some(amount)), Some(Some("t")), Some(Some("2026-11-25 13:12:28.605151+00")), None]
        };
        let messages = [
            begin(),
            relation(16385, "shop", "orders", &ORDERS),
            row_message(b'I', 16385, &[(b'N', &row("1", "12345678901234567.25"))]),
            // The key kept: no old tuple; wal2json reports the new row's key.
            row_message(b'U', 16385, &[(b'N', &row("1", "2.00"))]),
            // The key changed: the old key, other columns sent as nulls.
            row_message(b'U', 16385, &[(b'K', &[Some(Some("1")), None, None, None, None]), (b'N', &row("2", "2.00"))]),
            row_message(b'D', 16385, &[(b'K', &[Some(Some("2")), None, None, None, None])]),
            commit(817_000_000_000_000),
        ];
        let columns = |id: u32, amount: &str| {
            format!(
                r#"[{{"name":"id","type":"bigint","value":{id}}},{{"name":"amount","type":"numeric","value":{amount}}},{{"name":"paid","type":"boolean","value":true}},{{"name":"at","type":"timestamp with time zone","value":"2026-11-25 13:12:28.605151+00"}},{{"name":"note","type":"text","value":null}}]"#
            )
        };
        let key = |id: u32| format!(r#"[{{"name":"id","type":"bigint","value":{id}}}]"#);
        let records = [
            r#"{"action":"B"}"#.to_string(),
            r#"{"action":"M"}"#.to_string(),
            format!(
                r#"{{"action":"I","schema":"shop","table":"orders","columns":{}}}"#,
                columns(1, "12345678901234567.25")
            ),
            format!(
                r#"{{"action":"U","schema":"shop","table":"orders","columns":{},"identity":{}}}"#,
                columns(1, "2.00"),
                key(1)
            ),
            format!(
                r#"{{"action":"U","schema":"shop","table":"orders","columns":{},"identity":{}}}"#,
                columns(2, "2.00"),
                key(1)
            ),
            format!(r#"{{"action":"D","schema":"shop","table":"orders","identity":{}}}"#, key(2)),
            r#"{"action":"C","timestamp":"2025-11-21 00:26:40+00"}"#.to_string(),
        ];
        let records: Vec<&str> = records.iter().map(String::as_str).collect();
        same_as_wal2json(&messages, &records);
    }

    #[test]
    fn full_identity_sends_the_old_row_and_toasted_values_are_left_out() {
        let mut decoder = PgOutput::new(&[]);
        decoder.record(&relation(7, "", "t", &[(1, "id", 23), (1, "big", 25)]));
        let update = row_message(
            b'U',
            7,
            &[(b'O', &[Some(Some("1")), Some(Some("old"))]), (b'N', &[Some(Some("1")), Some(None)])],
        );
        let Record::Change(Ok(change)) = decoder.record(&update) else { panic!("an update") };
        assert_eq!(&*change.table, "pg_catalog.t");
        assert_eq!(change.before.unwrap().get("big"), Some(&Value::from("old")));
        let after = change.after.unwrap();
        assert_eq!(after.get("big"), None, "an unchanged TOASTed value is not sent, so not known");
        assert_eq!(after.get("id"), Some(&Value::Int(1)));
    }

    #[test]
    fn a_new_relation_message_replaces_the_old_description() {
        let mut decoder = PgOutput::new(&["shop.*".to_string()]);
        decoder.record(&relation(1, "shop", "t", &[(1, "id", 20)]));
        // After `ADD COLUMN`, the server describes the table again before its next change.
        decoder.record(&relation(1, "shop", "t", &[(1, "id", 20), (0, "note", 25)]));
        let Record::Change(Ok(change)) = decoder.record(&row_message(b'I', 1, &[(b'N', &[Some(Some("5")), None])]))
        else {
            panic!("an insert")
        };
        assert_eq!(change.after.unwrap().len(), 2);
        // A row that does not fit its description is a dead letter that says so.
        let Record::Change(Err(rejected)) = decoder.record(&row_message(b'I', 1, &[(b'N', &[Some(Some("5"))])])) else {
            panic!("rejected")
        };
        assert!(rejected.reason.contains("a relation message is missing"), "{}", rejected.reason);
        assert!(rejected.payload.iter().all(u8::is_ascii_hexdigit), "a binary message is kept as hex");
        // An unknown relation, a bad value: dead letters with reasons.
        let Record::Change(Err(rejected)) = decoder.record(&row_message(b'I', 2, &[(b'N', &[])])) else { panic!() };
        assert!(rejected.reason.contains("relation 2"), "{}", rejected.reason);
        decoder.record(&relation(3, "shop", "n", &[(1, "amount", 1700)]));
        let Record::Change(Err(rejected)) = decoder.record(&row_message(b'I', 3, &[(b'N', &[Some(Some("NaN"))])]))
        else {
            panic!()
        };
        assert!(rejected.reason.contains("`shop.n.amount`") && rejected.reason.contains("NaN"), "{}", rejected.reason);
        // Tables outside `include` are skipped, not rejected.
        decoder.record(&relation(4, "other", "t", &[(1, "id", 20)]));
        assert!(matches!(decoder.record(&row_message(b'I', 4, &[(b'N', &[Some(Some("1"))])])), Record::Other));
    }

    /// Values of the types fundguard reads, as text, with the wal2json type and JSON value of
    /// the same column.
    fn typed_value() -> impl Strategy<Value = (u32, &'static str, Option<String>, String)> {
        prop_oneof![
            any::<i64>().prop_map(|i| (20, "bigint", Some(i.to_string()), i.to_string())),
            (any::<i64>(), 0u32..10).prop_map(|(u, s)| {
                let d = fundguard_core::Decimal::new(u, s).to_string();
                (1700, "numeric", Some(d.clone()), d)
            }),
            any::<bool>().prop_map(|b| (16, "boolean", Some(if b { "t" } else { "f" }.into()), b.to_string())),
            "[a-zé\"\\\\ ]{0,12}".prop_map(|t| (25, "text", Some(t.clone()), serde_json::to_string(&t).unwrap())),
            (0i64..4_000_000_000_000_000).prop_map(|m| {
                let at =
                    chrono::DateTime::from_timestamp_micros(m).unwrap().format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
                (1184, "timestamp with time zone", Some(at.clone()), format!("\"{at}\""))
            }),
            Just((1700, "numeric", None, "null".to_string())),
        ]
    }

    proptest! {
        #[test]
        fn random_rows_decode_as_their_wal2json_records(
            rows in proptest::collection::vec(proptest::collection::vec(typed_value(), 1..6), 1..4),
        ) {
            let mut messages = vec![begin()];
            let mut records = vec![r#"{"action":"B"}"#.to_string()];
            for (i, row) in rows.iter().enumerate() {
                let oid = i as u32 + 1;
                let columns: Vec<(u8, String, u32)> = row.iter().enumerate().map(|(c, (ty, ..))| (0, format!("c{c}"), *ty)).collect();
                let columns: Vec<(u8, &str, u32)> = columns.iter().map(|(f, n, t)| (*f, n.as_str(), *t)).collect();
                messages.push(relation(oid, "s", &format!("t{i}"), &columns));
                records.push(r#"{"action":"M"}"#.to_string());
                let sent: Vec<Sent<'_>> = row.iter().map(|(_, _, text, _)| text.as_deref().map(Some)).collect();
                messages.push(row_message(b'I', oid, &[(b'N', &sent)]));
                let json: Vec<String> = row
                    .iter()
                    .enumerate()
                    .map(|(c, (_, name, _, value))| format!(r#"{{"name":"c{c}","type":"{name}","value":{value}}}"#))
                    .collect();
                records.push(format!(r#"{{"action":"I","schema":"s","table":"t{i}","columns":[{}]}}"#, json.join(",")));
            }
            messages.push(commit(0));
            records.push(r#"{"action":"C","timestamp":"2000-01-01 00:00:00+00"}"#.to_string());
            let records: Vec<&str> = records.iter().map(String::as_str).collect();
            same_as_wal2json(&messages, &records);
        }

        #[test]
        fn no_message_bytes_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80), kind in 0usize..6) {
            let mut decoder = PgOutput::new(&[]);
            decoder.record(&relation(1, "s", "t", &ORDERS));
            let mut message = vec![b"IUDRCB"[kind]];
            message.extend(1u32.to_be_bytes());
            message.extend(&bytes);
            let _ = decoder.record(&message);
            let _ = decoder.record(&bytes);
        }
    }
}
