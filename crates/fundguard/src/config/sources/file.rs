//! `type: file` — a file of messages, read once or followed as it grows.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Reported, Scope, SourceKind, SourceSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileSource {
    name: String,
    path: PathBuf,
    format: String,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    table_field: Option<String>,
    #[serde(default)]
    time_field: Option<String>,
    #[serde(default)]
    follow: bool,
}

impl SourceSpec for FileSource {
    message_source_spec!();

    fn validate(self: Box<Self>, scope: &mut Scope) -> Result<SourceKind, Reported> {
        Ok(SourceKind::File { path: scope.rel(&self.path), follow: self.follow })
    }
}
