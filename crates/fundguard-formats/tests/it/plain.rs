//! Plain JSON business messages.

use fundguard_core::{EventTime, Op, Value};
use fundguard_formats::Format;
use fundguard_formats::plain::{PlainConfig, TableFrom};

use crate::{dec, decode};

#[test]
fn table_from_a_field_and_time_from_epoch_millis() {
    let msg = r#"{"type":"payment_callback","ts":1714550401000,"order_id":"A-7","amount":12.30,"meta":{"retry":1}}"#;
    let (_, events) = decode(Format::Json(PlainConfig::default()), msg).unwrap();
    let e = &events[0];
    assert_eq!(&*e.table, "payment_callback");
    assert_eq!(e.op, Op::Message);
    assert_eq!(e.commit_time, EventTime::from_millis(1_714_550_401_000));
    let row = e.after.as_ref().unwrap();
    assert_eq!(row.get("amount"), Some(&dec("12.30")));
    assert_eq!(row.get("meta"), Some(&Value::Json(r#"{"retry":1}"#.into())));
}

#[test]
fn fixed_table_and_rfc3339_time() {
    let config = PlainConfig { table: TableFrom::Fixed("risk.payouts".into()), time_field: "at".into() };
    let (_, events) = decode(Format::Json(config.clone()), r#"{"at":"2024-05-01T08:00:00+08:00","x":1}"#).unwrap();
    assert_eq!(&*events[0].table, "risk.payouts");
    assert_eq!(events[0].commit_time, EventTime::parse("2024-05-01T00:00:00Z").unwrap());
    let err = decode(Format::Json(config), r#"{"x":1}"#).unwrap_err().to_string();
    assert!(err.contains("no `at` field"), "{err}");
}

#[test]
fn missing_table_field_is_an_error() {
    let err = decode(Format::Json(PlainConfig::default()), r#"{"ts":1}"#).unwrap_err().to_string();
    assert!(err.contains("field `type` must hold the message type"), "{err}");
}
