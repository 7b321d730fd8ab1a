//! Properties: no decoder panics on any input, and what an encoder writes decodes back to the same event.

use std::collections::BTreeMap;
use std::sync::Arc;

use fundguard_core::{ChangeEvent, ColumnType, Decimal, EventTime, Op, Position, Row, Value};
use fundguard_formats::plain::PlainConfig;
use fundguard_formats::{Format, canal, debezium, maxwell};
use proptest::prelude::*;

fn formats() -> Vec<Format> {
    vec![Format::Debezium, Format::Canal, Format::Maxwell, Format::Json(PlainConfig::default())]
}

fn decode_all(message: &[u8]) {
    for format in formats() {
        let mut decoder = format.decoder(Arc::default());
        let mut out = Vec::new();
        let _ = decoder.decode(message, &Position::Synthetic { seq: 1 }, &mut out);
    }
}

/// JSON-ish text built from the keys decoders look for, to reach deep into them.
fn jsonish() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "schema",
        "payload",
        "before",
        "after",
        "source",
        "op",
        "ts_ms",
        "ts_us",
        "db",
        "table",
        "connector",
        "data",
        "old",
        "type",
        "isDdl",
        "es",
        "mysqlType",
        "sqlType",
        "database",
        "ts",
        "fields",
        "field",
        "name",
        "parameters",
        "scale",
        "value",
        "id",
        "amount",
    ]);
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        "-?[0-9]{1,40}(\\.[0-9]{0,30})?([eE][+-]?[0-9]{1,4})?",
        "\"[a-zA-Z0-9+/=:. -]{0,12}\"".prop_map(|s| s),
        prop::sample::select(vec![
            "\"c\"",
            "\"u\"",
            "\"d\"",
            "\"UPDATE\"",
            "\"insert\"",
            "\"org.apache.kafka.connect.data.Decimal\"",
            "\"io.debezium.time.Date\""
        ])
        .prop_map(String::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| {
                let body: Vec<String> = kv.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int),
        (any::<i64>(), 0u32..10).prop_map(|(m, s)| Value::Decimal(Decimal::new(m, s))),
        "[a-zA-Z0-9 _\\-\"\\\\é中]{0,12}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
    ]
}

pub(crate) fn event() -> impl Strategy<Value = ChangeEvent> {
    let row = || prop::collection::btree_map("[a-z][a-z_]{0,8}", value(), 1..6);
    (row(), row(), prop::sample::select(vec![Op::Insert, Op::Update, Op::Delete]), 0i64..4_000_000_000_000)
        .prop_map(|(before, after, op, ms)| {
            let to_row = |m: BTreeMap<String, Value>| m.into_iter().collect::<Row>();
            // Updates carry the same columns in both images, as FULL row images do.
            let before_row: BTreeMap<String, Value> =
                after.keys().map(|k| (k.clone(), before.get(k).cloned().unwrap_or(Value::Null))).collect();
            let (before, after) = match op {
                Op::Insert => (None, Some(to_row(after))),
                Op::Delete => (Some(to_row(before_row)), None),
                _ => (Some(to_row(before_row)), Some(to_row(after))),
            };
            ChangeEvent {
                table: Arc::from("shop.t"),
                op,
                before,
                after,
                commit_time: EventTime::from_millis(ms),
                position: Position::Synthetic { seq: 1 },
            }
        })
        .prop_filter("a column has one type in both images", one_type_per_column)
}

fn one_type_per_column(e: &ChangeEvent) -> bool {
    let (Some(b), Some(a)) = (&e.before, &e.after) else { return true };
    // ... and a DECIMAL column one scale, as in a database schema.
    b.iter().all(|(n, v)| match (v, a.get(n)) {
        (Value::Decimal(x), Some(Value::Decimal(y))) => x.scale() == y.scale(),
        (v, Some(w)) => match (ColumnType::of(v), ColumnType::of(w)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        },
        _ => true,
    })
}

/// Column types as the encoders need them: taken from the values themselves.
pub(crate) fn types_of(e: &ChangeEvent) -> BTreeMap<String, ColumnType> {
    let mut types = BTreeMap::new();
    for row in [&e.before, &e.after].into_iter().flatten() {
        for (n, v) in row.iter() {
            if let Some(t) = ColumnType::of(v) {
                types.insert(n.to_string(), t);
            }
        }
    }
    types
}

fn decode_one(format: Format, line: &str) -> ChangeEvent {
    let mut decoder = format.decoder(Arc::default());
    let mut out = Vec::new();
    decoder.decode(line.as_bytes(), &Position::Synthetic { seq: 1 }, &mut out).unwrap();
    assert_eq!(out.len(), 1, "{line}");
    out.pop().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoders_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes);
    }

    #[test]
    fn decoders_never_panic_on_json_shapes(text in jsonish()) {
        decode_all(text.as_bytes());
    }

    #[test]
    fn debezium_round_trips(e in event(), wrapper in any::<bool>()) {
        let options = debezium::EncodeOptions {
            schema_wrapper: wrapper,
            decimal_mode: if wrapper { debezium::DecimalMode::Precise } else { debezium::DecimalMode::String },
        };
        let line = debezium::encode(&e, &types_of(&e), options);
        let back = decode_one(Format::Debezium, &line);
        prop_assert_eq!(back.op, e.op);
        prop_assert_eq!(back.commit_time.as_millis(), e.commit_time.as_millis());
        if wrapper {
            // With the schema, every value comes back with its exact type.
            prop_assert_eq!(&back.after, &e.after);
            prop_assert_eq!(&back.before, &e.before);
        }
    }

    #[test]
    fn maxwell_round_trips(e in event()) {
        let line = maxwell::encode(&e, 1);
        let back = decode_one(Format::Maxwell, &line);
        prop_assert_eq!(back.op, e.op);
        // JSON cannot tell a scale-0 decimal from an integer: compare those as integers.
        let norm = |r: &Option<Row>| r.as_ref().map(|r| r.iter().map(|(n, v)| (n.to_string(), match v {
            Value::Decimal(d) if d.scale() == 0 => i64::try_from(*d).map_or(v.clone(), Value::Int),
            _ => v.clone(),
        })).collect::<Vec<_>>());
        prop_assert_eq!(norm(&back.after), norm(&e.after));
        if e.op == Op::Update {
            prop_assert_eq!(norm(&back.before), norm(&e.before));
        }
    }

    #[test]
    fn canal_round_trips(e in event()) {
        let types = types_of(&e);
        let line = canal::encode(1, &[&e], &types);
        let back = decode_one(Format::Canal, &line);
        prop_assert_eq!(back.op, e.op);
        // Canal types columns by MySQL type; integers declared DECIMAL come back as decimals.
        let norm = |r: &Option<Row>| r.as_ref().map(|r| r.iter().map(|(n, v)| (n.to_string(), match (types.get(n), v) {
            (Some(ColumnType::Decimal), Value::Int(i)) => Value::Decimal((*i).into()),
            _ => v.clone(),
        })).collect::<Vec<_>>());
        prop_assert_eq!(norm(&back.after), norm(&e.after));
        prop_assert_eq!(norm(&back.before), norm(&e.before));
    }
}
