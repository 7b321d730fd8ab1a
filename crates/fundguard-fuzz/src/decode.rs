//! Every change-log decoder on arbitrary bytes: events or a reason, never a panic; and
//! what a decoder lets through holds what the pipeline relies on.

use std::collections::HashMap;
use std::sync::Arc;

use fundguard_core::{ChangeEvent, Position, Projection, TableColumns};
use fundguard_formats::Format;
use fundguard_formats::plain::{PlainConfig, TableFrom};

use crate::seeds;

pub fn decode(data: &[u8]) {
    for format in formats() {
        let mut whole = Vec::new();
        let mut projected = Vec::new();
        let decoded = [(Projection::all(), &mut whole), (projection(), &mut projected)].map(|(projection, out)| {
            let mut decoder = format.decoder(seeds::schemas());
            decoder.set_projection(projection);
            let position = Position::Line { input: Arc::from("fuzz"), line: 1, index: 0 };
            match decoder.decode(data, &position, out) {
                Ok(_) => {
                    out.iter().for_each(check_event);
                    true
                }
                Err(e) => {
                    assert!(out.is_empty(), "{}: a refused message left events behind", format.name());
                    check_reason(&e.to_string(), data);
                    false
                }
            }
        });
        // Converting fewer columns checks fewer values: never more refusals, never other rows.
        if decoded[0] {
            assert!(decoded[1], "{}: a projection refused what whole decoding accepts", format.name());
            assert_eq!(projected, whole, "{}: a projected row differs from the whole row", format.name());
        }
    }
}

/// Two columns of one table read; every other table has none read.
fn projection() -> Projection {
    let read = TableColumns::Only(Arc::new(["amount".into(), "status".into()].into_iter().collect()));
    Projection::only(HashMap::from([("shop.t".into(), read)]))
}

/// Every format fundguard decodes, plain JSON both with its table in a field and fixed.
pub fn formats() -> Vec<Format> {
    let fixed = PlainConfig { table: TableFrom::Fixed("shop.t".into()), time_field: "ts".into() };
    vec![Format::Debezium, Format::Canal, Format::Maxwell, Format::Json(PlainConfig::default()), Format::Json(fixed)]
}

/// What every decoded event holds: a commit time in the range the pipeline's arithmetic
/// is safe in (decoders dead-letter the rest), and a JSON form (dead letters, evidence).
pub fn check_event(e: &ChangeEvent) {
    assert!(e.commit_time.is_commit_time(), "a decoder let commit time {}us through", e.commit_time.as_micros());
    serde_json::to_vec(e).expect("a decoded event serialises");
}

/// A refusal says why, and does not repeat the input many times over.
pub fn check_reason(reason: &str, input: &[u8]) {
    assert!(!reason.is_empty(), "a refusal without a reason");
    assert!(
        reason.len() <= 2 * input.len() + 1024,
        "a reason of {} bytes for {} bytes of input",
        reason.len(),
        input.len()
    );
}

pub fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = seeds::messages().into_iter().map(String::into_bytes).collect();
    seeds.extend(seeds::ODD_MESSAGES.iter().map(|m| m.as_bytes().to_vec()));
    seeds
}

pub const DICTIONARY: &[&str] = &[
    "\"schema\":",
    "\"payload\":",
    "\"before\":",
    "\"after\":",
    "\"source\":",
    "\"op\":\"u\"",
    "\"op\":\"d\"",
    "\"ts_ms\":",
    "\"ts_us\":",
    "\"ts\":",
    "\"es\":",
    "\"data\":",
    "\"old\":",
    "\"type\":",
    "\"isDdl\":",
    "\"mysqlType\":",
    "\"sqlType\":",
    "\"fields\":",
    "\"field\":",
    "\"name\":\"org.apache.kafka.connect.data.Decimal\"",
    "\"name\":\"io.debezium.data.VariableScaleDecimal\"",
    "\"name\":\"io.debezium.time.NanoTimestamp\"",
    "\"name\":\"io.debezium.time.Date\"",
    "\"name\":\"io.debezium.time.ZonedTimestamp\"",
    "\"parameters\":{\"scale\":\"99\"}",
    "\"__debezium.source.column.type\":\"DECIMAL\"",
    "\"decimal(65,30)\"",
    "\"datetime(6)\"",
    "\"bigint(20) unsigned\"",
    "\"tinyint(1)\"",
    "\"////////////////////w==\"",
    "\"+262143-12-31T23:59:59Z\"",
    "\"9999-12-31 23:59:59.999999\"",
    "\"\\ud800\"",
    "null",
    "true",
    "[]",
    "{}",
];
