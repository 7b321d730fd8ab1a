//! Decoding on the pipeline thread. Message sources hand raw messages: each source has
//! its decoder (a JSON source whose subjects or topics name tables has one per table);
//! database logs hand events they decoded, which get the declared column types here.
//! What cannot be decoded is dead-lettered with its position and the reason — except
//! for HTTP, whose client gets the whole batch refused instead (`all_or_nothing`).

use fundguard_core::Position;
use fundguard_formats::plain::{PlainConfig, TableFrom};
use fundguard_formats::{Decoded, Format};
use fundguard_server::{IngestVerdict, Rejected};
use fundguard_sources::DecodedBatch;

use super::LivePipeline;

impl LivePipeline {
    /// Decodes a batch of raw messages and evaluates what decoded. Messages a checkpoint
    /// already covers are dropped first.
    pub(super) fn batch(
        &mut self,
        source: usize,
        mut messages: Vec<(Vec<u8>, Position)>,
        table: Option<String>,
        all_or_nothing: bool,
    ) -> IngestVerdict {
        // Re-deliveries of what a checkpoint already covers (acknowledged too late before a crash).
        if let Some(progress) = self.checkpoints.progress.get(source) {
            messages.retain(|(_, position)| !progress.covers(position));
        }
        if let Some(progress) = self.checkpoints.progress.get_mut(source) {
            for (_, position) in &messages {
                progress.observe(position);
            }
        }
        let messages = &messages[..];
        let decoder = match (table, self.formats.get(source)) {
            (Some(table), Some(Some(Format::Json(plain)))) => {
                let format = Format::Json(PlainConfig { table: TableFrom::Fixed(table.clone()), ..plain.clone() });
                let (schemas, max) = (self.schemas.clone(), self.max_message_bytes);
                let projection = self.engine.projection();
                let decoder = || {
                    let mut decoder = format.decoder(schemas).with_max_message_bytes(max);
                    decoder.set_projection(projection);
                    decoder
                };
                self.table_decoders.entry((source, table)).or_insert_with(decoder)
            }
            _ => match self.decoders.get_mut(source) {
                Some(Some(d)) => d,
                _ => return Ok(0),
            },
        };
        let mut events = Vec::with_capacity(messages.len());
        let mut rejected = Vec::new();
        let mut dead = 0;
        for (index, (message, position)) in messages.iter().enumerate() {
            match decoder.decode(message, position, &mut events) {
                Ok(Decoded::Events(_) | Decoded::Skipped(_)) => {}
                Err(e) if all_or_nothing => rejected.push(Rejected { index, reason: e.to_string() }),
                Err(e) => {
                    dead += 1;
                    if let Err(io) = self.dead_letters[source].write(message, position, &e.to_string()) {
                        tracing::error!(source, error = %io, "cannot write a dead letter: {io:#}");
                    }
                }
            }
        }
        if !rejected.is_empty() {
            if let Some(name) = self.names.get(source) {
                self.telemetry.decode_errors(name, rejected.len() as u64);
            }
            return Err(rejected);
        }
        let last_position = messages.last().map(|(_, p)| p.to_string());
        self.evaluate(source, &events, dead, last_position);
        Ok(events.len())
    }

    /// A batch a database-log source decoded: declared types applied, bad rows
    /// dead-lettered, the rest evaluated.
    pub(super) fn events(&mut self, source: usize, batch: DecodedBatch, position: String) {
        let mut dead = 0;
        let mut write_dead = |this: &mut Self, payload: &[u8], position: &Position, reason: &str| {
            dead += 1;
            if let Err(io) = this.dead_letters[source].write(payload, position, reason) {
                tracing::error!(source, error = %io, "cannot write a dead letter: {io:#}");
            }
        };
        for letter in &batch.dead_letters {
            write_dead(self, &letter.payload, &letter.position, &letter.reason);
        }
        let mut events = Vec::with_capacity(batch.events.len());
        for mut event in batch.events {
            match self.declared.apply(&mut event) {
                Ok(()) => events.push(event),
                Err(e) => {
                    let payload = serde_json::to_vec(&event).unwrap_or_default();
                    write_dead(self, &payload, &event.position, &e.to_string());
                }
            }
        }
        self.schema_changed(source, &batch.schema_statements);
        self.evaluate(source, &events, dead, (!position.is_empty()).then_some(position));
        if let Some(at) = batch.caught_up {
            self.caught_up(source, at);
        }
    }

    /// DDL a database source saw: each a change (kind `ddl`, service the source's name) that
    /// alarm attribution ranks against the incidents that follow it.
    fn schema_changed(&mut self, source: usize, statements: &[fundguard_sources::SchemaStatement]) {
        let service = self.names.get(source).cloned().unwrap_or_default();
        for s in statements {
            let change = fundguard_attribution::Change {
                id: 0,
                service: service.clone(),
                kind: "ddl".into(),
                version: None,
                at: s.at,
                author: None,
                link: None,
                tables: fundguard_attribution::tables_of_ddl(&s.statement, &s.database),
                description: Some(s.statement.chars().take(1000).collect()),
            };
            for (sink, name) in self.sinks.iter_mut().zip(&self.sink_names) {
                if let Err(e) = sink.change(&change) {
                    tracing::warn!(sink = %name, "recording the DDL of `{service}` as a change: {e:#}");
                }
            }
        }
    }
}
