//! Where change events come from. For now: recorded logs in files (plain or gzip) and stdin.
//!
//! A source yields raw messages with their [`Position`]; decoding is the format's
//! job (`fundguard-formats`), so every source works with every format.

pub mod file;
pub mod health;

pub use file::{LineSource, open_lines};
pub use health::SourceHealth;
