//! What stateful rules hold per pending key, and whether memory stays flat once keys expire.
//!
//! The six stateful example rules (reconcile, transition, timeout) run over the simulator's
//! events, streamed in batches of 8,192 so the input itself is never held. Two passes:
//! 1. the rules as written (a 7-day `state_ttl`: every order of the run stays in state) —
//!    live heap bytes and resident memory above the empty engine, divided by the keys held;
//! 2. the same rules with a short `state_ttl` over a longer run — the live heap at each tenth
//!    of the run, which must level off once keys start to expire.
//!
//! Live bytes are counted by a wrapper around the binary's allocator (mimalloc), so they are
//! what the state asks for; resident memory adds the allocator's own overhead and free pages.
//!
//! Rerun: `cargo run --release -p fundguard-engine --example state_memory [ORDERS] [TTL_MINUTES]`

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use fundguard_core::{ChangeEvent, EventTime};
use fundguard_engine::Engine;
use fundguard_rules::{Rule, RuleBody, load_paths};
use fundguard_sim::{SimConfig, Simulator, schema};

const BATCH: usize = 8192;

/// The binary's allocator, with a count of the bytes live at any moment.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Resident memory of this process, from `/proc/self/statm` (0 where it cannot be read).
fn resident() -> isize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: isize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

struct Pass {
    events: u64,
    elapsed: Duration,
    keys: u64,
    findings: usize,
    /// Live heap bytes after each tenth of the events.
    samples: Vec<isize>,
}

/// Streams the simulator's events through an engine of `rules`, measuring from an empty engine.
fn pass(rules: &[Rule], config: SimConfig, expected_events: u64) -> (Pass, isize, isize) {
    let mut engine = Engine::new(rules, &schema()).expect("the example rules compile");
    let (live_before, resident_before) = (live(), resident());
    let mut batch: Vec<ChangeEvent> = Vec::with_capacity(BATCH);
    let mut out = Vec::new();
    let (mut events, mut samples, mut findings) = (0u64, Vec::new(), 0);
    let step = (expected_events / 10).max(1);
    let started = Instant::now();
    let mut feed = |batch: &mut Vec<ChangeEvent>, engine: &mut Engine| {
        engine.process(batch, EventTime::from_micros(0), &mut out).expect("evaluates");
        findings += out.len();
        out.clear();
        batch.clear();
    };
    Simulator::new(config).run(|e| {
        batch.push(e);
        events += 1;
        if batch.len() == BATCH {
            feed(&mut batch, &mut engine);
        }
        if events % step == 0 {
            samples.push(live() - live_before);
        }
    });
    feed(&mut batch, &mut engine);
    let elapsed = started.elapsed();
    let keys = engine.stats().iter().map(|s| s.state_keys).sum();
    let grown = (live() - live_before, resident() - resident_before);
    drop(engine);
    (Pass { events, elapsed, keys, findings, samples }, grown.0, grown.1)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let orders: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let ttl_minutes: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(360);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules");
    let (rules, problems) = load_paths(&[root]);
    assert!(problems.is_empty(), "{problems:?}");
    let stateful: Vec<Rule> = rules
        .into_iter()
        .filter(|r| matches!(r.body, RuleBody::Reconcile(_) | RuleBody::Transition(_) | RuleBody::Timeout(_)))
        .collect();
    let ids: Vec<&str> = stateful.iter().map(|r| r.id.as_str()).collect();
    println!("rules: {}", ids.join(", "));

    // Orders arrive over `hours`; at the simulator's rate ~10 events an order.
    let held = SimConfig { orders, hours: 10, ..SimConfig::default() };
    let (first, live_bytes, resident_bytes) = pass(&stateful, held, orders * 10);
    println!(
        "keys kept (7-day TTL): {} events of {orders} orders in {:.2} s ({:.0} events/s); {} keys held",
        first.events,
        first.elapsed.as_secs_f64(),
        first.events as f64 / first.elapsed.as_secs_f64(),
        first.keys
    );
    let per_key = |bytes: isize| bytes as f64 / first.keys.max(1) as f64;
    println!(
        "  live heap {:.1} MiB = {:.0} bytes per key; resident {:.1} MiB = {:.0} bytes per key",
        live_bytes as f64 / 1048576.0,
        per_key(live_bytes),
        resident_bytes as f64 / 1048576.0,
        per_key(resident_bytes)
    );

    let mut expiring = stateful.clone();
    for rule in &mut expiring {
        rule.state.ttl = Duration::from_secs(ttl_minutes * 60);
    }
    // Four times as long a run: keys older than the TTL leave as new ones come.
    let long = SimConfig { orders: orders * 4, hours: 40, ..SimConfig::default() };
    let (second, _, _) = pass(&expiring, long.clone(), orders * 40);
    // The same run with no rules: what the simulator and the batch in hand hold meanwhile.
    let (floor, _, _) = pass(&[], long, orders * 40);
    let mib = |samples: &[isize]| samples.iter().map(|b| format!("{:.1}", *b as f64 / 1048576.0)).collect::<Vec<_>>();
    let samples = mib(&second.samples);
    println!(
        "keys expire ({ttl_minutes}-minute TTL, {} events over 40 h): live heap MiB at each tenth: {}; {} keys held at the end, {} findings",
        second.events,
        samples.join(" "),
        second.keys,
        second.findings
    );
    println!("  no rules, same run (the simulator's own and the batch in hand): {}", mib(&floor.samples).join(" "));
}
