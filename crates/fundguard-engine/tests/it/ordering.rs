//! Log order: the changes of one busy second are applied as the log has them, and a rule
//! fed by one ordered source (a binlog, a replication slot) finds on arrival.

use std::sync::Arc;

use fundguard_core::{ChangeEvent, EventTime, Finding, LogPoint, Op, Position, TableSchemas};
use fundguard_engine::Engine;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::rule;

const T0: i64 = 1_700_000_000;

/// An order state machine: CREATED → PAYING → PAID → SHIPPED, nothing else.
fn machine() -> fundguard_rules::Rule {
    rule(
        "id: sm\nowner: t\nseverity: critical\ntransition:\n  table: s.orders\n  key: after.id\n  status: after.status\n  initial: [CREATED]\n  allowed:\n    CREATED: [PAYING]\n    PAYING: [PAID]\n    PAID: [SHIPPED]\n",
    )
}

fn binlog(file: u64, offset: u64) -> Position {
    Position::Log {
        source: Arc::from("shopdb"),
        at: LogPoint::Binlog { base: Arc::from("mysql-bin"), file, offset },
        index: 0,
    }
}

fn order(id: i64, status: &str, secs: i64, position: Position) -> ChangeEvent {
    ChangeEvent {
        table: Arc::from("s.orders"),
        op: if status == "CREATED" { Op::Insert } else { Op::Update },
        before: None,
        after: Some(crate::row(&[("id", id.into()), ("status", status.into())])),
        commit_time: EventTime::from_secs(T0 + secs),
        position,
    }
}

fn engine(rules: &[fundguard_rules::Rule], ordered: bool) -> Engine {
    let mut engine = Engine::new(rules, &TableSchemas::default()).unwrap();
    if ordered {
        engine.declare_ordered("shopdb");
    }
    engine
}

#[test]
fn an_update_in_the_same_second_as_its_insert_follows_it() {
    // Compared as text, offset 228403 sorts before 5433 and the update would come first.
    let events = vec![
        order(1, "PAYING", 0, binlog(1, 228_403)),
        order(1, "CREATED", 0, binlog(1, 5_433)),
        order(2, "PAYING", 0, binlog(10, 4)),
        order(2, "CREATED", 0, binlog(9, 987_654)),
    ];
    let mut engine = engine(&[machine()], false);
    let mut out = Vec::new();
    engine.process(&events, EventTime::default(), &mut out).unwrap();
    engine.finish(EventTime::default(), &mut out);
    assert!(out.is_empty(), "no false transition: {out:?}");
}

#[test]
fn a_rule_fed_by_one_ordered_source_finds_on_arrival() {
    for ordered in [true, false] {
        let mut engine = engine(&[machine()], ordered);
        let mut out = Vec::new();
        engine.process(&[order(1, "CREATED", 0, binlog(1, 100))], EventTime::default(), &mut out).unwrap();
        engine.process(&[order(1, "SHIPPED", 0, binlog(1, 200))], EventTime::default(), &mut out).unwrap();
        if ordered {
            assert_eq!(out.len(), 1, "found on arrival: {out:?}");
            assert!(out[0].message.contains("CREATED -> SHIPPED"), "{}", out[0].message);
        } else {
            // Without the order guarantee the event waits for the allowed lateness (5 s).
            assert!(out.is_empty(), "{out:?}");
            engine.finish(EventTime::default(), &mut out);
            assert_eq!(out.len(), 1, "{out:?}");
        }
    }
}

#[test]
fn a_second_source_brings_the_allowed_lateness_back() {
    let mut engine = engine(&[machine()], true);
    let mut out = Vec::new();
    let http = |line| Position::Line { input: Arc::from("http:callbacks"), line, index: 0 };
    engine.process(&[order(1, "CREATED", 0, binlog(1, 100))], EventTime::default(), &mut out).unwrap();
    // Another source feeds the same rule: its events may come out of order with the
    // binlog's, so both wait for the slowest source and the lateness.
    engine.process(&[order(2, "CREATED", 0, http(1))], EventTime::default(), &mut out).unwrap();
    engine.process(&[order(1, "SHIPPED", 1, binlog(1, 200))], EventTime::default(), &mut out).unwrap();
    assert!(out.is_empty(), "{out:?}");
    engine.finish(EventTime::default(), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
}

#[test]
fn a_caught_up_ordered_source_fires_deadlines_at_once() {
    let stuck = rule(
        "id: stuck\nowner: t\nseverity: high\ntimeout:\n  table: s.orders\n  key: after.id\n  enter: \"after.status = 'PAYING'\"\n  exit: \"after.status <> 'PAYING'\"\n  within: 30s\n",
    );
    for ordered in [true, false] {
        let mut engine = engine(std::slice::from_ref(&stuck), ordered);
        let mut out = Vec::new();
        engine.process(&[order(1, "PAYING", 0, binlog(1, 100))], EventTime::default(), &mut out).unwrap();
        // The server says nothing older than T0 + 30 s will come; an exit at T0 + 30 s is
        // still in time, so the deadline waits for the next such word.
        engine.source_idle("shopdb", EventTime::from_secs(T0 + 30), EventTime::default(), &mut out);
        assert!(out.is_empty(), "{out:?}");
        engine.source_idle("shopdb", EventTime::from_secs(T0 + 31), EventTime::default(), &mut out);
        let fired: Vec<&Finding> = out.iter().filter(|f| f.rule == "stuck").collect();
        if ordered {
            assert_eq!(fired.len(), 1, "{out:?}");
            assert_eq!(fired[0].event_time, EventTime::from_secs(T0 + 30));
        } else {
            assert!(fired.is_empty(), "an unordered source still waits for the lateness: {out:?}");
        }
    }
}

/// A log of valid lifecycles of `orders` orders, interleaved by `seed`, over a few busy
/// seconds: positions grow through file rotations and offsets of every length.
fn busy_log(orders: i64, seed: u64) -> Vec<ChangeEvent> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut next: Vec<usize> = vec![0; orders as usize];
    let statuses = ["CREATED", "PAYING", "PAID", "SHIPPED"];
    let mut pending: Vec<i64> = (0..orders).flat_map(|o| std::iter::repeat_n(o, statuses.len())).collect();
    pending.shuffle(&mut rng);
    let (mut file, mut offset) = (1u64, 4u64);
    let mut log = Vec::new();
    for (i, o) in pending.into_iter().enumerate() {
        let status = statuses[next[o as usize]];
        next[o as usize] += 1;
        offset += 1 + (i as u64 * 7919) % 90_000;
        if offset > 1_000_000 {
            (file, offset) = (file + 1, 4);
        }
        log.push(order(o, status, (i / 50) as i64, binlog(file, offset)));
    }
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// However a source cuts or shuffles a busy log within the allowed lateness, the engine
    /// applies it in log order; an ordered source in log order gives the same.
    #[test]
    fn shuffled_batches_are_applied_in_log_order(orders in 1i64..40, seed in any::<u64>(), batch in 1usize..60) {
        let log = busy_log(orders, seed);
        let mut shuffled = log.clone();
        shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 1));
        let rules = [machine()];
        let mut unordered = engine(&rules, false);
        let mut out = Vec::new();
        unordered.process(&shuffled, EventTime::default(), &mut out).unwrap();
        unordered.finish(EventTime::default(), &mut out);
        prop_assert!(out.is_empty(), "shuffled: {:?}", out.first());

        let mut ordered = engine(&rules, true);
        for chunk in log.chunks(batch) {
            ordered.process(chunk, EventTime::default(), &mut out).unwrap();
        }
        ordered.finish(EventTime::default(), &mut out);
        prop_assert!(out.is_empty(), "in batches of {}: {:?}", batch, out.first());
    }
}
