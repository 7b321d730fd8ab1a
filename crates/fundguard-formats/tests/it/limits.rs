//! Input built to hurt — commit times at the ends of `i64`, oversized messages, deep
//! nesting, numbers beyond `i64` and 28 exact digits, invalid UTF-8 — is refused by every
//! decoder with a reason (the pipeline dead-letters it), never a panic and never a value
//! that is not what the message said.

use std::sync::Arc;

use fundguard_core::{EventTime, Position, Value};
use fundguard_formats::plain::PlainConfig;
use fundguard_formats::{Format, MAX_MESSAGE_BYTES};
use proptest::prelude::*;

use crate::decode;

fn formats() -> [Format; 4] {
    [Format::Debezium, Format::Canal, Format::Maxwell, Format::Json(PlainConfig::default())]
}

/// A one-row insert into `shop.t` in `format`, its commit time `time` (the field's text)
/// and column `amount` holding the JSON text `amount`.
fn message(format: &Format, time: &str, amount: &str) -> String {
    match format {
        Format::Debezium => format!(
            r#"{{"op":"c","source":{{"db":"shop","table":"t","ts_ms":{time}}},"after":{{"id":1,"amount":{amount}}}}}"#
        ),
        Format::Canal => format!(
            r#"{{"database":"shop","table":"t","type":"INSERT","es":{time},"mysqlType":{{"id":"bigint(20)","amount":"decimal(65,30)"}},"data":[{{"id":"1","amount":"{amount}"}}]}}"#
        ),
        Format::Maxwell => {
            format!(
                r#"{{"database":"shop","table":"t","type":"insert","ts_ms":{time},"data":{{"id":1,"amount":{amount}}}}}"#
            )
        }
        Format::Json(_) => format!(r#"{{"type":"shop.t","ts":{time},"id":1,"amount":{amount}}}"#),
    }
}

fn refusal(format: &Format, text: &[u8]) -> String {
    let mut decoder = format.decoder(Arc::default());
    let mut out = Vec::new();
    match decoder.decode(text, &Position::Synthetic { seq: 1 }, &mut out) {
        Ok(decoded) => panic!("{} accepted {decoded:?}: {out:?}\n{}", format.name(), String::from_utf8_lossy(text)),
        Err(e) => {
            assert!(out.is_empty());
            e.to_string()
        }
    }
}

#[test]
fn a_commit_time_beyond_the_range_is_refused_naming_the_field() {
    for format in formats() {
        for time in ["-9300000000000", "-1", "9223372036854775807", "253402300800000"] {
            let reason = refusal(&format, message(&format, time, "1").as_bytes());
            assert!(reason.contains(&format!("commit time {time} ms is out of range")), "{}: {reason}", format.name());
        }
        let (_, events) = decode(format.clone(), &message(&format, "253402300799999", "1")).unwrap();
        assert_eq!(events[0].commit_time.to_string(), "9999-12-31T23:59:59.999Z");
    }
    // Maxwell's `ts` is in seconds: -9300000000000 s is beyond `i64` microseconds.
    let maxwell = r#"{"database":"shop","table":"t","type":"insert","ts":-9300000000000,"data":{"id":1}}"#;
    let reason = refusal(&Format::Maxwell, maxwell.as_bytes());
    assert_eq!(
        reason,
        "`ts`: commit time -9300000000000 s is out of range: expected a time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
    );
    let debezium = r#"{"op":"c","source":{"db":"shop","table":"t","ts_us":-9223372036854775808},"after":{"id":1}}"#;
    assert!(refusal(&Format::Debezium, debezium.as_bytes()).starts_with("`source.ts_us`: commit time"));
    let text = r#"{"type":"shop.t","ts":"1969-12-31T23:59:59Z","id":1}"#;
    let reason = refusal(&Format::Json(PlainConfig::default()), text.as_bytes());
    assert!(reason.starts_with("`ts`: commit time 1969-12-31T23:59:59Z is out of range"), "{reason}");
}

#[test]
fn a_message_over_the_limit_is_refused_unread() {
    for format in formats() {
        let padding = "x".repeat(2000);
        let text = message(&format, "1714550401000", &format!("\"{padding}\""));
        let mut decoder = format.decoder(Arc::default()).with_max_message_bytes(1024);
        let err = decoder.decode(text.as_bytes(), &Position::Synthetic { seq: 1 }, &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "message over the limit of 1024 bytes (`max_message_bytes`): not decoded");
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(refusal(&format, &big).contains(&format!("over the limit of {MAX_MESSAGE_BYTES} bytes")));
    }
}

/// Regression: a JSON array decoded as a Debezium message (serde reads a struct from a
/// sequence too), and `[[…]]` became a tombstone.
#[test]
fn nesting_is_refused_where_it_is_read_and_kept_as_text_where_it_is_not() {
    for format in formats() {
        for depth in [129, 200_000] {
            let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            let reason = refusal(&format, nested.as_bytes());
            assert!(reason.starts_with("expected a JSON object, found `[[[["), "{}: {reason}", format.name());
            // In a column value the nesting is only skipped over (serde_json does that without
            // recursion) and kept as JSON text: memory bounded by the message, no stack used.
            let text = message(&format, "1714550401000", &nested);
            let mut decoder = format.decoder(Arc::default());
            let mut out = Vec::new();
            match decoder.decode(text.as_bytes(), &Position::Synthetic { seq: 1 }, &mut out) {
                Ok(_) => assert_eq!(out[0].after.as_ref().unwrap().get("amount"), Some(&Value::Json(nested.clone()))),
                // Canal's values are text typed by the column: this one is no decimal.
                Err(e) => assert!(e.to_string().contains("is not a valid decimal"), "{}: {e}", format.name()),
            }
        }
    }
    // Where a decoder reads the structure (a Debezium schema), serde_json's recursion limit
    // of 128 refuses it (its `unbounded_depth` feature is off): no stack overflow.
    let schema = format!("{}{}", r#"{"type":"struct","fields":["#.repeat(200), "]}".repeat(200));
    let text = format!(r#"{{"schema":{schema},"payload":{{"op":"c"}}}}"#);
    assert!(refusal(&Format::Debezium, text.as_bytes()).contains("recursion limit exceeded"));
}

#[test]
fn numbers_beyond_an_exact_decimal_are_refused_not_rounded() {
    let too_big = [
        "79228162514264337593543950336",
        "1e400",
        "-1e29",
        "0.12345678901234567890123456789",
        "1e-29",
        "123456789012345678901234567890123456789012345678901234567890",
    ];
    for format in formats() {
        for number in too_big {
            let reason = refusal(&format, message(&format, "1714550401000", number).as_bytes());
            assert!(
                reason.contains("does not fit an exact decimal") || reason.contains("is not a valid decimal"),
                "{}: {number}: {reason}",
                format.name()
            );
        }
    }
    let long = "9".repeat(5000);
    let reason = refusal(&Format::Maxwell, message(&Format::Maxwell, "1714550401000", &long).as_bytes());
    assert!(reason.len() < 300, "the reason shows the number shortened: {reason}");
    assert!(reason.contains("… (5000 bytes)"), "{reason}");
}

#[test]
fn invalid_utf8_is_refused() {
    for format in formats() {
        let mut text = message(&format, "1714550401000", "1").into_bytes();
        text.splice(10..10, [0xff, 0xc0, 0x80]);
        assert!(refusal(&format, &text).starts_with("not UTF-8 text"), "{}", format.name());
    }
}

fn hostile_number() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[1-9][0-9]{29,80}",
        "-?[0-9]{1,3}\\.[0-9]{29,60}",
        "-?[1-9]e[+-]?(29|[3-9][0-9]|[1-9][0-9]{2,6})",
        "-?[1-9][0-9]{0,3}\\.[0-9]{1,10}[eE][+-]?[0-9]{20,25}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any commit time outside 1970..=9999 is refused by every format; inside, it is kept.
    #[test]
    fn commit_times_are_kept_or_refused_never_saturated(ms in any::<i64>()) {
        for format in formats() {
            let text = message(&format, &ms.to_string(), "1");
            let mut decoder = format.decoder(Arc::default());
            let mut out = Vec::new();
            match decoder.decode(text.as_bytes(), &Position::Synthetic { seq: 1 }, &mut out) {
                Ok(_) => {
                    prop_assert!(out[0].commit_time.is_commit_time());
                    prop_assert_eq!(out[0].commit_time, EventTime::from_millis(ms));
                }
                Err(e) => {
                    prop_assert!(EventTime::commit_from_millis(ms).is_err(), "{}: {}", format.name(), e);
                    prop_assert!(e.to_string().contains("is out of range"), "{}", e);
                }
            }
        }
    }

    /// Numbers that no exact decimal holds are refused by every format, whatever their form.
    #[test]
    fn hostile_numbers_are_refused(number in hostile_number()) {
        for format in formats() {
            let text = message(&format, "1714550401000", &number);
            let mut decoder = format.decoder(Arc::default());
            let mut out = Vec::new();
            match decoder.decode(text.as_bytes(), &Position::Synthetic { seq: 1 }, &mut out) {
                Ok(_) => {
                    // Only a value that fits exactly may come through (a long run of zeros, say).
                    let amount = out[0].after.as_ref().and_then(|r| r.get("amount")).cloned();
                    prop_assert!(amount.is_some(), "{}: {}", format.name(), text);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    /// Arbitrary bytes spliced into a valid message: a reason or events, never a panic.
    #[test]
    fn bytes_spliced_into_messages_never_panic(at in 0usize..200, bytes in prop::collection::vec(any::<u8>(), 1..16)) {
        for format in formats() {
            let mut text = message(&format, "1714550401000", "12.50").into_bytes();
            let at = at.min(text.len());
            text.splice(at..at, bytes.iter().copied());
            let mut decoder = format.decoder(Arc::default());
            if let Err(e) = decoder.decode(&text, &Position::Synthetic { seq: 1 }, &mut Vec::new()) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
