//! Debezium messages as the MySQL and PostgreSQL connectors write them with the JSON converter.

use fundguard_core::{EventTime, Op, Value};
use fundguard_formats::{Decoded, Format, Skip};

use crate::{dec, decode};

/// An update from the MySQL connector with `schemas.enable=true` and the default
/// `decimal.handling.mode=precise`: `amount` is DECIMAL(10,2) as base64 bytes.
const MYSQL_WITH_SCHEMA: &str = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"amount"},{"type":"string","optional":true,"field":"status"},{"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","version":1,"field":"paid_at"},{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"updated_at"},{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"biz_date"},{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"extra"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"field":"fx_rate"}],"optional":true,"name":"shop.shop.payments.Value","field":"before"},{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"amount"},{"type":"string","optional":true,"field":"status"},{"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","version":1,"field":"paid_at"},{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"updated_at"},{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"biz_date"},{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"extra"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"field":"fx_rate"}],"optional":true,"name":"shop.shop.payments.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"table"}],"optional":false,"name":"io.debezium.connector.mysql.Source","field":"source"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}],"optional":false,"name":"shop.shop.payments.Envelope","version":1},"payload":{"before":{"id":1001,"amount":"JxA=","status":"INIT","paid_at":null,"updated_at":"2024-05-01T08:00:00Z","biz_date":19844,"extra":"{\"channel\":\"alipay\"}","fx_rate":{"scale":4,"value":"AQ=="}},"after":{"id":1001,"amount":"JxA=","status":"SUCCESS","paid_at":1714550401250,"updated_at":"2024-05-01T08:00:01.25Z","biz_date":19844,"extra":"{\"channel\":\"alipay\"}","fx_rate":{"scale":4,"value":"AQ=="}},"source":{"version":"2.7.3.Final","connector":"mysql","name":"shop","ts_ms":1714550401000,"snapshot":"false","db":"shop","sequence":null,"table":"payments","server_id":223344,"gtid":null,"file":"mysql-bin.000003","pos":484,"row":0,"thread":7,"query":null},"op":"u","ts_ms":1714550401321,"transaction":null}}"#;

#[test]
fn mysql_update_with_schema_decodes_exact_types() {
    let (decoded, events) = decode(Format::Debezium, MYSQL_WITH_SCHEMA).unwrap();
    assert_eq!(decoded, Decoded::Events(1));
    let e = &events[0];
    assert_eq!(&*e.table, "shop.payments");
    assert_eq!(e.op, Op::Update);
    // source.ts_ms is the commit time; the envelope's ts_ms (processing time) is not.
    assert_eq!(e.commit_time, EventTime::from_millis(1_714_550_401_000));
    let after = e.after.as_ref().unwrap();
    assert_eq!(after.get("amount"), Some(&dec("100.00")), "JxA= is 0x2710 = 10000 at scale 2");
    assert_eq!(after.get("paid_at"), Some(&Value::Timestamp(EventTime::from_millis(1_714_550_401_250))));
    assert_eq!(after.get("updated_at"), Some(&Value::Timestamp(EventTime::parse("2024-05-01T08:00:01.25Z").unwrap())));
    assert_eq!(after.get("biz_date"), Some(&Value::Timestamp(EventTime::parse("2024-05-01").unwrap())));
    assert_eq!(after.get("extra"), Some(&Value::Json("{\"channel\":\"alipay\"}".into())));
    assert_eq!(after.get("fx_rate"), Some(&dec("0.0001")));
    assert_eq!(e.before.as_ref().unwrap().get("status"), Some(&Value::String("INIT".into())));
    assert_eq!(e.before.as_ref().unwrap().get("paid_at"), Some(&Value::Null));
}

#[test]
fn without_wrapper_and_string_decimals() {
    // `schemas.enable=false`, `decimal.handling.mode=string`: the payload is the whole message.
    let msg = r#"{"before":null,"after":{"id":7,"pay_amount":"1999.90","status":"PAID"},"source":{"version":"2.7.3.Final","connector":"mysql","name":"shop","ts_ms":1714550401000,"db":"shop","table":"orders"},"op":"c","ts_ms":1714550401100}"#;
    let (_, events) = decode(Format::Debezium, msg).unwrap();
    let e = &events[0];
    assert_eq!(e.op, Op::Insert);
    assert!(e.before.is_none());
    // Without a schema a string stays a string; a declared schema (tested below) makes it exact.
    assert_eq!(e.after.as_ref().unwrap().get("pay_amount"), Some(&Value::String("1999.90".into())));
    let schemas = fundguard_core::TableSchemas {
        tables: [("shop.orders".to_string(), [("pay_amount".to_string(), fundguard_core::ColumnType::Decimal)].into())]
            .into(),
    };
    let (_, events) = crate::decode_with(Format::Debezium, schemas, msg).unwrap();
    assert_eq!(events[0].after.as_ref().unwrap().get("pay_amount"), Some(&dec("1999.90")));
}

#[test]
fn string_mode_decimal_with_propagated_source_type() {
    let msg = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"string","optional":false,"parameters":{"__debezium.source.column.type":"DECIMAL","__debezium.source.column.length":"12","__debezium.source.column.scale":"2"},"field":"amount"}],"optional":true,"field":"after"}],"optional":false},"payload":{"before":null,"after":{"amount":"-0.50"},"source":{"connector":"mysql","ts_ms":1,"db":"shop","table":"refunds"},"op":"r","ts_ms":2}}"#;
    let (_, events) = decode(Format::Debezium, msg).unwrap();
    assert_eq!(events[0].op, Op::Insert, "snapshot reads are inserts");
    assert_eq!(events[0].after.as_ref().unwrap().get("amount"), Some(&dec("-0.50")));
}

#[test]
fn postgres_delete_uses_schema_name_and_microsecond_commit_time() {
    let msg = r#"{"before":{"id":3,"amount":"12.30"},"after":null,"source":{"version":"2.7.3.Final","connector":"postgresql","name":"pg","ts_ms":1714550401000,"ts_us":1714550401000123,"snapshot":"false","db":"shop","schema":"public","table":"refunds","txId":771,"lsn":24023128},"op":"d","ts_ms":1714550401500}"#;
    let (_, events) = decode(Format::Debezium, msg).unwrap();
    let e = &events[0];
    assert_eq!(&*e.table, "public.refunds");
    assert_eq!(e.op, Op::Delete);
    assert_eq!(e.commit_time, EventTime::from_micros(1_714_550_401_000_123));
    assert!(e.after.is_none());
}

#[test]
fn tombstones_and_control_events_carry_no_rows() {
    assert_eq!(decode(Format::Debezium, "null").unwrap().0, Decoded::Skipped(Skip::Tombstone));
    assert_eq!(decode(Format::Debezium, "").unwrap().0, Decoded::Skipped(Skip::Tombstone));
    assert_eq!(
        decode(Format::Debezium, r#"{"schema":{"type":"struct"},"payload":null}"#).unwrap().0,
        Decoded::Skipped(Skip::Tombstone)
    );
    let truncate = r#"{"before":null,"after":null,"source":{"connector":"mysql","ts_ms":1,"db":"shop","table":"orders"},"op":"t","ts_ms":2}"#;
    assert_eq!(decode(Format::Debezium, truncate).unwrap().0, Decoded::Skipped(Skip::Control));
}

#[test]
fn bad_messages_say_what_was_expected() {
    let cases = [
        ("{not json", "not valid JSON"),
        (r#"{"after":{"id":1},"source":{"db":"shop","table":"t","ts_ms":1}}"#, "no `op` field"),
        (r#"{"after":{"id":1},"op":"x","source":{"db":"shop","table":"t","ts_ms":1}}"#, "unknown Debezium op `x`"),
        (r#"{"after":{"id":1},"op":"c","source":{"db":"shop","ts_ms":1}}"#, "`source.table` is missing"),
        (r#"{"after":null,"op":"c","source":{"db":"shop","table":"t","ts_ms":1}}"#, "without an `after` image"),
        (r#"{"after":{"id":1},"op":"c","source":{"db":"shop","table":"t"}}"#, "no commit time"),
    ];
    for (msg, expected) in cases {
        let err = decode(Format::Debezium, msg).unwrap_err().to_string();
        assert!(err.contains(expected), "{msg}: got `{err}`, expected it to mention `{expected}`");
    }
}
