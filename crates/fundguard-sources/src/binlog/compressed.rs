//! MariaDB's compressed binlog events (`log_bin_compress=ON`): query and row events above
//! `log_bin_compress_min_len` bytes are written with their own event types (165–171) and a
//! zlib-compressed tail. The client library does not know these types, so without this
//! module they would be skipped as unknown — every change in them lost without a word.
//! Each is turned back into the plain event it stands for (same header, the tail
//! inflated), which then decodes like any other.
//!
//! The compressed tail starts with one byte — bit 7 set, the algorithm in bits 4–6 (0 is
//! zlib, the only one MariaDB writes), in bits 0–2 how many bytes follow giving the
//! inflated length (big-endian) — then the zlib stream.

use std::io::Read;

use mysql_async::binlog::events::Event;

/// `QUERY_COMPRESSED_EVENT`.
const QUERY_COMPRESSED: u8 = 165;
const QUERY: u8 = 2;
/// `WRITE/UPDATE/DELETE_ROWS_COMPRESSED_EVENT_V1`, then the same of version 2.
const ROWS_COMPRESSED_V1: std::ops::RangeInclusive<u8> = 166..=168;
const ROWS_COMPRESSED_V2: std::ops::RangeInclusive<u8> = 169..=171;
const WRITE_ROWS_V1: u8 = 23;
const WRITE_ROWS_V2: u8 = 30;
/// A query event's fixed part: thread id, execution time, database name length, error
/// code, status variables' length.
const QUERY_POST_HEADER: usize = 13;
/// A rows event's fixed part: table id (6 bytes) and flags.
const ROWS_POST_HEADER: usize = 8;
/// The event header: timestamp, type, server id, size, position, flags.
const HEADER: usize = 19;
/// The CRC32 after an event when the binlog has checksums.
const CHECKSUM: usize = 4;
/// The largest event MariaDB writes (`max_allowed_packet`'s ceiling, 1 GiB).
const MAX_EVENT: usize = 1 << 30;

/// The plain event a compressed one stands for; `Ok(None)` when `event` is not compressed,
/// an error (for a dead letter) when it cannot be inflated.
pub(super) fn decompress(event: &Event) -> Result<Option<Event>, String> {
    let header = event.header();
    let data = event.data();
    let kind = header.event_type_raw();
    let (plain_kind, kept) = if kind == QUERY_COMPRESSED {
        (QUERY, query_prefix(data)?)
    } else if ROWS_COMPRESSED_V1.contains(&kind) {
        let update = kind == ROWS_COMPRESSED_V1.start() + 1;
        (WRITE_ROWS_V1 + (kind - ROWS_COMPRESSED_V1.start()), rows_prefix(data, false, update)?)
    } else if ROWS_COMPRESSED_V2.contains(&kind) {
        let update = kind == ROWS_COMPRESSED_V2.start() + 1;
        (WRITE_ROWS_V2 + (kind - ROWS_COMPRESSED_V2.start()), rows_prefix(data, true, update)?)
    } else {
        return Ok(None);
    };
    let mut body = data[..kept].to_vec();
    body.extend(inflate(&data[kept..])?);
    // The event as the server would have sent it uncompressed. Its checksum is not checked
    // again (the compressed event's was, on arrival), only its room kept.
    let checksum = if event.checksum().is_some() { CHECKSUM } else { 0 };
    let size = u32::try_from(HEADER + body.len() + checksum).map_err(|_| "an inflated event over 4 GiB".to_string())?;
    let mut bytes = Vec::with_capacity(size as usize);
    bytes.extend(header.timestamp().to_le_bytes());
    bytes.push(plain_kind);
    bytes.extend(header.server_id().to_le_bytes());
    bytes.extend(size.to_le_bytes());
    bytes.extend(header.log_pos().to_le_bytes());
    bytes.extend(header.flags_raw().to_le_bytes());
    bytes.extend(body);
    bytes.extend([0; CHECKSUM][..checksum].iter());
    Event::read(event.fde(), &bytes[..]).map(Some).map_err(|e| format!("an inflated event does not read back: {e}"))
}

/// How many leading bytes of a compressed query event are not compressed: the fixed
/// part, the status variables and the NUL-terminated database name.
fn query_prefix(data: &[u8]) -> Result<usize, String> {
    let fixed = data.get(..QUERY_POST_HEADER).ok_or("a compressed query event cut short")?;
    let database = usize::from(fixed[8]);
    let status = usize::from(u16::from_le_bytes([fixed[11], fixed[12]]));
    let kept = QUERY_POST_HEADER + status + database + 1;
    if kept > data.len() {
        return Err("a compressed query event cut short".into());
    }
    Ok(kept)
}

/// How many leading bytes of a compressed rows event are not compressed: the fixed part,
/// version 2's extra data, the column count and the column bitmaps (two for an update).
fn rows_prefix(data: &[u8], v2: bool, update: bool) -> Result<usize, String> {
    let short = || "a compressed rows event cut short".to_string();
    let mut at = ROWS_POST_HEADER;
    if v2 {
        let extra = data.get(at..at + 2).ok_or_else(short)?;
        at += usize::from(u16::from_le_bytes([extra[0], extra[1]])).max(2);
    }
    let (width, length) = match *data.get(at).ok_or_else(short)? {
        n @ 0..=250 => (u64::from(n), 1),
        0xfc => (le(data.get(at + 1..at + 3).ok_or_else(short)?), 3),
        0xfd => (le(data.get(at + 1..at + 4).ok_or_else(short)?), 4),
        0xfe => (le(data.get(at + 1..at + 9).ok_or_else(short)?), 9),
        other => return Err(format!("a compressed rows event with a bad column count (0x{other:02x})")),
    };
    let bitmap = usize::try_from(width.div_ceil(8)).map_err(|_| short())?;
    at += length + bitmap * if update { 2 } else { 1 };
    if at > data.len() {
        return Err(short());
    }
    Ok(at)
}

fn le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |n, &b| (n << 8) | u64::from(b))
}

/// Inflates a compressed tail, to exactly the length it announces (never more: the length
/// bounds what is allocated).
fn inflate(tail: &[u8]) -> Result<Vec<u8>, String> {
    let (&flags, rest) = tail.split_first().ok_or("a compressed event without its compressed part")?;
    if flags & 0x80 == 0 {
        return Err(format!("a compressed event whose compression byte is 0x{flags:02x}"));
    }
    let algorithm = (flags & 0x70) >> 4;
    if algorithm != 0 {
        return Err(format!("a compressed event of algorithm {algorithm}; MariaDB writes zlib (0)"));
    }
    let lengths = usize::from(flags & 0x07);
    if !(1..=4).contains(&lengths) || rest.len() < lengths {
        return Err(format!("a compressed event with a bad length field ({lengths} bytes)"));
    }
    let expected = rest[..lengths].iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
    if expected > MAX_EVENT {
        return Err(format!("a compressed event announcing {expected} bytes, more than an event can hold"));
    }
    let mut out = Vec::with_capacity(expected.min(16 << 20));
    flate2::read::ZlibDecoder::new(&rest[lengths..])
        .take(expected as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("a compressed event that does not inflate: {e}"))?;
    if out.len() != expected {
        return Err(format!("a compressed event inflated to {} bytes, announced {expected}", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A compressed tail as MariaDB writes it (`binlog_buf_compress`).
    fn compress(plain: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let lengths = match plain.len() {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xff_ffff => 3,
            _ => 4,
        };
        let mut tail = vec![0x80 | lengths as u8];
        tail.extend(&(plain.len() as u32).to_be_bytes()[4 - lengths..]);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(plain).unwrap();
        tail.extend(z.finish().unwrap());
        tail
    }

    proptest! {
        #[test]
        fn tails_inflate_to_what_was_compressed(plain in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(inflate(&compress(&plain)), Ok(plain));
        }

        #[test]
        fn no_bytes_panic_or_allocate_what_they_announce(bytes in proptest::collection::vec(any::<u8>(), 0..64), v2 in any::<bool>(), update in any::<bool>()) {
            let _ = inflate(&bytes);
            let _ = rows_prefix(&bytes, v2, update);
            let _ = query_prefix(&bytes);
        }
    }

    #[test]
    fn a_wrong_announced_length_is_refused() {
        let mut tail = compress(b"hello");
        tail[1] = 9;
        assert!(inflate(&tail).unwrap_err().contains("announced 9"));
        assert!(inflate(&[0x10, 1, 2]).unwrap_err().contains("compression byte"));
    }

    #[test]
    fn prefixes_end_where_the_compressed_part_starts() {
        // Table id, flags, 3 columns, one bitmap (two for an update).
        let rows = [1, 0, 0, 0, 0, 0, 0, 0, 3, 0b111, 0b111, 0x85];
        assert_eq!(rows_prefix(&rows, false, false), Ok(10));
        assert_eq!(rows_prefix(&rows, false, true), Ok(11));
        // Version 2: two bytes of extra data length (itself only).
        let v2 = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0b111, 0x85];
        assert_eq!(rows_prefix(&v2, true, false), Ok(12));
        // Query: fixed part with a 4-byte database name and 2 bytes of status variables.
        let mut query = vec![0; 8];
        query.extend([4, 0, 0, 2, 0]);
        query.extend([9, 9]);
        query.extend(b"shop\0");
        query.push(0x81);
        assert_eq!(query_prefix(&query), Ok(20));
    }
}
