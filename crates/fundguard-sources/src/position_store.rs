//! Where a database source resumes after a restart: one small file per source in the
//! data directory, framed with a version and a checksum ([`crate::checkpoint`]) and
//! replaced atomically, so a crash leaves either the old position or the new one, and a
//! damaged file is reported instead of misread.
//!
//! `fundguard run` now keeps positions in its checkpoint (with rule state); these files,
//! written by older versions, are read once as a migration when there is no checkpoint.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The stored position of one source.
#[derive(Debug, Clone)]
pub struct PositionStore {
    path: PathBuf,
}

/// A stored position that exists but cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "the stored position {path} cannot be read: {reason}; fix or delete the file (deleting it restarts the source from its configured `start`)"
)]
pub struct PositionError {
    pub path: PathBuf,
    pub reason: String,
}

impl PositionStore {
    /// The position file of `source` under `data_dir/positions/`.
    pub fn new(data_dir: &Path, source: &str) -> Self {
        PositionStore { path: data_dir.join("positions").join(format!("{source}.json")) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored position, or `None` when the source has never saved one.
    pub fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, PositionError> {
        let error = |reason: String| PositionError { path: self.path.clone(), reason };
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let (_, payload) = crate::checkpoint::decode(&bytes).map_err(|e| error(e.to_string()))?;
                serde_json::from_slice(payload).map(Some).map_err(|e| error(e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(error(e.to_string())),
        }
    }

    /// Replaces the stored position.
    pub fn save<T: Serialize>(&self, position: &T) -> std::io::Result<()> {
        let payload = serde_json::to_vec(position)?;
        crate::checkpoint::write_atomic(&self.path, &crate::checkpoint::encode(&payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_and_reports_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = PositionStore::new(dir.path(), "orders");
        assert_eq!(store.load::<u64>().unwrap(), None);
        store.save(&42u64).unwrap();
        store.save(&43u64).unwrap();
        assert_eq!(store.load::<u64>().unwrap(), Some(43));
        std::fs::write(store.path(), b"{not json").unwrap();
        let error = store.load::<u64>().unwrap_err().to_string();
        assert!(error.contains("orders.json") && error.contains("delete the file"), "{error}");
        // A position stored before the frame existed (bare JSON) is still read.
        std::fs::write(store.path(), b"41\n").unwrap();
        assert_eq!(store.load::<u64>().unwrap(), Some(41));
        // A damaged one is reported, not misread.
        store.save(&44u64).unwrap();
        let mut bytes = std::fs::read(store.path()).unwrap();
        *bytes.last_mut().unwrap() = b'5';
        std::fs::write(store.path(), bytes).unwrap();
        let error = store.load::<u64>().unwrap_err().to_string();
        assert!(error.contains("checksum does not match"), "{error}");
    }
}
