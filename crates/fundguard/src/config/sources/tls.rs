//! `tls:` on a networked source — the same block for mysql, postgres, kafka and nats. Its
//! presence turns TLS on; the server's certificate is always verified.

use std::path::{Path, PathBuf};

use fundguard_sources::tls::{ClientCert, TlsConfig, Verify};
use serde::Deserialize;

/// The block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct TlsFile {
    /// `verify-full` (default: a trusted CA signed it and it names the host) or `verify-ca`.
    #[serde(default)]
    mode: Option<String>,
    /// PEM CA certificates to trust instead of the system's.
    #[serde(default)]
    ca_file: Option<PathBuf>,
    /// A client certificate and its PEM (PKCS#8) key, for servers that ask for one.
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
}

impl TlsFile {
    /// Paths are made absolute with `rel` and must be readable files. `verify_ca` says
    /// whether the source's client can skip the host name check.
    pub fn validate(self, rel: &dyn Fn(&Path) -> PathBuf, verify_ca: bool) -> Result<TlsConfig, String> {
        let verify = match self.mode.as_deref() {
            None | Some("verify-full") => Verify::Full,
            Some("verify-ca") if verify_ca => Verify::Ca,
            Some("verify-ca") => {
                return Err("mode verify-ca: this source's client always checks the host name: use verify-full".into());
            }
            Some(other) => {
                return Err(format!(
                    "mode `{other}`: expected verify-full (the default) or verify-ca; the server's certificate is always verified"
                ));
            }
        };
        let readable = |key: &str, path: &Option<PathBuf>| -> Result<Option<PathBuf>, String> {
            let Some(path) = path.as_deref().map(rel) else { return Ok(None) };
            match std::fs::File::open(&path) {
                Ok(_) if path.is_file() => Ok(Some(path)),
                Ok(_) => Err(format!("{key} {} is not a file", path.display())),
                Err(e) => Err(format!("{key} {}: {e}", path.display())),
            }
        };
        let ca_file = readable("ca_file", &self.ca_file)?;
        let client = match (readable("cert_file", &self.cert_file)?, readable("key_file", &self.key_file)?) {
            (Some(cert_file), Some(key_file)) => Some(ClientCert { cert_file, key_file }),
            (None, None) => None,
            _ => return Err("give cert_file and key_file together (a client certificate and its key)".into()),
        };
        Ok(TlsConfig { verify, ca_file, client })
    }
}
