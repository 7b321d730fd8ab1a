//! The bounded fuzzer the test suite runs on stable Rust: seeds, then mutations of them.
//!
//! Not coverage-guided (that is cargo-fuzz's job, see `fuzz/README.md`), but it runs the
//! same targets on every `scripts/test.sh`: each seed as it is — every input that once
//! failed (`fuzz/regressions/TARGET/`, checked in), cargo-fuzz's local corpus and crashes
//! (`fuzz/corpus/`, `fuzz/artifacts/`) and the target's own seeds — then a fixed number
//! of mutants — bit flips, cuts, splices,
//! tokens of the target's dictionary, extreme numbers, deep nesting, invalid UTF-8. A
//! case fails when the target panics, runs longer than [`CASE_TIME_LIMIT`], or (with
//! [`Counting`] installed as the global allocator) allocates more than [`CASE_MEMORY_LIMIT`].
//!
//! Environment: `FUNDGUARD_FUZZ_SEED` fixes the random seed (CI sets one, so a run is
//! repeatable; otherwise each run explores new cases and prints its seed),
//! `FUNDGUARD_FUZZ_CASES` overrides the number of mutants, `FUNDGUARD_FUZZ_SECONDS` runs
//! each target for that long instead, and `FUNDGUARD_FUZZ_TRACE=FILE` writes every input
//! to FILE before trying it — what a case that kills the process (a stack overflow
//! aborts) leaves behind.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One fuzz target and what the bounded run needs to drive it.
pub struct Target {
    /// The name of its cargo-fuzz target, corpus and artifacts directories.
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// Seeds made in code: realistic input (simulator output in each format, the example rules).
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens the mutator splices in (keys and values the target looks for).
    pub dictionary: &'static [&'static str],
    /// Mutants per bounded run.
    pub cases: u32,
    /// Longest input tried.
    pub max_len: usize,
}

/// A case that runs longer than this is reported as a hang.
pub const CASE_TIME_LIMIT: Duration = Duration::from_secs(20);
/// A case that allocates more than this (beyond what was live before it) is reported.
pub const CASE_MEMORY_LIMIT: usize = 512 << 20;
/// With [`Counting`] installed, an allocation that would take the process past this stops
/// it at once (saving the input first) rather than leave it to the kernel's OOM killer.
pub const PROCESS_MEMORY_LIMIT: usize = 3 << 30;

/// What a bounded run did.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub seeds: usize,
    pub mutants: u64,
    pub took: Duration,
    /// The most any one case allocated, when [`Counting`] is installed.
    pub peak_bytes: usize,
}

/// Runs `target` on its seeds and mutants; panics with the failing input (saved to a file)
/// at the first case that panics, hangs or allocates without bound.
pub fn fuzz(target: &Target) -> Report {
    let seed = env("FUNDGUARD_FUZZ_SEED").unwrap_or_else(fresh_seed);
    let cases = env("FUNDGUARD_FUZZ_CASES").unwrap_or(u64::from(target.cases));
    let seconds = env("FUNDGUARD_FUZZ_SECONDS").map(Duration::from_secs);
    eprintln!(
        "fuzzing `{}`: seed {seed} (FUNDGUARD_FUZZ_SEED={seed} repeats this run), {}",
        target.name,
        match seconds {
            Some(s) => format!("for {} s", s.as_secs()),
            None => format!("{cases} mutants"),
        }
    );
    let started = Instant::now();
    let mut pool = files(&fuzz_dir().join("regressions").join(target.name));
    pool.extend(files(&fuzz_dir().join("artifacts").join(target.name)));
    pool.extend(files(&fuzz_dir().join("corpus").join(target.name)));
    pool.extend((target.seeds)());
    pool.retain(|s| s.len() <= target.max_len);
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let mut peak = 0;
    for (i, input) in pool.iter().enumerate() {
        peak = peak.max(case(target, input, seed, &format!("seed #{i}")));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut mutants = 0u64;
    loop {
        let done = match seconds {
            Some(limit) => started.elapsed() >= limit,
            None => mutants >= cases,
        };
        if done {
            break;
        }
        let input = mutate(&mut rng, &pool, target.dictionary, target.max_len);
        peak = peak.max(case(target, &input, seed, &format!("mutant #{mutants}")));
        mutants += 1;
    }
    let report = Report { seed, seeds: pool.len(), mutants, took: started.elapsed(), peak_bytes: peak };
    let memory = if COUNTING.load(Ordering::Relaxed) {
        format!("largest allocation of a case: {} KiB", report.peak_bytes >> 10)
    } else {
        "allocations not counted".to_string()
    };
    eprintln!(
        "fuzzed `{}`: {} seeds and {} mutants in {:.1} s, no failure ({memory})",
        target.name,
        report.seeds,
        report.mutants,
        report.took.as_secs_f64()
    );
    report
}

/// Runs one case; returns what it allocated at most.
fn case(target: &Target, input: &[u8], seed: u64, which: &str) -> usize {
    if COUNTING.load(Ordering::Relaxed) {
        let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        current.clear();
        current.extend_from_slice(input);
        *CURRENT_CASE.lock().unwrap_or_else(|p| p.into_inner()) =
            format!("`{}` {which} (FUNDGUARD_FUZZ_SEED={seed})", target.name);
        CURRENT_TARGET.store(target as *const Target as *mut Target, Ordering::Relaxed);
    }
    if let Some(trace) = std::env::var_os("FUNDGUARD_FUZZ_TRACE") {
        let _ = std::fs::write(trace, input);
    }
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let took = started.elapsed();
    let allocated = PEAK.load(Ordering::Relaxed).saturating_sub(live);
    let problem = match outcome {
        Err(panic) => Some(format!("panicked: {}", panic_message(&*panic))),
        Ok(()) if took > CASE_TIME_LIMIT => Some(format!("took {:.1} s (a hang?)", took.as_secs_f64())),
        Ok(()) if COUNTING.load(Ordering::Relaxed) && allocated > CASE_MEMORY_LIMIT => {
            Some(format!("allocated {} MiB for an input of {} bytes", allocated >> 20, input.len()))
        }
        Ok(()) => None,
    };
    if let Some(problem) = problem {
        let saved = save(target.name, input);
        panic!(
            "fuzz target `{}` {problem} on {which} (FUNDGUARD_FUZZ_SEED={seed}).\n\
             The input is saved at {saved}; copy it to fuzz/regressions/{}/ so every run replays it.\n\
             Input ({} bytes): {}",
            target.name,
            target.name,
            input.len(),
            shown(input)
        );
    }
    allocated
}

/// `fuzz/`, where the regressions, the corpus and cargo-fuzz's crashes live.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// A seed no earlier run used (the clock and the process).
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    ChaCha8Rng::seed_from_u64(nanos as u64 ^ u64::from(std::process::id()).rotate_left(32)).next_u64()
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// Every file of a directory, sorted by name; none when it does not exist.
fn files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn save(target: &str, input: &[u8]) -> String {
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let dir = std::env::temp_dir().join("fundguard-fuzz").join(target);
    let path = dir.join(format!("crash-{hash:016x}"));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(nowhere: {e})"),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// The input as an escaped byte string, cut after 2000 bytes.
fn shown(input: &[u8]) -> String {
    let head: String = input.iter().take(2000).flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    if input.len() > 2000 { format!("b\"{head}\"…") } else { format!("b\"{head}\"") }
}

/// Numbers that break arithmetic and exact decimals.
const NUMBERS: &[&str] = &[
    "-9300000000000",
    "9300000000000000",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551616",
    "79228162514264337593543950335",
    "79228162514264337593543950336",
    "0.12345678901234567890123456789",
    "1e400",
    "-1e-400",
    "1e28",
    "1E-29",
    "253402300800000",
    "-1",
    "-0",
    "0.0",
    "NaN",
];

/// A mutant: a pool entry changed one to six times.
fn mutate(rng: &mut ChaCha8Rng, pool: &[Vec<u8>], dictionary: &[&str], max_len: usize) -> Vec<u8> {
    let mut data = pool[rng.random_range(0..pool.len())].clone();
    for _ in 0..rng.random_range(1..=6) {
        let at = rng.random_range(0..=data.len());
        match rng.random_range(0..12) {
            0 if !data.is_empty() => {
                let i = rng.random_range(0..data.len());
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !data.is_empty() => {
                let i = rng.random_range(0..data.len());
                data[i] = *pick(rng, b"\0\xff\x7f\x80\"{}[],:\\\n\t0-.e ");
            }
            2 if !data.is_empty() => {
                let from = rng.random_range(0..data.len());
                let to = (from + rng.random_range(1..=32)).min(data.len());
                data.drain(from..to);
            }
            3 => {
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                data.splice(at..at, bytes);
            }
            4 if !data.is_empty() => {
                let from = rng.random_range(0..data.len());
                let to = (from + rng.random_range(1..=64)).min(data.len());
                let copy = data[from..to].to_vec();
                data.splice(at..at, copy);
            }
            5 | 6 if !dictionary.is_empty() => {
                data.splice(at..at, pick(rng, dictionary).bytes());
            }
            7 => {
                // Replace the run of digits around `at` (or insert) with an extreme number.
                let digit = |b: &u8| b.is_ascii_digit() || *b == b'-' || *b == b'.';
                let start = data[..at].iter().rposition(|b| !digit(b)).map_or(0, |i| i + 1);
                let end = data[at..].iter().position(|b| !digit(b)).map_or(data.len(), |i| at + i);
                data.splice(start..end, pick(rng, NUMBERS).bytes());
            }
            8 if pool.len() > 1 => {
                let other = &pool[rng.random_range(0..pool.len())];
                let from = rng.random_range(0..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            9 => {
                let depth = rng.random_range(1..=4000);
                let (open, close) = *pick(rng, &[("[", "]"), ("{\"a\":", "}"), ("- ", ""), ("a:\n ", "")]);
                let mut nested = open.repeat(depth).into_bytes();
                if rng.random_bool(0.5) {
                    nested.extend_from_slice(close.repeat(depth).as_bytes());
                }
                data.splice(at..at, nested);
            }
            10 => {
                const INVALID_UTF8: &[&[u8]] =
                    &[b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"];
                data.splice(at..at, pick(rng, INVALID_UTF8).iter().copied());
            }
            _ => data.truncate(at),
        }
    }
    data.truncate(max_len);
    data
}

fn pick<'t, T>(rng: &mut ChaCha8Rng, items: &'t [T]) -> &'t T {
    &items[rng.random_range(0..items.len())]
}

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);
/// Set once the process went over [`PROCESS_MEMORY_LIMIT`]: allocations pass while the
/// input is saved and reported, then the process aborts.
static OVER: AtomicBool = AtomicBool::new(false);
/// The case running, for the report when it takes all memory.
static CURRENT: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());
static CURRENT_CASE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
static CURRENT_TARGET: std::sync::atomic::AtomicPtr<Target> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Saves and reports the case that took the process over its memory limit.
fn report_memory(size: usize) {
    let input = CURRENT.lock().map(|c| c.clone()).unwrap_or_default();
    let case = CURRENT_CASE.lock().map(|c| c.clone()).unwrap_or_default();
    let target = CURRENT_TARGET.load(Ordering::Relaxed);
    // SAFETY: set from a `&'static Target`'s address (every target is a static) or null.
    let name = unsafe { target.as_ref() }.map_or("?", |t| t.name);
    let saved = save(name, &input);
    eprintln!(
        "fuzz target {case} asked for {size} more bytes with {} MiB live, over the limit of {} MiB: stopping.\n\
         The input is saved at {saved}; copy it to fuzz/regressions/{name}/ so every run replays it.\n\
         Input ({} bytes): {}",
        LIVE.load(Ordering::Relaxed) >> 20,
        PROCESS_MEMORY_LIMIT >> 20,
        input.len(),
        shown(&input)
    );
}

/// The system allocator, counting live bytes so a bounded run can catch a case that
/// allocates without bound. Install it in the test binary:
/// `#[global_allocator] static ALLOC: fundguard_fuzz::driver::Counting = fundguard_fuzz::driver::Counting;`
pub struct Counting;

impl Counting {
    /// Whether an allocation of `size` more bytes may go ahead; reports the case once when not.
    fn allows(size: usize) -> bool {
        if LIVE.load(Ordering::Relaxed).saturating_add(size) <= PROCESS_MEMORY_LIMIT || OVER.load(Ordering::Relaxed) {
            return true;
        }
        OVER.store(true, Ordering::Relaxed);
        report_memory(size);
        false
    }

    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
        if !COUNTING.load(Ordering::Relaxed) {
            COUNTING.store(true, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is passed on to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Counting::allows(layout.size()) {
            return std::ptr::null_mut(); // the allocation error handler aborts
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` needs.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Counting::grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Counting::allows(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Counting::grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes through it).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Counting::allows(new_size.saturating_sub(layout.size())) {
            return std::ptr::null_mut();
        }
        // SAFETY: as `dealloc`; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            Counting::grew(new_size);
        }
        p
    }
}
