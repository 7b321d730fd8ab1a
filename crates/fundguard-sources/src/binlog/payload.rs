//! MySQL 8's compressed transactions (`binlog_transaction_compression=ON`, 8.0.20+): a
//! transaction's events — `BEGIN`, table maps, rows, the `XID` commit — are written
//! zstd-compressed inside one `TRANSACTION_PAYLOAD_EVENT`, after the transaction's GTID
//! event. [`InnerEvents`] inflates the payload and reads the events back one by one, each
//! placed at the payload's own end position: the whole transaction sits at one place in
//! the binlog, and resuming after it means resuming after the payload.
//!
//! Inner events carry no checksum (MySQL's WL#3549), so they are read with checksums off.
//!
//! Verified against payloads built here (tests below), not against a MySQL 8 server: none
//! is installable on the machines this project is tested on (docs/sources.md).

use std::io::Read;

use mysql_async::binlog::events::{Event, EventData, FormatDescriptionEvent};

/// MySQL's `TRANSACTION_PAYLOAD_EVENT`.
pub(super) const TRANSACTION_PAYLOAD_EVENT: u8 = 40;
/// The event header: timestamp, type, server id, size, position, flags.
const HEADER: usize = 19;

/// The events of one compressed transaction, in order.
pub(super) struct InnerEvents {
    fde: FormatDescriptionEvent<'static>,
    events: Vec<u8>,
    next: usize,
    log_pos: u32,
}

impl InnerEvents {
    /// Inflates `event`'s payload (to exactly the size it announces, which bounds what is
    /// allocated); an error says why it cannot be read.
    pub(super) fn of(event: &Event) -> Result<InnerEvents, String> {
        let Ok(Some(EventData::TransactionPayloadEvent(payload))) = event.read_data() else {
            return Err("a transaction payload event that does not parse".into());
        };
        let size = payload.uncompressed_size();
        let mut events = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(16 << 20));
        payload
            .decompressed()
            .and_then(|reader| reader.take(size.saturating_add(1)).read_to_end(&mut events))
            .map_err(|e| format!("a transaction payload that does not inflate: {e}"))?;
        if events.len() as u64 != size {
            return Err(format!("a transaction payload inflated to {} bytes, announced {size}", events.len()));
        }
        let mut footer = event.fde().footer();
        footer.set_checksum_enabled(false);
        let fde = event.fde().clone().into_owned().with_footer(footer);
        Ok(InnerEvents { fde, events, next: 0, log_pos: event.header().log_pos() })
    }

    /// The next event, placed at the payload's end; `None` after the last.
    pub(super) fn next_event(&mut self) -> Result<Option<Event>, String> {
        let rest = &self.events[self.next..];
        if rest.is_empty() {
            return Ok(None);
        }
        let cut = || format!("a transaction payload cut short at byte {}", self.next);
        let header = rest.get(..HEADER).ok_or_else(cut)?;
        let size = u32::from_le_bytes([header[9], header[10], header[11], header[12]]) as usize;
        if size < HEADER || size > rest.len() {
            return Err(cut());
        }
        let mut bytes = rest[..size].to_vec();
        bytes[13..17].copy_from_slice(&self.log_pos.to_le_bytes());
        if bytes[4] == TRANSACTION_PAYLOAD_EVENT {
            return Err("a transaction payload inside a transaction payload".into());
        }
        self.next += size;
        Event::read(&self.fde, &bytes[..]).map(Some).map_err(|e| format!("an event of a transaction payload: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::binlog::BinlogVersion;
    use mysql_async::binlog::events::{BinlogEventFooter, TransactionPayloadEvent};
    use mysql_async::binlog::{BinlogChecksumAlg, TransactionPayloadCompressionType};
    use mysql_common::proto::MySerialize;

    /// An event's bytes: header then body, at position `log_pos`.
    fn event(kind: u8, log_pos: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(1_700_000_000u32.to_le_bytes());
        bytes.push(kind);
        bytes.extend(1u32.to_le_bytes());
        bytes.extend(((HEADER + body.len()) as u32).to_le_bytes());
        bytes.extend(log_pos.to_le_bytes());
        bytes.extend(0u16.to_le_bytes());
        bytes.extend(body);
        bytes
    }

    /// A query event's body: thread, time, database length, error, no status variables.
    fn query(database: &str, statement: &str) -> Vec<u8> {
        let mut body = vec![0; 8];
        body.push(database.len() as u8);
        body.extend([0, 0, 0, 0]);
        body.extend(database.as_bytes());
        body.push(0);
        body.extend(statement.as_bytes());
        body
    }

    /// A payload event at `log_pos` holding `inner`, zstd-compressed, in a binlog with
    /// CRC32 checksums (the payload event has one; its inner events none).
    fn payload(inner: &[Vec<u8>], log_pos: u32) -> (FormatDescriptionEvent<'static>, Vec<u8>) {
        let plain: Vec<u8> = inner.concat();
        let compressed = zstd::encode_all(&plain[..], 3).unwrap();
        let mut body = Vec::new();
        let size = compressed.len() as u64;
        TransactionPayloadEvent::new(size, TransactionPayloadCompressionType::ZSTD, plain.len() as u64, compressed)
            .serialize(&mut body);
        body.extend([0; 4]); // the CRC32 (not checked on read)
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4)
            .with_footer(BinlogEventFooter::new(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32));
        (fde, event(TRANSACTION_PAYLOAD_EVENT, log_pos, &body))
    }

    #[test]
    fn a_payload_gives_back_its_events_at_its_own_position() {
        let begin = event(2, 0, &query("shop", "BEGIN"));
        let xid = event(16, 0, &42u64.to_le_bytes());
        let (fde, bytes) = payload(&[begin, xid], 4242);
        let outer = Event::read(&fde, &bytes[..]).unwrap();
        let mut inner = InnerEvents::of(&outer).unwrap();
        let first = inner.next_event().unwrap().unwrap();
        assert_eq!(first.header().log_pos(), 4242);
        match first.read_data().unwrap() {
            Some(EventData::QueryEvent(q)) => assert_eq!(q.query(), "BEGIN"),
            other => panic!("{other:?}"),
        }
        let second = inner.next_event().unwrap().unwrap();
        assert!(matches!(second.read_data().unwrap(), Some(EventData::XidEvent(x)) if x.xid == 42));
        assert_eq!(second.header().log_pos(), 4242);
        assert!(inner.next_event().unwrap().is_none());
    }

    #[test]
    fn a_cut_or_nested_payload_is_an_error_not_a_panic() {
        let begin = event(2, 0, &query("shop", "BEGIN"));
        let mut cut = begin.clone();
        cut.truncate(begin.len() - 3);
        let (fde, bytes) = payload(&[begin.clone(), cut], 1);
        let mut inner = InnerEvents::of(&Event::read(&fde, &bytes[..]).unwrap()).unwrap();
        assert!(inner.next_event().unwrap().is_some());
        assert!(inner.next_event().unwrap_err().contains("cut short"));
        let nested = event(TRANSACTION_PAYLOAD_EVENT, 0, &[]);
        let (fde, bytes) = payload(&[nested], 1);
        let mut inner = InnerEvents::of(&Event::read(&fde, &bytes[..]).unwrap()).unwrap();
        assert!(inner.next_event().unwrap_err().contains("inside a transaction payload"));
    }
}
