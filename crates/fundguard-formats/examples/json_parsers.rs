//! How fast JSON parsers read our change events: serde_json (what the decoders use),
//! sonic-rs and simd-json, each as a whole document and as the projection a rule set
//! needs, beside fundguard's own Debezium decoder. Issue 23 asks to measure both SIMD
//! parsers on our events before choosing one; this is that measurement.
//!
//! `cargo run --release -p fundguard-formats --features json-parser-bench --example json_parsers FILE [LINES]`
//! where FILE holds one Debezium event per line (`fundguard simulate --format debezium`).
//! `scripts/bench-json.sh` writes such a file and runs this with and without
//! `-C target-cpu=native` (the SIMD parsers pick their instructions at compile time).
//! Each pass runs three times over the lines held in memory; the best is printed.

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use std::collections::HashMap;

use fundguard_core::{Position, Projection, TableColumns, TableSchemas};
use fundguard_formats::Format;
use serde::Deserialize;
use sonic_rs::JsonValueTrait;

/// The fields a typical rule set reads of an event: its envelope, and a few columns.
const PROJECTION: [&[&str]; 9] = [
    &["op"],
    &["source", "db"],
    &["source", "table"],
    &["source", "ts_ms"],
    &["after", "id"],
    &["after", "status"],
    &["after", "amount"],
    &["after", "currency"],
    &["before", "status"],
];

/// The same projection as a serde type: unknown fields are skipped, not kept.
#[derive(Deserialize)]
struct Projected<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(borrow)]
    source: ProjectedSource<'a>,
    #[serde(borrow, default)]
    after: Option<ProjectedRow<'a>>,
    #[serde(borrow, default)]
    before: Option<ProjectedRow<'a>>,
}

#[derive(Deserialize)]
struct ProjectedSource<'a> {
    #[serde(borrow)]
    db: Cow<'a, str>,
    #[serde(borrow)]
    table: Cow<'a, str>,
    ts_ms: i64,
}

#[derive(Deserialize)]
struct ProjectedRow<'a> {
    #[serde(borrow, default)]
    id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    status: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    amount: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    currency: Option<Scalar<'a>>,
}

/// A column's value as a decoder would take it, whatever its JSON type: integers and text
/// kept (text borrowed where the parser can), anything else only skipped. Never a float.
enum Scalar<'a> {
    Int(i64),
    Text(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(i64::try_from(v).map_or(Scalar::Other, Scalar::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Other)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'a>, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'a>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

impl Scalar<'_> {
    fn touch(&self) {
        match self {
            Scalar::Int(i) => {
                black_box(i);
            }
            Scalar::Text(t) => {
                black_box(t);
            }
            Scalar::Other => {}
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: json_parsers FILE [LINES]");
    let limit: usize = args.next().map_or(usize::MAX, |n| n.parse().expect("LINES is a number"));
    let text = std::fs::read_to_string(&path).expect("FILE is readable text");
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).take(limit).collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    println!("{} lines, {:.0} bytes a line on average", lines.len(), bytes as f64 / lines.len() as f64);

    // get_many refuses a document where a path crosses a null (`before` of an insert), so
    // its tree leaves out `before.status`: eight paths.
    let mut tree = sonic_rs::PointerTree::new();
    for path in PROJECTION.iter().filter(|p| p[0] != "before") {
        tree.add_path(path.iter().copied());
    }
    let longest = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    let mut scratch = Vec::with_capacity(longest);

    pass("serde_json: whole document (serde_json::Value)", &lines, |line| {
        serde_json::from_str::<serde_json::Value>(line).is_ok()
    });
    pass("serde_json: projection (typed, borrowed)", &lines, |line| {
        serde_json::from_str::<Projected>(line).is_ok_and(|p| keep(&p))
    });
    pass("sonic-rs: whole document (sonic_rs::Value)", &lines, |line| {
        sonic_rs::from_str::<sonic_rs::Value>(line).is_ok()
    });
    pass("sonic-rs: projection (typed, borrowed)", &lines, |line| {
        sonic_rs::from_str::<Projected>(line).is_ok_and(|p| keep(&p))
    });
    pass("sonic-rs: projection (get_many, 8 paths, lazy)", &lines, |line| {
        sonic_rs::get_many(line, &tree).is_ok_and(|values| black_box(values).len() == tree.size())
    });
    pass("simd-json: whole document (borrowed value; line copied first)", &lines, |line| {
        scratch.clear();
        scratch.extend_from_slice(line.as_bytes());
        simd_json::to_borrowed_value(&mut scratch).is_ok()
    });
    let mut scratch = Vec::with_capacity(longest);
    pass("simd-json: projection (typed, serde; line copied first)", &lines, |line| {
        scratch.clear();
        scratch.extend_from_slice(line.as_bytes());
        simd_json::serde::from_slice::<Projected>(&mut scratch).is_ok_and(|p| keep(&p))
    });
    pass("sonic-rs: envelope + raw text of every column (lazy iteration)", &lines, |line| {
        sonic_raw_columns(line).is_some_and(|n| black_box(n) > 0)
    });
    let input: Arc<str> = Arc::from(path.as_str());
    let mut events = Vec::with_capacity(4);
    let passes: [(&str, Option<&[&str]>); 3] = [
        ("fundguard: Debezium decoder (events with typed rows)", None),
        ("fundguard: Debezium decoder, projected (4 columns typed)", Some(&["id", "status", "amount", "currency"])),
        ("fundguard: Debezium decoder, projected (no column typed)", Some(&[])),
    ];
    for (name, columns) in passes {
        let mut decoder = Format::Debezium.decoder(Arc::new(TableSchemas::default()));
        if let Some(columns) = columns {
            decoder.set_projection(every_table_reads(&lines, columns));
        }
        let mut line_number = 0;
        pass(name, &lines, |line| {
            line_number += 1;
            events.clear();
            let position = Position::Line { input: input.clone(), line: line_number, index: 0 };
            decoder.decode(line.as_bytes(), &position, &mut events).is_ok()
        });
    }
}

/// A projection reading `columns` of every table the lines name.
fn every_table_reads(lines: &[&str], columns: &[&str]) -> Projection {
    let read = TableColumns::Only(Arc::new(columns.iter().map(|&c| c.into()).collect()));
    let mut tables = HashMap::new();
    for line in lines {
        if let Ok(p) = serde_json::from_str::<Projected>(line) {
            tables.insert(format!("{}.{}", p.source.db, p.source.table).into_boxed_str(), read.clone());
        }
    }
    Projection::only(tables)
}

/// What a decoder must do at least, with sonic-rs's lazy iterators: the envelope's fields
/// found, and each column's raw text.
fn sonic_raw_columns(line: &str) -> Option<usize> {
    let mut columns = 0;
    for entry in sonic_rs::to_object_iter(line) {
        let (key, value) = entry.ok()?;
        match &*key {
            "before" | "after" if !value.is_null() => {
                for column in sonic_rs::to_object_iter(value.as_raw_str()) {
                    let (name, raw) = column.ok()?;
                    black_box((&name, raw.as_raw_str()));
                    columns += 1;
                }
            }
            _ => {
                black_box(value.as_raw_str());
            }
        }
    }
    Some(columns)
}

/// Keeps the optimiser from dropping a projection's fields.
fn keep(p: &Projected<'_>) -> bool {
    black_box((&p.op, &p.source.db, &p.source.table, p.source.ts_ms));
    for row in [&p.after, &p.before].into_iter().flatten() {
        for value in [&row.id, &row.status, &row.amount, &row.currency].into_iter().flatten() {
            value.touch();
        }
    }
    true
}

/// Runs `parse` over every line three times and prints the best rate.
fn pass(name: &str, lines: &[&str], mut parse: impl FnMut(&str) -> bool) {
    let mut best = f64::MAX;
    let mut failed = 0;
    for _ in 0..3 {
        failed = 0;
        let start = Instant::now();
        for line in lines {
            if !black_box(parse(black_box(line))) {
                failed += 1;
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    let rate = lines.len() as f64 / best;
    let note = if failed > 0 { format!(" ({failed} lines refused)") } else { String::new() };
    println!("{name:<64} {rate:>12.0} lines/s{note}");
}
