//! Where change events come from: recorded logs in files (plain or gzip) and stdin, and
//! NATS JetStream.
//!
//! A source yields raw messages with their [`Position`]; decoding is the format's
//! job (`fundguard-formats`), so every source works with every format.

pub mod file;
pub mod health;
pub mod nats;

pub use file::{LineSource, open_lines};
pub use health::SourceHealth;
