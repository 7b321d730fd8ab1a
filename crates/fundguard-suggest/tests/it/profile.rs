//! The profiler's figures hold for any sample: counts add up, min and max are the true
//! ones, transitions and durations agree, and the order of unrelated rows does not matter.

use fundguard_core::{Decimal, Op, Value};
use fundguard_suggest::Profiler;
use fundguard_suggest::layout::SchemaIntake;
use fundguard_suggest::profile::percentile;
use proptest::prelude::*;

use crate::event;

fn profile(events: &[fundguard_core::ChangeEvent]) -> fundguard_suggest::Profile {
    let mut intake = SchemaIntake::new(Vec::new());
    for e in events {
        intake.observe(e);
    }
    let mut p = Profiler::new(intake.layout());
    for e in events {
        p.observe(e);
    }
    p.finish()
}

proptest! {
    #[test]
    fn sign_counts_add_up_and_the_range_is_exact(amounts in prop::collection::vec(-1_000_000i64..1_000_000, 1..200), cents in any::<bool>()) {
        let events: Vec<_> = amounts.iter().enumerate().map(|(i, a)| {
            let v = if cents { Value::Decimal(Decimal::new(*a, 2)) } else { Value::Int(*a) };
            event("s.payments", Op::Insert, i as i64, i as u64, &[("id", Value::Int(i as i64)), ("amount", v)])
        }).collect();
        let p = profile(&events);
        let c = &p.tables["s.payments"].columns["amount"];
        let scale = if cents { 2 } else { 0 };
        prop_assert_eq!(c.negative + c.zero + c.positive, amounts.len() as u64);
        prop_assert_eq!(c.negative, amounts.iter().filter(|a| **a < 0).count() as u64);
        prop_assert_eq!(c.min, amounts.iter().min().map(|m| Decimal::new(*m, scale)));
        prop_assert_eq!(c.max, amounts.iter().max().map(|m| Decimal::new(*m, scale)));
    }

    #[test]
    fn transitions_and_durations_agree(paths in prop::collection::vec(prop::collection::vec(0usize..4, 1..6), 1..40)) {
        let states = ["NEW", "PAYING", "PAID", "FAILED"];
        let mut events = Vec::new();
        let mut moves = 0u64;
        let mut seq = 0;
        for (id, path) in paths.iter().enumerate() {
            let mut last = None;
            for (step, s) in path.iter().enumerate() {
                if last.is_some() && last != Some(*s) {
                    moves += 1;
                }
                last = Some(*s);
                seq += 1;
                let op = if step == 0 { Op::Insert } else { Op::Update };
                events.push(event("s.orders", op, (id * 100 + step * 7) as i64, seq, &[
                    ("id", Value::Int(id as i64)),
                    ("status", Value::String(states[*s].into())),
                ]));
            }
        }
        events.sort_by_key(|e| e.commit_time);
        let p = profile(&events);
        let s = p.tables["s.orders"].states.as_ref().unwrap();
        prop_assert_eq!(s.transitions.values().sum::<u64>(), moves);
        let left: usize = s.durations.values().map(|d| d.count).sum();
        prop_assert_eq!(left as u64, moves);
        prop_assert_eq!(s.initial.values().sum::<u64>(), paths.len() as u64);
        // Every entity is still in some state at the end.
        prop_assert_eq!(s.still_in.values().map(|d| d.count).sum::<usize>(), paths.len());
    }

    #[test]
    fn percentiles_are_members_and_monotonic(mut v in prop::collection::vec(any::<i64>(), 1..100), a in 0u32..=1000, b in 0u32..=1000) {
        v.sort_unstable();
        let (lo, hi) = (a.min(b), a.max(b));
        let (x, y) = (percentile(&v, lo).unwrap(), percentile(&v, hi).unwrap());
        prop_assert!(v.contains(&x) && x <= y);
        prop_assert_eq!(percentile(&v, 1000), v.last().copied());
    }

    #[test]
    fn column_figures_do_not_depend_on_row_order(amounts in prop::collection::vec(-50i64..50, 1..60), seed in any::<u64>()) {
        let events: Vec<_> = amounts.iter().enumerate().map(|(i, a)| {
            event("s.refunds", Op::Insert, 0, i as u64, &[("id", Value::Int(i as i64)), ("amount", Value::Int(*a))])
        }).collect();
        let mut shuffled = events.clone();
        let n = shuffled.len();
        for i in 0..n {
            shuffled.swap(i, (seed as usize).wrapping_mul(i + 7) % n);
        }
        let (a, b) = (profile(&events), profile(&shuffled));
        let (a, b) = (&a.tables["s.refunds"].columns["amount"], &b.tables["s.refunds"].columns["amount"]);
        prop_assert_eq!((a.negative, a.zero, a.positive, a.min, a.max), (b.negative, b.zero, b.positive, b.min, b.max));
        prop_assert_eq!(&a.distinct, &b.distinct);
    }
}

#[test]
fn a_constant_ratio_of_one_hundred_is_seen_between_fen_and_yuan() {
    let events: Vec<_> = (1..=50i64)
        .map(|i| {
            event(
                "s.payments",
                Op::Insert,
                i,
                i as u64,
                &[
                    ("id", Value::Int(i)),
                    ("amount", Value::Int(i * 199)),
                    ("amount_yuan", Value::Decimal(Decimal::new(i * 199, 2))),
                ],
            )
        })
        .collect();
    let p = profile(&events);
    let ratio = p.tables["s.payments"]
        .ratios
        .iter()
        .find(|r| r.numerator == "amount" && r.denominator == "amount_yuan")
        .unwrap();
    assert_eq!(ratio.constant(), Some(Decimal::from(100)));
}
