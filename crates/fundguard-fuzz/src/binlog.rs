//! MySQL/MariaDB binlog row images: a table map and a rows event built from the bytes,
//! decoded as the binlog source does — rows or dead-letter reasons, never a panic.
//!
//! The input picks the rows event's type and the table's columns (each a type code and
//! its metadata bytes, whatever they hold); the rest is the row images. Now and then the
//! table map's body is taken raw from the input instead.

use fundguard_sources::binlog::decode_rows_event;

use crate::input::Input;

/// Column types (`MYSQL_TYPE_*`) and how many metadata bytes each has in a table map.
const COLUMN_TYPES: &[(u8, usize)] = &[
    (1, 0),   // TINY
    (2, 0),   // SHORT
    (3, 0),   // LONG
    (4, 1),   // FLOAT
    (5, 1),   // DOUBLE
    (6, 0),   // NULL
    (7, 0),   // TIMESTAMP
    (8, 0),   // LONGLONG
    (9, 0),   // INT24
    (10, 0),  // DATE
    (11, 0),  // TIME
    (12, 0),  // DATETIME
    (13, 0),  // YEAR
    (15, 2),  // VARCHAR
    (16, 2),  // BIT
    (17, 1),  // TIMESTAMP2
    (18, 1),  // DATETIME2
    (19, 1),  // TIME2
    (245, 1), // JSON
    (246, 2), // NEWDECIMAL
    (252, 1), // BLOB
    (253, 2), // VAR_STRING
    (254, 2), // STRING (ENUM and SET say so in their metadata: 247, 248)
    (255, 1), // GEOMETRY
];

/// Rows event types: WRITE, UPDATE, DELETE (v2), PARTIAL_UPDATE, and the v1 ones.
const ROWS_TYPES: &[u8] = &[30, 31, 32, 39, 23, 24, 25];

pub fn binlog_rows(data: &[u8]) {
    let mut input = Input::new(data);
    let rows_type = *input.pick(ROWS_TYPES);
    let offset = i32::from(input.u16() as i16) * 60;
    let table_map = if input.byte() == 0xff { input.piece().to_vec() } else { table_map(&mut input) };
    let columns = usize::from(input.byte() % 16);
    let mut rows = Vec::new();
    rows.extend_from_slice(&[1, 0, 0, 0, 0, 0]); // table id
    rows.extend_from_slice(&[0, 0]); // flags
    if rows_type >= 30 {
        rows.extend_from_slice(&[2, 0]); // no extra data
    }
    rows.push(columns as u8);
    let bitmaps = if matches!(rows_type, 31 | 39 | 24) { 2 } else { 1 };
    for _ in 0..bitmaps {
        rows.extend(std::iter::repeat_n(0xff, columns.div_ceil(8)));
    }
    rows.extend_from_slice(input.rest());
    if let Ok(decoded) = decode_rows_event(&table_map, rows_type, &rows, offset) {
        for row in decoded.iter().flatten() {
            for image in [&row.0, &row.1].into_iter().flatten() {
                serde_json::to_vec(image).expect("a row serialises");
            }
        }
    }
}

/// A table map (table id 1, `shop.t`) with the columns the input describes: their types,
/// metadata, and — when the input says so — names and ENUM values as optional metadata.
fn table_map(input: &mut Input) -> Vec<u8> {
    let count = 1 + usize::from(input.byte() % 15);
    let mut types = Vec::new();
    let mut metadata = Vec::new();
    for _ in 0..count {
        let (ty, meta) = *input.pick(COLUMN_TYPES);
        types.push(ty);
        let given = input.bytes(meta);
        metadata.extend_from_slice(given);
        metadata.extend(std::iter::repeat_n(0, meta - given.len()));
    }
    let mut out = vec![1, 0, 0, 0, 0, 0, 0, 0]; // table id, flags
    out.extend_from_slice(b"\x04shop\x00\x01t\x00");
    out.push(count as u8);
    out.extend_from_slice(&types);
    lenenc_bytes(&mut out, &metadata);
    out.extend(std::iter::repeat_n(0xff, count.div_ceil(8))); // every column nullable
    let optional = input.byte();
    if optional & 1 == 1 {
        let mut names = Vec::new();
        for i in 0..count {
            lenenc_bytes(&mut names, format!("c{i}").as_bytes());
        }
        out.push(4); // COLUMN_NAME
        lenenc_bytes(&mut out, &names);
    }
    if optional & 2 == 2 {
        let mut values = Vec::new();
        for _ in 0..usize::from(input.byte() % 3) {
            let n = input.byte() % 4;
            values.push(n);
            for v in 0..n {
                lenenc_bytes(&mut values, format!("V{v}").as_bytes());
            }
        }
        out.push(6); // ENUM_STR_VALUE
        lenenc_bytes(&mut out, &values);
    }
    out
}

/// Bytes after their length as a one-byte length-encoded integer (all that is needed here).
fn lenenc_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(250)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// Seeds: a few tables of common types with a well-formed row each.
pub fn seeds() -> Vec<Vec<u8>> {
    let pick = |code: u8| COLUMN_TYPES.iter().position(|(t, _)| *t == code).unwrap_or(0) as u16;
    let mut seeds = Vec::new();
    for rows_type in 0..3u16 {
        let mut s = Vec::new();
        s.extend_from_slice(&rows_type.to_le_bytes());
        s.extend_from_slice(&0u16.to_le_bytes()); // UTC
        s.push(0); // a built table map
        s.push(4); // five columns: LONGLONG, NEWDECIMAL(10,2), VARCHAR(64), DATETIME2(0), TIMESTAMP2(0)
        s.extend_from_slice(&pick(8).to_le_bytes());
        s.extend_from_slice(&pick(246).to_le_bytes());
        s.extend_from_slice(&[10, 2]);
        s.extend_from_slice(&pick(15).to_le_bytes());
        s.extend_from_slice(&[64, 0]);
        s.extend_from_slice(&pick(18).to_le_bytes());
        s.push(0);
        s.extend_from_slice(&pick(17).to_le_bytes());
        s.push(0);
        s.push(1); // column names
        s.push(5); // the rows event's column count
        let images = if rows_type == 1 { 2 } else { 1 };
        for _ in 0..images {
            s.push(0); // null bitmap: no NULLs
            s.extend_from_slice(&42i64.to_le_bytes());
            s.extend_from_slice(&[0x80, 0, 0, 12, 34]); // 12.34
            s.extend_from_slice(b"\x04PAID");
            // 2024-05-01 12:30:15: ((2024 * 13 + 5) << 22 | 1 << 17 | 12 << 12 | 30 << 6 | 15) + 2^39
            let packed: u64 = ((2024 * 13 + 5) << 22 | 1 << 17 | 12 << 12 | 30 << 6 | 15) + (1 << 39);
            s.extend_from_slice(&packed.to_be_bytes()[3..]);
            s.extend_from_slice(&1_714_566_615u32.to_be_bytes());
        }
        seeds.push(s);
    }
    // An ENUM column (STRING with real type 247) with its values, and a BIT(12).
    let mut s = vec![0, 0, 0, 0, 0, 1];
    s.extend_from_slice(&pick(254).to_le_bytes());
    s.extend_from_slice(&[247, 1]);
    s.extend_from_slice(&pick(16).to_le_bytes());
    s.extend_from_slice(&[4, 1]);
    s.extend_from_slice(&[3, 1, 2]); // names and ENUM values: one ENUM column of two values
    s.extend_from_slice(&[2, 0, 2, 0x0f, 0xff]);
    seeds.push(s);
    seeds
}
