//! Every decoder, on arbitrary bytes: must return events or an error, never panic.
#![no_main]

use std::sync::Arc;

use fundguard_core::{ColumnType, Position, TableSchemas};
use fundguard_formats::Format;
use fundguard_formats::plain::PlainConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Declared types exercise the coercion path too.
    let schemas = Arc::new(TableSchemas {
        tables: [(
            "shop.t".to_string(),
            [("amount".to_string(), ColumnType::Decimal), ("at".to_string(), ColumnType::Timestamp)].into(),
        )]
        .into(),
    });
    for format in [Format::Debezium, Format::Canal, Format::Maxwell, Format::Json(PlainConfig::default())] {
        let mut decoder = format.decoder(schemas.clone());
        let mut out = Vec::new();
        let _ = decoder.decode(data, &Position::Synthetic { seq: 0 }, &mut out);
    }
});
