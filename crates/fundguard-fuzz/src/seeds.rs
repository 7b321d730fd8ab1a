//! Realistic inputs to start from: simulator output in every format, so mutants reach
//! past "not valid JSON" into rows, types and the rules.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use fundguard_core::{ChangeEvent, ColumnType, EventTime, TableSchemas};
use fundguard_formats::{canal, debezium, maxwell};
use fundguard_sim::{IncidentKind, SimConfig, Simulator};

/// The simulator's schema plus a table whose declared types force the coercion path.
pub fn schemas() -> Arc<TableSchemas> {
    static SCHEMAS: OnceLock<Arc<TableSchemas>> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            let mut schemas = fundguard_sim::schema();
            let declared = [("amount", ColumnType::Decimal), ("at", ColumnType::Timestamp), ("n", ColumnType::Int)];
            schemas.tables.insert("shop.t".into(), declared.map(|(c, t)| (c.to_string(), t)).into());
            Arc::new(schemas)
        })
        .clone()
}

/// A few hundred simulator events with incidents of every kind.
pub fn events() -> &'static [ChangeEvent] {
    static EVENTS: OnceLock<Vec<ChangeEvent>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let config = SimConfig {
            seed: 7,
            orders: 24,
            hours: 1,
            incident_rate: 0.5,
            kinds: IncidentKind::ALL.to_vec(),
            ..SimConfig::default()
        };
        let mut events = Vec::new();
        Simulator::new(config).run(|e| events.push(e));
        events
    })
}

fn columns(table: &str) -> BTreeMap<String, ColumnType> {
    fundguard_sim::schema().table(table).cloned().unwrap_or_default()
}

/// One event as a business message: its row, `type` naming the table, `ts` in milliseconds.
pub fn plain(e: &ChangeEvent) -> String {
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    if let Some(row) = e.current_row() {
        for (name, value) in row.iter() {
            object.insert(name.to_string(), value.to_json());
        }
    }
    object.insert("type".into(), e.table.to_string().into());
    object.insert("ts".into(), e.commit_time.as_millis().into());
    serde_json::Value::Object(object).to_string()
}

/// Every event in every format, one message each.
pub fn messages() -> Vec<String> {
    let mut out = Vec::new();
    for (i, e) in events().iter().enumerate().step_by(3) {
        let columns = columns(&e.table);
        let options = |schema_wrapper, decimal_mode| debezium::EncodeOptions { schema_wrapper, decimal_mode };
        out.push(debezium::encode(e, &columns, options(true, debezium::DecimalMode::Precise)));
        out.push(debezium::encode(e, &columns, options(false, debezium::DecimalMode::String)));
        out.push(canal::encode(i as u64, &[e], &columns));
        out.push(maxwell::encode(e, i as u64));
        out.push(plain(e));
    }
    out
}

/// Messages that decode to no rows, and a few hostile ones.
pub const ODD_MESSAGES: &[&str] = &[
    "null",
    "",
    "{\"schema\":{\"type\":\"struct\"},\"payload\":null}",
    "{\"database\":\"shop\",\"table\":\"orders\",\"type\":\"table-alter\",\"ts\":1714550401}",
    "{\"data\":null,\"database\":\"shop\",\"es\":1714550401000,\"isDdl\":true,\"table\":\"orders\",\"type\":\"ALTER\"}",
    "{\"database\":\"shop\",\"table\":\"refunds\",\"type\":\"insert\",\"ts\":-9300000000000,\"data\":{\"id\":1,\"amount\":-5}}",
    "{\"database\":\"shop\",\"table\":\"t\",\"type\":\"insert\",\"ts\":1714550401,\"data\":{\"amount\":\"1e400\",\"at\":\"+262143-12-31T23:59:59Z\",\"n\":99999999999999999999}}",
    "{\"type\":\"shop.t\",\"ts\":\"9999-12-31T23:59:59.999999Z\",\"amount\":0.12345678901234567890123456789}",
];

/// A base commit time for generated events: 2024-05-01.
pub const BASE: EventTime = EventTime::from_micros(1_714_521_600_000_000);
