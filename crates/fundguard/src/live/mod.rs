//! `fundguard run`: a long-running service over live sources.
//!
//! Shape: every source is a task that sends batches of raw messages to one
//! **pipeline thread**, which owns the decoders and the engine, and answers each
//! batch once it is evaluated — so a source only reads on (and an HTTP client only
//! gets its 2xx) after the pipeline took its batch. The channel is bounded: when the
//! pipeline is slow, sources wait instead of buffering without limit. A clock task
//! moves event time on when sources go quiet, so deadlines still fire; a reload task
//! swaps in new rules when their files change or on SIGHUP, after validating them; a
//! scheduler task runs `sql` rules when they are due and hands their findings to the
//! pipeline thread, which owns the sinks.
//!
//! The service starts in two steps:
//! - [`assemble`] opens everything (data directory, rules and engine, checkpoint, sinks,
//!   console, notifier) into a [`Service`](assemble::Service);
//! - [`serve`] runs it: starts the [`thread`] over the [`pipeline`], the [`sources`], the
//!   [`clock`], [`scheduled`] SQL and [`reload`]; waits for a signal and drains.
//!
//! Sources and tasks talk to the pipeline thread only through [`input`]; durability is
//! [`checkpoint`]'s.

mod assemble;
mod catalog;
pub mod checkpoint;
mod clock;
mod console;
mod coverage;
mod data_dir;
mod health;
mod input;
mod lookups;
mod notifier;
mod pipeline;
mod reload;
mod scheduled;
mod serve;
mod sources;
mod suggestions;
mod thread;

use crate::config::Config;

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    assemble::assemble(config)?.run().await
}
