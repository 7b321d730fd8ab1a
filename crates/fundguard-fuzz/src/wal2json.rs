//! PostgreSQL logical decoding: wal2json (format 2) records, one per line, optionally
//! `LSN<TAB>record`, decoded as the PostgreSQL source does — never a panic.

use std::sync::Arc;

use fundguard_sources::postgres::decode_changes;

pub fn wal2json(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let rows: Vec<(String, String)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| match line.split_once('\t') {
            Some((lsn, record)) => (lsn.to_string(), record.to_string()),
            None => (format!("0/{:X}", 0x16B_3748 + i * 0x40), line.to_string()),
        })
        .collect();
    let out = decode_changes(&Arc::from("pg"), &rows);
    for event in &out.batch.events {
        serde_json::to_vec(event).expect("an event serialises");
    }
    for letter in &out.batch.dead_letters {
        assert!(!letter.reason.is_empty(), "a dead letter without a reason");
    }
}

pub fn seeds() -> Vec<Vec<u8>> {
    let transaction = [
        r#"{"action":"B"}"#,
        r#"{"action":"I","schema":"shop","table":"orders","columns":[{"name":"id","type":"bigint","value":7},{"name":"status","type":"character varying(16)","value":"PAID"},{"name":"pay_amount","type":"numeric(12,2)","value":1000.50},{"name":"paid_at","type":"timestamp with time zone","value":"2024-05-01 12:00:00.123+08"},{"name":"meta","type":"jsonb","value":"{\"a\":1}"},{"name":"ok","type":"boolean","value":true}]}"#,
        r#"{"action":"U","schema":"shop","table":"orders","columns":[{"name":"id","type":"bigint","value":7},{"name":"status","type":"text","value":"REFUNDED"}],"identity":[{"name":"id","type":"bigint","value":7}]}"#,
        r#"{"action":"D","schema":"shop","table":"orders","identity":[{"name":"id","type":"bigint","value":7},{"name":"day","type":"date","value":"2024-05-01"}]}"#,
        r#"{"action":"M","transactional":false,"prefix":"x","content":"y"}"#,
        "0/16B3800\t{\"action\":\"C\",\"timestamp\":\"2024-05-01 12:00:00.123456+08\"}",
    ];
    vec![
        transaction.join("\n").into_bytes(),
        transaction[..3].join("\n").into_bytes(),
        b"{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[{\"name\":\"m\",\"type\":\"money\",\"value\":\"1e400\"}]}\n{\"action\":\"C\",\"timestamp\":\"+262143-01-01 00:00:00+14\"}".to_vec(),
    ]
}

pub const DICTIONARY: &[&str] = &[
    "{\"action\":\"B\"}\n",
    "{\"action\":\"C\",\"timestamp\":\"2024-05-01 12:00:00+08\"}\n",
    "\"action\":\"U\"",
    "\"columns\":",
    "\"identity\":",
    "\"type\":\"numeric\"",
    "\"type\":\"double precision\"",
    "\"type\":\"timestamp with time zone\"",
    "\"type\":\"timestamp without time zone\"",
    "\"type\":\"date\"",
    "\"type\":\"integer\"",
    "\"type\":\"jsonb\"",
    "\"value\":\"NaN\"",
    "\"value\":\"Infinity\"",
    "\"value\":null",
    "\t",
    "0/FFFFFFFF\t",
    "FFFFFFFF/FFFFFFFF\t",
];
