//! Stateful findings do not depend on micro-batch size, nor on arrival order within the allowed lateness.

use fundguard_core::{ChangeEvent, EventTime, TableSchemas};
use fundguard_engine::Engine;
use fundguard_rules::{Rule, RuleBody};
use fundguard_sim::{IncidentKind, SimConfig, Simulator, schema};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

fn stateful_examples() -> Vec<Rule> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules");
    let (rules, problems) = fundguard_rules::load_paths(&[dir]);
    assert!(problems.is_empty(), "{problems:?}");
    rules.into_iter().filter(|r| !matches!(r.body, RuleBody::Check(_))).collect()
}

fn simulate(seed: u64) -> (Vec<ChangeEvent>, usize) {
    let mut sim = Simulator::new(SimConfig {
        seed,
        orders: 250,
        hours: 1,
        incident_rate: 0.2,
        kinds: IncidentKind::ALL.to_vec(),
        ..SimConfig::default()
    });
    let mut events = Vec::new();
    sim.run(|e| events.push(e));
    let incidents = sim.incidents().len();
    (events, incidents)
}

fn findings(rules: &[Rule], schemas: &TableSchemas, events: &[ChangeEvent], batch: usize) -> (Vec<String>, u64) {
    let mut engine = Engine::new(rules, schemas).unwrap();
    let mut out = Vec::new();
    for chunk in events.chunks(batch.max(1)) {
        engine.process(chunk, EventTime::default(), &mut out).unwrap();
    }
    engine.finish(EventTime::default(), &mut out);
    let late = engine.stats().iter().map(|s| s.late_events).sum();
    (shown(&out), late)
}

fn shown(found: &[fundguard_core::Finding]) -> Vec<String> {
    let mut shown: Vec<String> = found
        .iter()
        .map(|f| {
            let evidence = serde_json::to_string(&f.evidence).unwrap();
            format!("{} {} {} {} {evidence}", f.rule, serde_json::to_string(&f.key).unwrap(), f.event_time, f.message)
        })
        .collect();
    shown.sort();
    shown
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn batch_size_and_reordering_within_lateness_change_nothing(seed in 0u64..1000, batch in 1usize..700, shuffle in any::<u64>()) {
        let rules = stateful_examples();
        let schemas = schema();
        let (events, incidents) = simulate(seed);
        prop_assume!(incidents > 0);
        let (whole, late) = findings(&rules, &schemas, &events, events.len());
        prop_assert_eq!(late, 0);
        prop_assert!(!whole.is_empty());

        let (cut, _) = findings(&rules, &schemas, &events, batch);
        prop_assert_eq!(&whole, &cut);

        // Arrival order perturbed by up to 4.9 s, inside the default 5 s lateness.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(shuffle);
        let mut keyed: Vec<(i64, ChangeEvent)> =
            events.iter().map(|e| (e.commit_time.as_micros() + rng.random_range(0..4_900_000), e.clone())).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let reordered: Vec<ChangeEvent> = keyed.into_iter().map(|(_, e)| e).collect();
        let (shuffled, late) = findings(&rules, &schemas, &reordered, batch);
        prop_assert_eq!(late, 0);
        prop_assert_eq!(&whole, &shuffled);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// A run stopped at any batch boundary and continued by a new engine from the saved
    /// state (a restart from a checkpoint) finds exactly what the uninterrupted run finds.
    #[test]
    fn a_restart_from_saved_state_changes_nothing(seed in 0u64..1000, batch in 1usize..500, stops in proptest::collection::vec(any::<prop::sample::Index>(), 1..4)) {
        let rules = stateful_examples();
        let schemas = schema();
        let (events, incidents) = simulate(seed);
        prop_assume!(incidents > 0);
        let (whole, _) = findings(&rules, &schemas, &events, batch);
        prop_assert!(!whole.is_empty());

        let chunks: Vec<&[ChangeEvent]> = events.chunks(batch).collect();
        let stops: std::collections::BTreeSet<usize> = stops.iter().map(|i| i.index(chunks.len())).collect();
        let mut engine = Engine::new(&rules, &schemas).unwrap();
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if stops.contains(&i) {
                let saved = engine.save_state().unwrap();
                engine = Engine::new(&rules, &schemas).unwrap();
                let restored = engine.restore_state(&saved).unwrap();
                prop_assert!(restored.dropped.is_empty());
                prop_assert_eq!(restored.kept.len(), rules.len());
            }
            engine.process(chunk, EventTime::default(), &mut out).unwrap();
        }
        engine.finish(EventTime::default(), &mut out);
        prop_assert_eq!(&whole, &shown(&out));
    }
}

/// A checkpoint copies rule state between two batches and encodes it later, on another
/// thread, while the engine goes on: what it encodes is the state at the copy, untouched
/// by the batches processed meanwhile, so a restart from it finds what the whole run finds.
#[test]
fn a_snapshot_encoded_after_the_engine_ran_on_holds_the_state_at_the_copy() {
    let rules = stateful_examples();
    let schemas = schema();
    let (events, incidents) = simulate(11);
    assert!(incidents > 0);
    let (whole, _) = findings(&rules, &schemas, &events, 100);
    let (first, rest) = events.split_at(events.len() / 2);

    let mut engine = Engine::new(&rules, &schemas).unwrap();
    let mut out = Vec::new();
    for chunk in first.chunks(100) {
        engine.process(chunk, EventTime::default(), &mut out).unwrap();
    }
    let copied = engine.save_state().unwrap();
    let snapshot = engine.snapshot_state();
    let mut ran_on = Vec::new();
    for chunk in rest.chunks(100) {
        engine.process(chunk, EventTime::default(), &mut ran_on).unwrap();
    }
    assert!(!ran_on.is_empty(), "the engine changed its state after the copy");
    let encoded = std::thread::spawn(move || snapshot.encode().unwrap()).join().unwrap();
    assert_eq!(encoded, copied, "encoded later, the snapshot is the state at the copy");

    let mut restarted = Engine::new(&rules, &schemas).unwrap();
    restarted.restore_state(&encoded).unwrap();
    for chunk in rest.chunks(100) {
        restarted.process(chunk, EventTime::default(), &mut out).unwrap();
    }
    restarted.finish(EventTime::default(), &mut out);
    assert_eq!(whole, shown(&out));
}

#[test]
fn a_changed_rule_starts_without_the_old_state_and_garbage_is_refused() {
    let rules = stateful_examples();
    let schemas = schema();
    let (events, _) = simulate(7);
    let mut engine = Engine::new(&rules, &schemas).unwrap();
    engine.process(&events[..events.len() / 2], EventTime::default(), &mut Vec::new()).unwrap();
    let saved = engine.save_state().unwrap();

    let mut changed = rules.clone();
    changed[0].state.allowed_lateness = std::time::Duration::from_secs(99);
    let mut other = Engine::new(&changed, &schemas).unwrap();
    let restored = other.restore_state(&saved).unwrap();
    assert_eq!(restored.dropped, vec![changed[0].id.clone()]);
    assert_eq!(restored.kept.len(), rules.len() - 1);

    let error = Engine::new(&rules, &schemas).unwrap().restore_state(&saved[..saved.len() / 2]).unwrap_err();
    assert!(error.to_string().contains("unreadable"), "{error}");
}

/// Rules with a short `state_ttl`, one of each kind that forgets idle keys: whether a key
/// has expired must depend on event times only, never on where a batch ends.
fn short_ttl_rules() -> Vec<Rule> {
    let head = |id: &str| format!("id: {id}\nowner: t\nseverity: high\nstate_ttl: 20s\nallowed_lateness: 0s\n");
    [
        format!(
            "{}reconcile:\n  left: {{ table: s.pay, key: after.oid }}\n  right: {{ table: s.ord, key: after.oid }}\n  within: 5s\n  expect: left.amount = right.amount\n",
            head("pair")
        ),
        format!(
            "{}reconcile:\n  left: {{ table: s.pay, key: after.oid }}\n  right: {{ table: s.ord, key: after.oid }}\n  within: 5s\n  late_counterpart: missing\n  expect: left.amount = right.amount\n",
            head("pair-in-window")
        ),
        format!(
            "{}transition:\n  table: s.ord\n  key: after.oid\n  status: after.status\n  initial: [A]\n  allowed:\n    A: [B]\n    B: [A]\n",
            head("machine")
        ),
        format!(
            "{}rate:\n  table: s.pay\n  group: after.ch\n  window: 5s\n  min_volume: 1\n  baseline: {{ windows: 2, factor: \"1.5\" }}\n",
            head("burst")
        ),
        format!(
            "{}rate:\n  table: s.pay\n  group: after.ch\n  window: 6s\n  slide: 2s\n  min_volume: 1\n  baseline: {{ windows: 3, factor: \"1.2\" }}\n",
            head("sliding")
        ),
    ]
    .iter()
    .map(|text| crate::rule(text))
    .collect()
}

/// Events of a few keys at irregular times: gaps shorter and longer than the TTL, ties.
fn sparse_events(seed: u64) -> Vec<ChangeEvent> {
    use fundguard_core::{Op, Position, Value};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut events = Vec::new();
    let mut secs = 1_700_000_000i64;
    for seq in 0..300u64 {
        secs += [0, 0, 1, 2, 3, 7, 12, 25][rng.random_range(0..8)];
        let oid = rng.random_range(0..6i64);
        let (table, row) = if rng.random_bool(0.5) {
            let ch = ["card", "wallet"][rng.random_range(0..2)];
            (
                "s.pay",
                crate::row(&[("oid", oid.into()), ("amount", Value::Int(rng.random_range(1..3))), ("ch", ch.into())]),
            )
        } else {
            let status = ["A", "B", "C"][rng.random_range(0..3)];
            (
                "s.ord",
                crate::row(&[
                    ("oid", oid.into()),
                    ("amount", Value::Int(rng.random_range(1..3))),
                    ("status", status.into()),
                ]),
            )
        };
        events.push(ChangeEvent {
            table: std::sync::Arc::from(table),
            op: Op::Insert,
            before: None,
            after: Some(row),
            commit_time: EventTime::from_secs(secs),
            position: Position::Synthetic { seq },
        });
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// A key idle past `state_ttl` is forgotten at the same event, however the input is cut.
    #[test]
    fn state_ttl_expiry_does_not_depend_on_batching(seed in any::<u64>(), batch in 1usize..64) {
        let rules = short_ttl_rules();
        let schemas = TableSchemas::default();
        let events = sparse_events(seed);
        let (whole, _) = findings(&rules, &schemas, &events, events.len());
        prop_assert!(!whole.is_empty());
        for batch in [1, batch] {
            let (cut, _) = findings(&rules, &schemas, &events, batch);
            let only_whole: Vec<&String> = whole.iter().filter(|f| !cut.contains(f)).collect();
            let only_cut: Vec<&String> = cut.iter().filter(|f| !whole.contains(f)).collect();
            prop_assert!(whole == cut, "batches of {}: only unbatched {:#?}\nonly batched {:#?}", batch, only_whole, only_cut);
        }
    }
}
