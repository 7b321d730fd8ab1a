//! TLS settings every networked source shares (MySQL/MariaDB, PostgreSQL, Kafka, NATS),
//! and turning a refused certificate into an error that says what to check.
//!
//! Verification is never off: `verify-full` (the default) checks that a trusted CA signed
//! the server's certificate *and* that the certificate names the host connected to;
//! `verify-ca` checks only the CA (for servers reached through an address their certificate
//! does not list). There is no mode that accepts any certificate.

use std::path::PathBuf;

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// A trusted CA signed it and it names the host (`subjectAltName`).
    Full,
    /// A trusted CA signed it; the host name is not compared.
    Ca,
}

impl Verify {
    pub fn name(self) -> &'static str {
        match self {
            Verify::Full => "verify-full",
            Verify::Ca => "verify-ca",
        }
    }
}

/// A validated `tls:` block: its presence turns TLS on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub verify: Verify,
    /// PEM file of the CA certificates to trust; `None` trusts the system's (or, for
    /// MySQL/MariaDB, the built-in Mozilla) roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its private key (PEM, PKCS#8), for servers that ask for one.
    pub client: Option<ClientCert>,
}

/// A client certificate (`cert_file`) and its key (`key_file`), both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// If `error` (a TLS library's message) is a refused server certificate, a message that
/// says why and what to check; `host` is the host connected to. The library's own words
/// follow in parentheses.
pub fn explain_refusal(config: &TlsConfig, host: &str, error: &str) -> Option<String> {
    let lower = error.to_ascii_lowercase();
    let name_mismatch = ["hostname mismatch", "ip address mismatch", "not valid for name", "notvalidforname"]
        .iter()
        .any(|s| lower.contains(s));
    let untrusted = [
        "certificate verify failed",
        "unknownissuer",
        "unknown issuer",
        "unable to get local issuer",
        "self-signed certificate",
        "self signed certificate",
        "invalid peer certificate",
        "badsignature",
    ]
    .iter()
    .any(|s| lower.contains(s));
    let trusted_by = match &config.ca_file {
        Some(ca) => format!("`ca_file` {}", ca.display()),
        None => "the system's CA certificates (no `ca_file` given)".to_string(),
    };
    if name_mismatch {
        Some(format!(
            "the server's certificate does not name the host `{host}` ({mode}): connect with a host name or address \
             the certificate lists in its subjectAltName, or reissue the certificate for `{host}` ({error})",
            mode = config.verify.name(),
        ))
    } else if untrusted {
        Some(format!(
            "the server's certificate was not trusted by {trusted_by}: check that this file holds the CA that signed \
             the server's certificate (`openssl verify -CAfile <ca_file> <server cert>`), that the server sends its \
             intermediate certificates, and that the certificate has not expired ({error})"
        ))
    } else {
        None
    }
}

/// A client certificate and key (PEM files) as a PKCS#12 archive with an empty password,
/// for clients that take only that form. Errors name the files, never their content.
pub fn pkcs12(client: &ClientCert) -> Result<Vec<u8>, String> {
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("tls.{key} {}: {e}", path.display()))
    };
    let (cert, key) = (read("cert_file", &client.cert_file)?, read("key_file", &client.key_file)?);
    let cert = openssl::x509::X509::from_pem(&cert)
        .map_err(|_| format!("tls.cert_file {}: not a PEM certificate", client.cert_file.display()))?;
    let key = openssl::pkey::PKey::private_key_from_pem(&key)
        .map_err(|_| format!("tls.key_file {}: not a PEM private key", client.key_file.display()))?;
    let archive = openssl::pkcs12::Pkcs12::builder()
        .name("fundguard")
        .pkey(&key)
        .cert(&cert)
        .build2("")
        .and_then(|p| p.to_der())
        .map_err(|e| format!("tls.cert_file {}: cannot pair it with key_file: {e}", client.cert_file.display()))?;
    Ok(archive)
}

/// An error with every cause it wraps, `: `-separated: a refused certificate is usually a
/// cause of the client's error, not its own message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut said = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !said.contains(&text) {
            said.push_str(": ");
            said.push_str(&text);
        }
        cause = c.source();
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart() {
        let config = TlsConfig { verify: Verify::Full, ca_file: Some("/etc/ca.pem".into()), client: None };
        let openssl = "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed (unable to get local issuer certificate)";
        assert!(explain_refusal(&config, "db", openssl).unwrap().contains("not trusted by `ca_file` /etc/ca.pem"));
        let rustls = "invalid peer certificate: certificate not valid for name \"localhost\"; certificate is only valid for IpAddress(127.0.0.1)";
        assert!(explain_refusal(&config, "localhost", rustls).unwrap().contains("does not name the host `localhost`"));
        assert!(explain_refusal(&config, "db", "Connection refused").is_none());
    }
}
