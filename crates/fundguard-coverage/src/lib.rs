//! Coverage: which money fields, business metrics and cross-system flows the rules protect.
//!
//! The path is: schema sources (`ddl`, `live`, `sample`, the schema file, warehouse tables) →
//! [`schema::Catalog`] → every column classified (`classify`, corrected by `overrides`) →
//! rules read for the columns they really check (`rules`, `sql`) → the three dimensions
//! (`measure`) → a report (`report`). No step panics on input: a statement that does not
//! parse is a located [`ddl::DdlProblem`], a rule that cannot be read is "unknown
//! coverage".

pub mod classify;
pub mod ddl;
pub mod live;
pub mod measure;
pub mod overrides;
pub mod report;
pub mod rules;
pub mod sample;
pub mod schema;
pub mod sql;

#[cfg(test)]
mod props;

use fundguard_rules::{Rule, RuleBody};

pub use measure::{Input, Report, measure};
pub use overrides::Overrides;
pub use rules::RuleCoverage;
pub use schema::Catalog;

/// Why coverage could not be measured at all.
#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{file}: {message}")]
    Overrides { file: String, message: String },
    #[error(
        "cannot read the schema of {server}: {message}; check that the server is running and the URL (host, port, user, database) is right"
    )]
    Server { server: String, message: String },
    #[error("{0}: expected mysql://… or postgres://…")]
    Dsn(String),
}

/// What every rule covers: streaming rules from their expressions, `sql` rules through a
/// DataFusion plan over the known tables (built only when there is a `sql` rule).
pub fn rule_coverage(rules: &[Rule], catalog: &Catalog) -> Vec<RuleCoverage> {
    let mut analyser: Option<Result<sql::SqlAnalyser, String>> = None;
    rules
        .iter()
        .map(|rule| match &rule.body {
            RuleBody::Sql(_) => match analyser.get_or_insert_with(|| sql::SqlAnalyser::new(catalog)) {
                Ok(analyser) => analyser.analyse(rule),
                Err(problem) => {
                    let mut c = rules::analyse_nothing(rule);
                    c.unknown = Some(problem.clone());
                    c
                }
            },
            _ => rules::analyse(rule),
        })
        .collect()
}
