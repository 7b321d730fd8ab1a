//! Maxwell's daemon messages, as in its documentation.

use fundguard_core::{EventTime, Op, Value};
use fundguard_formats::{Decoded, Format, Skip};

use crate::{dec, decode};

#[test]
fn update_keeps_decimal_digits_and_builds_before_from_old() {
    let msg = r#"{"database":"shop","table":"payments","type":"update","ts":1714550401,"xid":940752,"commit":true,"position":"mysql-bin.000003:4521","data":{"id":42,"amount":1999.90,"status":"SUCCESS","created_at":"2024-05-01 08:00:00"},"old":{"status":"INIT"}}"#;
    let (_, events) = decode(Format::Maxwell, msg).unwrap();
    let e = &events[0];
    assert_eq!(e.op, Op::Update);
    assert_eq!(e.commit_time, EventTime::from_secs(1_714_550_401));
    assert_eq!(e.after.as_ref().unwrap().get("amount"), Some(&dec("1999.90")), "trailing zero kept: not a float");
    assert_eq!(e.before.as_ref().unwrap().get("status"), Some(&Value::String("INIT".into())));
    assert_eq!(e.before.as_ref().unwrap().get("amount"), Some(&dec("1999.90")));
}

#[test]
fn bootstrap_rows_are_inserts_and_markers_are_control() {
    let row = r#"{"database":"shop","table":"orders","type":"bootstrap-insert","ts":1,"data":{"id":1}}"#;
    assert_eq!(decode(Format::Maxwell, row).unwrap().1[0].op, Op::Insert);
    let start = r#"{"database":"shop","table":"orders","type":"bootstrap-start","ts":1,"data":{}}"#;
    assert_eq!(decode(Format::Maxwell, start).unwrap().0, Decoded::Skipped(Skip::Control));
}

#[test]
fn ddl_is_skipped() {
    let ddl = r#"{"type":"table-alter","database":"shop","table":"orders","old":{"database":"shop","charset":"utf8","table":"orders","columns":[]},"def":{"database":"shop","charset":"utf8","table":"orders","columns":[]},"ts":1714550401,"sql":"ALTER TABLE orders ADD memo varchar(64)","position":"mysql-bin.000003:777"}"#;
    assert_eq!(decode(Format::Maxwell, ddl).unwrap().0, Decoded::Skipped(Skip::Ddl));
}

#[test]
fn ts_ms_refines_the_commit_time_and_delete_has_only_before() {
    let msg =
        r#"{"database":"shop","table":"orders","type":"delete","ts":1714550401,"ts_ms":1714550401250,"data":{"id":9}}"#;
    let (_, events) = decode(Format::Maxwell, msg).unwrap();
    assert_eq!(events[0].commit_time, EventTime::from_millis(1_714_550_401_250));
    assert!(events[0].after.is_none());
    assert_eq!(events[0].before.as_ref().unwrap().get("id"), Some(&Value::Int(9)));
}
