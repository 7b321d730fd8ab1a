//! Integration tests of the decoders: realistic messages in each format, and properties.

mod canal;
mod debezium;
mod limits;
mod maxwell;
mod plain;
mod projection;
mod props;

use std::sync::Arc;

use fundguard_core::{ChangeEvent, Position, TableSchemas};
use fundguard_formats::{DecodeError, Decoded, Format};

/// Decodes one message with a fresh decoder.
pub fn decode(format: Format, message: &str) -> Result<(Decoded, Vec<ChangeEvent>), DecodeError> {
    decode_with(format, TableSchemas::default(), message)
}

pub fn decode_with(
    format: Format,
    schemas: TableSchemas,
    message: &str,
) -> Result<(Decoded, Vec<ChangeEvent>), DecodeError> {
    let mut decoder = format.decoder(Arc::new(schemas));
    let mut out = Vec::new();
    let position = Position::Line { input: Arc::from("test.jsonl"), line: 7, index: 0 };
    let decoded = decoder.decode(message.as_bytes(), &position, &mut out)?;
    Ok((decoded, out))
}

pub fn dec(s: &str) -> fundguard_core::Value {
    fundguard_core::Value::Decimal(s.parse().unwrap())
}
