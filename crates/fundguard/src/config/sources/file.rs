//! `type: file` — a file of messages, read once or followed as it grows.

use std::path::PathBuf;

use fundguard_formats::Format;
use serde::Deserialize;

use super::{Reported, Scope, SourceKind, SourceSpec, message_format};

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
    fn name(&self) -> &str {
        &self.name
    }

    fn message_format(&self) -> Option<Result<Format, String>> {
        Some(message_format(&self.format, &self.table, &self.table_field, &self.time_field))
    }

    fn validate(self: Box<Self>, scope: &mut Scope) -> Result<SourceKind, Reported> {
        Ok(SourceKind::File { path: scope.rel(&self.path), follow: self.follow })
    }
}
