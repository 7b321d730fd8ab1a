//! Canal flat messages as Canal writes them to Kafka (`canal.mq.flatMessage=true`).

use fundguard_core::{EventTime, Op, Value};
use fundguard_formats::{Decoded, Format, Skip};

use crate::{dec, decode};

#[test]
fn update_with_two_rows_rebuilds_before_images_from_old() {
    let msg = r#"{"data":[{"id":"11","status":"PAID","pay_amount":"199.90","buyer_id":"18446744073709551615","paid_at":"2024-05-01 08:00:01"},{"id":"12","status":"PAID","pay_amount":"5.00","buyer_id":"3","paid_at":"2024-05-01 08:00:01"}],"database":"shop","es":1714550401000,"id":17,"isDdl":false,"mysqlType":{"id":"bigint(20)","status":"varchar(16)","pay_amount":"decimal(12,2)","buyer_id":"bigint(20) unsigned","paid_at":"datetime"},"old":[{"status":"PAYING","paid_at":null},{"status":"PAYING","paid_at":null}],"pkNames":["id"],"sql":"","sqlType":{"id":-5,"status":12,"pay_amount":3,"buyer_id":-5,"paid_at":93},"table":"orders","ts":1714550401234,"type":"UPDATE"}"#;
    let (decoded, events) = decode(Format::Canal, msg).unwrap();
    assert_eq!(decoded, Decoded::Events(2));
    assert_eq!(events[0].op, Op::Update);
    assert_eq!(&*events[1].table, "shop.orders");
    assert_eq!(events[0].commit_time, EventTime::from_millis(1_714_550_401_000), "es is the commit time");
    let after = events[0].after.as_ref().unwrap();
    let before = events[0].before.as_ref().unwrap();
    assert_eq!(after.get("pay_amount"), Some(&dec("199.90")));
    assert_eq!(after.get("id"), Some(&Value::Int(11)));
    assert_eq!(after.get("buyer_id"), Some(&dec("18446744073709551615")), "unsigned bigint beyond i64 stays exact");
    assert_eq!(after.get("paid_at"), Some(&Value::Timestamp(EventTime::parse("2024-05-01T08:00:01Z").unwrap())));
    assert_eq!(before.get("status"), Some(&Value::String("PAYING".into())));
    assert_eq!(before.get("paid_at"), Some(&Value::Null));
    assert_eq!(before.get("pay_amount"), Some(&dec("199.90")), "unchanged columns come from data");
    assert_eq!(events[1].position.to_string(), "test.jsonl:7#1", "rows of one message are numbered");
}

#[test]
fn insert_and_delete() {
    let insert = r#"{"data":[{"id":"1","amount":"-3"}],"database":"shop","es":1,"id":1,"isDdl":false,"mysqlType":{"id":"int(11)","amount":"decimal(10,0)"},"old":null,"pkNames":["id"],"sql":"","sqlType":{"id":4,"amount":3},"table":"refunds","ts":2,"type":"INSERT"}"#;
    let (_, events) = decode(Format::Canal, insert).unwrap();
    assert_eq!(events[0].op, Op::Insert);
    assert!(events[0].before.is_none());
    assert_eq!(events[0].after.as_ref().unwrap().get("amount"), Some(&dec("-3")));
    let delete = insert.replace("INSERT", "DELETE");
    let (_, events) = decode(Format::Canal, &delete).unwrap();
    assert_eq!(events[0].op, Op::Delete);
    assert!(events[0].after.is_none());
    assert_eq!(events[0].before.as_ref().unwrap().get("id"), Some(&Value::Int(1)));
}

#[test]
fn sql_type_is_the_fallback_when_mysql_type_is_missing() {
    let msg = r#"{"data":[{"id":"5","rate":"0.0060"}],"database":"shop","es":1,"isDdl":false,"sqlType":{"id":-5,"rate":3},"table":"settlements","type":"INSERT"}"#;
    let (_, events) = decode(Format::Canal, msg).unwrap();
    assert_eq!(events[0].after.as_ref().unwrap().get("rate"), Some(&dec("0.0060")));
}

#[test]
fn ddl_is_skipped_and_counted() {
    let ddl = r#"{"data":null,"database":"shop","es":1714550401000,"id":3,"isDdl":true,"mysqlType":null,"old":null,"pkNames":null,"sql":"ALTER TABLE orders ADD COLUMN memo varchar(64)","sqlType":null,"table":"orders","ts":1714550401001,"type":"ALTER"}"#;
    assert_eq!(decode(Format::Canal, ddl).unwrap().0, Decoded::Skipped(Skip::Ddl));
}

#[test]
fn values_that_do_not_fit_their_type_are_errors() {
    let msg = r#"{"data":[{"amount":"12,30"}],"database":"shop","es":1,"isDdl":false,"mysqlType":{"amount":"decimal(10,2)"},"table":"t","type":"INSERT"}"#;
    let err = decode(Format::Canal, msg).unwrap_err().to_string();
    assert!(err.contains("`12,30` is not a valid decimal"), "{err}");
    let msg = r#"{"data":[{"amount":12}],"database":"shop","es":1,"isDdl":false,"table":"t","type":"INSERT"}"#;
    assert!(decode(Format::Canal, msg).unwrap_err().to_string().contains("Canal values are strings"));
    let msg = r#"{"data":[],"database":"shop","es":1,"isDdl":false,"table":"t","type":"INSERT"}"#;
    assert!(decode(Format::Canal, msg).unwrap_err().to_string().contains("no rows"));
}
