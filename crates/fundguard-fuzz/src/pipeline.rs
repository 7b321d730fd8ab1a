//! Past the decoder: events into the engine with the example rules, as the live pipeline
//! feeds it — decoded from log lines in any format, or made straight from the bytes with
//! any content (commit times at the ends of `i64`, decimals at the ends of their range,
//! values of the wrong type, huge text) — then the clock moved (idle and finished sources),
//! rule state saved and restored, and every finding counted in the metrics and serialised
//! as the sinks do. A rule that cannot evaluate a batch counts an error; nothing panics.
//!
//! The engine is kept across inputs (rebuilt every [`INPUTS_PER_ENGINE`]), as the live
//! one is, so state built by earlier inputs meets later ones.

use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fundguard_core::{ChangeEvent, ColumnType, Decimal, EventTime, Finding, LogPoint, Op, Position, Row, Value};
use fundguard_engine::Engine;
use fundguard_server::Telemetry;

use crate::decode::formats;
use crate::input::Input;
use crate::seeds::{self, BASE};

/// Inputs one engine sees before a fresh one is built.
pub const INPUTS_PER_ENGINE: u32 = 64;

/// The event-time sources of generated events; the last delivers in commit order.
const SOURCES: &[&str] = &["fuzz:a", "fuzz:b", "fuzz:log"];

thread_local! {
    static ENGINE: RefCell<Option<(Engine, u32)>> = const { RefCell::new(None) };
    static TELEMETRY: Telemetry = Telemetry::default();
}

pub fn pipeline(data: &[u8]) {
    let mut input = Input::new(data);
    let events = if input.byte().is_multiple_of(4) { decoded(&mut input) } else { generated(&mut input) };
    ENGINE.with_borrow_mut(|slot| {
        let (engine, inputs) = slot.get_or_insert_with(|| (example_engine(), 0));
        let mut found = Vec::new();
        let split = usize::from(input.byte()).min(events.len());
        for batch in [&events[..split], &events[split..]] {
            let detected_at = time(&mut input);
            let _ = engine.process(batch, detected_at, &mut found);
        }
        for _ in 0..input.byte() % 4 {
            let (source, now) = (*input.pick(SOURCES), time(&mut input));
            match input.byte() % 4 {
                0 => engine.source_idle(source, now, now, &mut found),
                1 => engine.finish_source(source, now, &mut found),
                2 => engine.advance_to(now, now, &mut found),
                _ => {
                    let state = engine.save_state().expect("rule state encodes");
                    engine.restore_state(&state).expect("rule state reads back what it wrote");
                }
            }
        }
        found.iter().for_each(check_finding);
        *inputs += 1;
        if *inputs >= INPUTS_PER_ENGINE {
            *slot = None;
        }
    });
}

/// Findings made so far in this process: a run that made none never reached the rules.
pub fn findings_made() -> u64 {
    FINDINGS.load(std::sync::atomic::Ordering::Relaxed)
}

static FINDINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What the pipeline does with every finding: count it (latency, per minute) and write it.
fn check_finding(f: &Finding) {
    FINDINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    TELEMETRY.with(|t| t.finding(&f.rule, f.severity, f.event_time, f.detected_at));
    let _ = f.detection_latency_micros();
    serde_json::to_vec(f).expect("a finding serialises");
}

/// The example rules, compiled against the simulator's schema, with a small state budget
/// so shedding runs too.
fn example_engine() -> Engine {
    static RULES: OnceLock<Vec<fundguard_rules::Rule>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules");
        let (rules, problems) = fundguard_rules::load_paths(&[dir]);
        assert!(problems.is_empty(), "the example rules load: {problems:?}");
        rules
    });
    let mut engine = Engine::new(rules, &seeds::schemas()).expect("the example rules compile");
    engine.set_state_budget(Some(1 << 20));
    engine.declare_ordered("fuzz:log");
    engine
}

/// Log lines in one format, decoded as a source's lines are; bad ones are dropped (the
/// pipeline dead-letters them).
fn decoded(input: &mut Input) -> Vec<ChangeEvent> {
    let format = input.pick(&formats()).clone();
    let mut decoder = format.decoder(seeds::schemas());
    let mut events = Vec::new();
    for (i, line) in input.rest().split(|b| *b == b'\n').enumerate() {
        let position = Position::Line { input: Arc::from(SOURCES[0]), line: i as u64 + 1, index: 0 };
        let _ = decoder.decode(line, &position, &mut events);
    }
    events
}

/// A table and its columns.
type Table = (Arc<str>, Vec<(Arc<str>, ColumnType)>);

/// The tables the example rules watch, with their columns.
fn tables() -> &'static [Table] {
    static TABLES: OnceLock<Vec<Table>> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut tables: Vec<_> = seeds::schemas()
            .tables
            .iter()
            .map(|(t, cols)| (Arc::from(t.as_str()), cols.iter().map(|(c, ty)| (Arc::from(c.as_str()), *ty)).collect()))
            .collect();
        tables.push((Arc::from("shop.unwatched"), vec![(Arc::from("id"), ColumnType::Int)]));
        tables
    })
}

/// Events of any content, straight from the bytes.
fn generated(input: &mut Input) -> Vec<ChangeEvent> {
    let count = usize::from(input.byte() % 24);
    let mut events = Vec::with_capacity(count);
    for seq in 0..count as u64 {
        let (table, columns) = input.pick(tables());
        let op = *input.pick(&[Op::Insert, Op::Update, Op::Delete, Op::Message]);
        let commit_time = time(input);
        let source: Arc<str> = Arc::from(*input.pick(SOURCES));
        let index = u32::from(input.byte() % 3);
        let position = match input.byte() % 3 {
            0 => Position::Line { input: source, line: seq + 1, index },
            1 => Position::Stream { stream: source, partition: 0, offset: seq, index },
            _ => Position::Log { source, at: LogPoint::Lsn(u64::from(input.u32())), index },
        };
        let mut row = || -> Row {
            let mut row = Row::with_capacity(columns.len());
            for (name, ty) in columns {
                if !input.byte().is_multiple_of(8) {
                    row.push(name.clone(), value(input, *ty));
                }
            }
            row
        };
        let (before, after) = match op {
            Op::Insert | Op::Message => (None, Some(row())),
            Op::Delete => (Some(row()), None),
            Op::Update => (Some(row()), Some(row())),
        };
        events.push(ChangeEvent { table: table.clone(), op, before, after, commit_time, position });
    }
    events
}

/// A time: mostly near 2024-05-01, sometimes at the ends of the range or anywhere.
fn time(input: &mut Input) -> EventTime {
    match input.byte() % 10 {
        5 => EventTime::from_micros(i64::MIN),
        6 => EventTime::from_micros(i64::MAX),
        7 => EventTime::EARLIEST_COMMIT,
        8 => EventTime::LATEST_COMMIT,
        9 => EventTime::from_micros(input.i64()),
        _ => BASE.plus(Duration::from_millis(u64::from(input.u32()) % (3 * 86_400_000))),
    }
}

const WORDS: &[&str] = &[
    "PAID", "PAYING", "CREATED", "CLOSED", "SUCCESS", "FAILED", "REFUNDED", "PENDING", "SETTLED", "CNY", "USD",
    "alipay", "", "0", "-1", "1e400", "NaN",
];

fn value(input: &mut Input, ty: ColumnType) -> Value {
    match input.byte() % 16 {
        0 => Value::Null,
        1 => extreme(input),
        2 => {
            let other = *input.pick(&[
                ColumnType::Int,
                ColumnType::Decimal,
                ColumnType::String,
                ColumnType::Bool,
                ColumnType::Timestamp,
                ColumnType::Date,
                ColumnType::Json,
            ]);
            ordinary(input, other)
        }
        _ => ordinary(input, ty),
    }
}

fn ordinary(input: &mut Input, ty: ColumnType) -> Value {
    match ty {
        ColumnType::Int => Value::Int(i64::from(input.byte()) - 8),
        ColumnType::Decimal => Value::Decimal(Decimal::new(i64::from(input.u16() as i16), u32::from(input.byte() % 4))),
        ColumnType::String => Value::String(input.pick(WORDS).to_string()),
        ColumnType::Bool => Value::Bool(input.bool()),
        ColumnType::Timestamp => Value::Timestamp(time(input)),
        // Days since the epoch, as Debezium writes a DATE.
        ColumnType::Date => Value::Int(i64::from(input.u16()) - 1000),
        ColumnType::Json => Value::Json(input.pick(&["{}", "[1,2]", "{\"a\":{\"b\":null}}", "not json"]).to_string()),
    }
}

fn extreme(input: &mut Input) -> Value {
    match input.byte() % 10 {
        0 => Value::Int(i64::MIN),
        1 => Value::Int(i64::MAX),
        2 => Value::Decimal(Decimal::MAX),
        3 => Value::Decimal(Decimal::MIN),
        4 => Value::Decimal(Decimal::new(1, 28)),
        5 => Value::Timestamp(EventTime::from_micros(i64::MIN)),
        6 => Value::Timestamp(EventTime::from_micros(i64::MAX)),
        7 => Value::String("x".repeat(64 * 1024)),
        8 => Value::Json(format!("{}{}", "[".repeat(300), "]".repeat(300))),
        _ => Value::String("\u{0}\u{202e}é中\u{fffd}".into()),
    }
}

/// Generated batches of a few sizes, and simulator output as lines of every format.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> =
        (0..32u8).map(|i| (0..200).map(|j: u8| j.wrapping_mul(31).wrapping_add(i)).collect()).collect();
    let messages = seeds::messages();
    // `seeds::messages` holds each event as Debezium (twice), Canal, Maxwell, plain JSON.
    for (format, offset) in [0, 2, 3, 4, 4].into_iter().enumerate() {
        // A mode byte of 0 decodes lines; the format is picked by the next two bytes.
        let lines: Vec<&str> = messages.iter().skip(offset).step_by(5).take(40).map(String::as_str).collect();
        let mut seed = vec![0, format as u8, 0];
        seed.extend_from_slice(lines.join("\n").as_bytes());
        seeds.push(seed);
    }
    seeds
}
