//! HTTP ingest bodies: a JSON array of business messages, split as the server splits it
//! (`fundguard-server`'s ingest handler reads the body as `Vec<&RawValue>`) and decoded
//! all or nothing as the pipeline decodes an HTTP batch — a reason per bad message,
//! never a panic.

use std::sync::Arc;

use fundguard_core::Position;
use fundguard_formats::Format;
use fundguard_formats::plain::{PlainConfig, TableFrom};
use serde_json::value::RawValue;

use crate::decode::{check_event, check_reason};
use crate::seeds;

pub fn ingest(data: &[u8]) {
    let Ok(messages) = serde_json::from_slice::<Vec<&RawValue>>(data) else { return };
    for table in [TableFrom::Field("type".into()), TableFrom::Fixed("shop.refunds".into())] {
        let format = Format::Json(PlainConfig { table, time_field: "ts".into() });
        let mut decoder = format.decoder(seeds::schemas());
        let mut events = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let position = Position::Line { input: Arc::from("http:fuzz"), line: i as u64 + 1, index: 0 };
            if let Err(e) = decoder.decode(message.get().as_bytes(), &position, &mut events) {
                check_reason(&e.to_string(), message.get().as_bytes());
            }
        }
        events.iter().for_each(check_event);
    }
}

/// Batches of simulator events as business messages.
pub fn seeds() -> Vec<Vec<u8>> {
    let messages: Vec<String> = seeds::events().iter().map(seeds::plain).collect();
    let mut seeds: Vec<Vec<u8>> = messages.chunks(7).map(|c| format!("[{}]", c.join(",")).into_bytes()).collect();
    seeds.push(b"[]".to_vec());
    seeds.push(
        b"[{\"type\":\"shop.refunds\",\"ts\":-9300000000000,\"id\":1},{\"ts\":\"2024-05-01T00:00:00Z\"}]".to_vec(),
    );
    seeds
}

pub const DICTIONARY: &[&str] =
    &["\"type\":", "\"ts\":", "\"amount\":", "\"id\":", "\"currency\":\"CNY\"", "\"status\":\"PAID\"", "},{", "[", "]"];
