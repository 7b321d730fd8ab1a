//! Where change events come from.
//!
//! Two kinds of source live here:
//! - **message sources** (files and stdin, NATS JetStream, Kafka) yield raw messages
//!   with their [`Position`](fundguard_core::Position); decoding is the format's job
//!   (`fundguard-formats`), so every message source works with every format;
//! - **database log sources** (MySQL/MariaDB binlog, PostgreSQL logical decoding)
//!   decode their server's own protocol into [`DecodedBatch`]es, and store where to
//!   resume in a [`PositionStore`].

mod batch;
pub mod binlog;
pub mod checkpoint;
pub mod file;
pub mod kafka;
mod message;
pub mod nats;
mod position_store;
pub mod postgres;
pub mod tls;

pub use batch::{DeadLetter, DecodedBatch, SchemaStatement};
pub use file::{LineSource, open_lines};
pub use message::{Message, MessageSource, SourceError};
pub use position_store::{PositionError, PositionStore};
