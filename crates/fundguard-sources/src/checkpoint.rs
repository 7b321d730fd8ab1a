//! The on-disk frame of everything fundguard must find again after a crash: a
//! one-line header naming the format version, the payload's length and its SHA-256,
//! then the payload: JSON for a database source's stored position (v1), MessagePack
//! for the full checkpoint of `fundguard run` (v2: positions, rule state, sink marks).
//!
//! ```text
//! fundguard-checkpoint v1 len=27 sha256=9f86d08…
//! {"gtid":"0-1-42","file":…}
//! ```
//!
//! Reading checks all three, so a file cut short by a full disk, flipped bits or a
//! file from a newer fundguard is reported — never silently misread. Files written
//! before the header existed (bare JSON) read as version 0 and are rewritten in the
//! current format on the next save. Writes are atomic: a temporary file, synced, then
//! renamed over the old one, so a crash leaves the old file or the new one.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The frame version this fundguard writes (and the newest it reads). v1 framed JSON
/// position files; v2 adds the full checkpoint (same frame, binary payload).
pub const VERSION: u32 = 2;

const MAGIC: &str = "fundguard-checkpoint";

/// Why a stored file cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("it was written by a newer fundguard (format v{found}, this one reads up to v{known}): upgrade fundguard")]
    Newer { found: u32, known: u32 },
    #[error("it is cut short ({found} of {expected} payload bytes): the disk may have filled during a write")]
    Truncated { expected: usize, found: usize },
    #[error("its checksum does not match: the file is corrupted")]
    Checksum,
    #[error("its header is not a fundguard checkpoint header: {0}")]
    Header(String),
}

/// Frames `payload` with the current header.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let digest = hex::encode(Sha256::digest(payload));
    let mut out = format!("{MAGIC} v{VERSION} len={} sha256={digest}\n", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The version and the checked payload of a framed file; bare JSON is version 0.
pub fn decode(bytes: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    if !bytes.starts_with(MAGIC.as_bytes()) {
        return Ok((0, bytes));
    }
    let end = bytes.iter().position(|b| *b == b'\n').ok_or_else(|| FrameError::Header("no end of line".into()))?;
    let header = std::str::from_utf8(&bytes[..end]).map_err(|_| FrameError::Header("not UTF-8".into()))?;
    let payload = &bytes[end + 1..];
    let mut fields = header.split(' ').skip(1);
    let mut field = |prefix: &str| -> Result<&str, FrameError> {
        fields
            .next()
            .and_then(|f| f.strip_prefix(prefix))
            .ok_or_else(|| FrameError::Header(format!("expected `{prefix}…` in `{header}`")))
    };
    let version: u32 = field("v")?.parse().map_err(|_| FrameError::Header(format!("bad version in `{header}`")))?;
    if version > VERSION {
        return Err(FrameError::Newer { found: version, known: VERSION });
    }
    let len: usize = field("len=")?.parse().map_err(|_| FrameError::Header(format!("bad length in `{header}`")))?;
    let sha = field("sha256=")?;
    if payload.len() < len {
        return Err(FrameError::Truncated { expected: len, found: payload.len() });
    }
    let payload = &payload[..len];
    if hex::encode(Sha256::digest(payload)) != sha {
        return Err(FrameError::Checksum);
    }
    Ok((version, payload))
}

/// Replaces `path` with `bytes` atomically (temporary file, sync, rename, directory sync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    // The rename itself must reach the disk, or a crash could bring back the old name.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn versions_checksums_and_short_files_are_checked() {
        let framed = encode(br#"{"gtid":"0-1-42"}"#);
        assert_eq!(decode(&framed).unwrap(), (VERSION, &br#"{"gtid":"0-1-42"}"#[..]));
        assert_eq!(decode(br#"{"gtid":"0-1-7"}"#).unwrap().0, 0, "bare JSON from before the frame is version 0");

        let newer = String::from_utf8(framed.clone()).unwrap().replacen(" v2 ", " v9 ", 1);
        let error = decode(newer.as_bytes()).unwrap_err();
        assert_eq!(error, FrameError::Newer { found: 9, known: VERSION });
        assert!(error.to_string().contains("upgrade fundguard"));

        assert!(matches!(decode(&framed[..framed.len() - 3]), Err(FrameError::Truncated { .. })));
        assert!(matches!(decode(b"fundguard-checkpoint v1 len=x\n{}"), Err(FrameError::Header(_))));
    }

    proptest! {
        #[test]
        fn any_flipped_payload_byte_is_detected(payload in proptest::collection::vec(any::<u8>(), 1..200), at in any::<usize>(), bit in 0u8..8) {
            let mut framed = encode(&payload);
            let header = framed.len() - payload.len();
            let i = header + at % payload.len();
            framed[i] ^= 1 << bit;
            prop_assert_eq!(decode(&framed), Err(FrameError::Checksum));
        }
    }

    #[test]
    fn writes_replace_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions/db.json");
        write_atomic(&path, &encode(b"1")).unwrap();
        write_atomic(&path, &encode(b"22")).unwrap();
        assert_eq!(decode(&std::fs::read(&path).unwrap()).unwrap(), (VERSION, &b"22"[..]));
        assert!(!dir.path().join("positions/db.json.tmp").exists());
    }
}
