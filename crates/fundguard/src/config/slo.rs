//! `slo:` — detect, respond and resolve deadlines per severity; what is not given keeps
//! the practice's default (see `fundguard_alerts::Slo`).

use std::collections::BTreeMap;

use fundguard_core::Severity;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::loader::Loader;

/// One severity's deadlines as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeadlinesFile {
    #[serde(default)]
    detect: Option<Spanned<String>>,
    #[serde(default)]
    respond: Option<Spanned<String>>,
    #[serde(default)]
    resolve: Option<Spanned<String>>,
}

pub(super) fn validate(file: &BTreeMap<Severity, DeadlinesFile>, loader: &mut Loader) -> fundguard_alerts::Slo {
    let mut slo = fundguard_alerts::Slo::default();
    for (severity, deadlines) in file {
        let entry = slo.deadlines.entry(*severity).or_insert_with(|| fundguard_alerts::Slo::default().of(*severity));
        for (given, field) in [
            (&deadlines.detect, &mut entry.detect),
            (&deadlines.respond, &mut entry.respond),
            (&deadlines.resolve, &mut entry.resolve),
        ] {
            if let Some(d) = given.as_ref().and_then(|d| loader.spanned_duration(d)) {
                *field = d;
            }
        }
    }
    slo
}
