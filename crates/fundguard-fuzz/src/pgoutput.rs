//! PostgreSQL logical decoding through pgoutput: one connection's binary messages
//! (relation descriptions, row changes, commits), each preceded by its length as a
//! big-endian u16, decoded as the PostgreSQL source does — never a panic.

use std::sync::Arc;

use fundguard_sources::postgres::decode_messages;

pub fn pgoutput(data: &[u8]) {
    let out = decode_messages(&Arc::from("pg"), &["public.*".to_string()], &messages(data));
    for event in &out.batch.events {
        serde_json::to_vec(event).expect("an event serialises");
    }
    for letter in &out.batch.dead_letters {
        assert!(!letter.reason.is_empty(), "a dead letter without a reason");
    }
}

/// One transaction as a PostgreSQL 15 server sent it (`pg_logical_slot_get_binary_changes`
/// with `proto_version 1`): begin; relation `public.t` (bigint, numeric(10,2), text,
/// boolean, timestamptz; replica identity full); insert, update with the old row; relation
/// `public.k` (integer key, text, date, jsonb); insert with a null, an update of the key
/// (old key tuple), deletes by key and by old row; commit.
const TRANSACTION: &[&str] = &[
    "4200000000015ac03800030513ce378ae5000002e6",
    "52000040087075626c69630074006600050169640000000014ffffffff016100000006a4000a000601730000000019ffffffff01620000000010ffffffff01747300000004a0ffffffff",
    "49000040084e0005740000000137740000000531322e3334740000000668c3a96c6c6f740000000166740000001d323032362d30312d30312031393a30343a30352e3132333435362b3030",
    "55000040084f0005740000000137740000000531322e3334740000000668c3a96c6c6f740000000166740000001d323032362d30312d30312031393a30343a30352e3132333435362b30304e0005740000000137740000000539392e3939740000000668c3a96c6c6f740000000166740000001d323032362d30312d30312031393a30343a30352e3132333435362b3030",
    "52000040157075626c6963006b006400040169640000000017ffffffff006e6f74650000000019ffffffff00646179000000043affffffff006a0000000edaffffffff",
    "49000040154e00047400000001316e740000000a323032362d30352d303174000000087b2261223a20317d",
    "55000040154b00047400000001316e6e6e4e00047400000001326e740000000a323032362d30352d303174000000087b2261223a20317d",
    "44000040154b00047400000001326e6e6e",
    "44000040084f0005740000000137740000000539392e3939740000000668c3a96c6c6f740000000166740000001d323032362d30312d30312031393a30343a30352e3132333435362b3030",
    "430000000000015ac03800000000015ac06800030513ce378ae5",
];

/// The messages of fuzz input, each at its own LSN: a big-endian u16 length, then that
/// many bytes (fewer at the end of the input).
pub fn messages(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut rows = Vec::new();
    let mut rest = data;
    while let [high, low, tail @ ..] = rest {
        let length = usize::from(u16::from_be_bytes([*high, *low])).min(tail.len());
        rows.push((format!("0/{:X}", 0x16B_3748 + rows.len() * 0x40), tail[..length].to_vec()));
        rest = &tail[length..];
    }
    rows
}

/// Messages framed as [`pgoutput`] reads them.
fn framed(messages: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for hex in messages {
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("seed hex")).collect();
        out.extend((bytes.len() as u16).to_be_bytes());
        out.extend(bytes);
    }
    out
}

pub fn seeds() -> Vec<Vec<u8>> {
    vec![framed(TRANSACTION), framed(&TRANSACTION[1..4]), framed(&[TRANSACTION[1], TRANSACTION[3]])]
}

pub const DICTIONARY: &[&str] = &["\u{0}\u{0}\u{40}\u{8}", "N\u{0}\u{5}", "t\u{0}\u{0}\u{0}", "n", "u", "K", "O"];
