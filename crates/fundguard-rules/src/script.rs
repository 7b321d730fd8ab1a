//! The `script` rule kind: its validated form and the validation of its fields.
//!
//! The script itself (Rhai) is compiled by the engine, which reports its syntax errors at
//! their line and column in the rule file through [`ScriptSource::locate`]: this crate only
//! records where the script's first character is and how its lines are indented.

use serde_saphyr::Spanned;

use crate::file::{LimitsBody, ScriptBody};
use crate::load::Validator;
use crate::{Expr, Location};

/// A script run for every row of its tables that passes `when`, in log order.
#[derive(Debug, Clone)]
pub struct ScriptRule {
    pub tables: Vec<String>,
    /// An SQL prefilter (as a check's `when`).
    pub when: Option<Expr>,
    /// Finding key and the key of the script's state: output name → expression. Never empty.
    pub key: Vec<(String, Expr)>,
    pub source: ScriptSource,
    pub limits: ScriptLimits,
}

/// A script's text and where it sits in its rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSource {
    pub text: String,
    /// Where the script's line 1, column 1 is in the file.
    pub at: Location,
    /// A block scalar (`source: |`): every line of the script starts at `at.column`.
    /// Otherwise (a one-line scalar) only the first line is placed exactly.
    pub block: bool,
}

impl ScriptSource {
    /// The place in the rule file of the script's `line` and `column` (1-based, as Rhai
    /// counts them; 0 when unknown: the script's start).
    pub fn locate(&self, line: usize, column: usize) -> Location {
        if line == 0 {
            return self.at.clone();
        }
        let column = column.max(1);
        if line == 1 || self.block {
            Location::new(self.at.file.clone(), self.at.line + line - 1, self.at.column + column - 1)
        } else {
            Location::new(self.at.file.clone(), self.at.line + line - 1, column)
        }
    }
}

/// What one call of a script may do. Every limit is counted, never timed, so a call that
/// hits one does so on every machine and in every replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Operations (expressions, statements, loop turns, calls) per call: stops endless loops.
    pub operations: u64,
    /// Bytes of the longest string, counting the strings inside an array or a map together.
    pub string_size: usize,
    /// Elements of the largest array, nested arrays counted in.
    pub array_size: usize,
    /// Entries of the largest map, nested maps counted in (`state` included).
    pub map_size: usize,
    /// How deep functions may call each other.
    pub call_levels: usize,
    /// How deep an expression may nest (checked when the script is compiled).
    pub expr_depth: usize,
    /// Findings one call may report.
    pub reports: usize,
}

/// The defaults keep the worst call short: Rhai re-measures a whole array or map after each
/// change to it, so a call can do about `operations` × (`array_size` + `map_size`) steps of
/// measuring — 2·10⁹ with these, a few seconds at most, where 10⁶ operations and 10⁵ elements
/// allowed minutes.
impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            operations: 100_000,
            string_size: 64 << 10,
            array_size: 10_000,
            map_size: 10_000,
            call_levels: 16,
            expr_depth: 32,
            reports: 100,
        }
    }
}

/// The largest `call_levels` and `expr_depth` accepted: deeper recursion than this could
/// overflow the pipeline thread's stack, which would stop the process rather than the call.
pub const MAX_CALL_LEVELS: usize = 32;
pub const MAX_EXPR_DEPTH: usize = 64;

impl Validator {
    pub(crate) fn script(&mut self, body: ScriptBody, at: Location, text: &str) -> Option<ScriptRule> {
        let mut tables: Vec<&Spanned<String>> = Vec::new();
        match (&body.table, &body.tables) {
            (Some(t), None) => tables.push(t),
            (None, Some(list)) if !list.value.is_empty() => tables.extend(list.value.iter()),
            (None, Some(list)) => self.error(self.at(list), "`tables` is empty: expected at least one `db.table`"),
            (Some(t), Some(_)) => {
                self.error(self.at(t), "both `table` and `tables`: expected one of them");
                tables.push(t);
            }
            (None, None) => {
                self.error(at.clone(), "the script names no table: expected `table: db.table` or `tables: [...]`")
            }
        }
        for t in &tables {
            if !t.value.contains('.') {
                self.error(self.at(t), format!("table `{}`: expected `db.table`", t.value));
            }
        }
        let key = match &body.key {
            Some(map) if map.is_empty() => {
                self.error(at, "`key` is empty: expected at least one `name: expression`");
                return None;
            }
            Some(map) => map.iter().map(|(name, e)| (name.clone(), self.expr(e))).collect(),
            None => vec![("id".to_string(), Expr { sql: "coalesce(after.id, before.id)".into(), at: at.clone() })],
        };
        if body.source.value.trim().is_empty() {
            self.error(self.at(&body.source), "the script is empty: expected Rhai code that calls `report(...)`");
        }
        let limits = match &body.limits {
            Some(l) => self.limits(&l.value),
            None => ScriptLimits::default(),
        };
        let mut tables: Vec<String> = tables.iter().map(|t| t.value.clone()).collect();
        tables.dedup();
        Some(ScriptRule {
            tables,
            when: body.when.as_ref().map(|w| self.expr(w)),
            key,
            source: source(self.at(&body.source), &body.source.value, text),
            limits,
        })
    }

    fn limits(&mut self, body: &LimitsBody) -> ScriptLimits {
        let d = ScriptLimits::default();
        let mut limit = |field: &str, value: &Option<Spanned<u64>>, default: u64, max: u64| -> u64 {
            let Some(v) = value else { return default };
            if v.value == 0 || v.value > max {
                self.error(self.at(v), format!("limits.{field} {}: expected 1 to {max}", v.value));
                return default;
            }
            v.value
        };
        let size = |n: usize| n as u64;
        let back = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        ScriptLimits {
            operations: limit("operations", &body.operations, d.operations, 1_000_000_000),
            string_size: back(limit("string_size", &body.string_size, size(d.string_size), 1 << 30)),
            array_size: back(limit("array_size", &body.array_size, size(d.array_size), 100_000_000)),
            map_size: back(limit("map_size", &body.map_size, size(d.map_size), 100_000_000)),
            call_levels: back(limit("call_levels", &body.call_levels, size(d.call_levels), size(MAX_CALL_LEVELS))),
            expr_depth: back(limit("expr_depth", &body.expr_depth, size(d.expr_depth), size(MAX_EXPR_DEPTH))),
            reports: back(limit("reports", &body.reports, size(d.reports), 100_000)),
        }
    }
}

/// Where the script's first character is. The parser places a block scalar (`source: |`)
/// at its first content line, indented: every line of the script starts at that column. A
/// one-line scalar is placed at its value, the opening quote included.
fn source(value_at: Location, script: &str, text: &str) -> ScriptSource {
    let here = text.lines().nth(value_at.line.saturating_sub(1)).unwrap_or_default();
    let (before, value): (String, String) = {
        let cut = value_at.column.saturating_sub(1);
        (here.chars().take(cut).collect(), here.chars().skip(cut).collect())
    };
    let block = before.trim().is_empty() && !before.is_empty();
    let quoted = usize::from(!block && value.starts_with(['"', '\'']));
    let at = Location::new(value_at.file.clone(), value_at.line, value_at.column + quoted);
    ScriptSource { text: script.to_string(), at, block }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{RuleBody, parse_rule};

    fn script_of(text: &str) -> ScriptRule {
        let (rule, problems) = parse_rule(Arc::from("r.yaml"), text);
        assert!(problems.is_empty(), "{problems:?}");
        match rule.unwrap().body {
            RuleBody::Script(s) => s,
            other => panic!("not a script: {other:?}"),
        }
    }

    #[test]
    fn a_block_scripts_lines_map_to_the_file() {
        let s = script_of(
            "id: s\nowner: t\nseverity: low\nscript:\n  table: shop.orders\n  source: |\n    let a = 1;\n      report(\"x\");\n",
        );
        assert!(s.source.block);
        assert_eq!(s.source.text, "let a = 1;\n  report(\"x\");\n");
        assert_eq!((s.source.at.line, s.source.at.column), (7, 5));
        let at = s.source.locate(2, 3);
        assert_eq!((at.line, at.column), (8, 7));
        assert_eq!(s.key[0].0, "id");
        assert_eq!(s.limits, ScriptLimits::default());
    }

    #[test]
    fn a_one_line_script_is_placed_after_its_quote() {
        let s =
            script_of("id: s\nowner: t\nseverity: low\nscript:\n  tables: [shop.a, shop.b]\n  source: \"report(1)\"\n");
        assert!(!s.source.block);
        assert_eq!((s.source.at.line, s.source.at.column), (6, 12));
        assert_eq!(s.source.locate(1, 3).column, 14);
        assert_eq!(s.tables, vec!["shop.a".to_string(), "shop.b".to_string()]);
    }

    #[test]
    fn limits_are_read_and_bad_ones_located() {
        let s = script_of(
            "id: s\nowner: t\nseverity: low\nscript:\n  table: shop.a\n  source: x\n  limits: { operations: 500, reports: 3 }\n",
        );
        assert_eq!((s.limits.operations, s.limits.reports), (500, 3));
        let (_, problems) = parse_rule(
            Arc::from("r.yaml"),
            "id: s\nowner: t\nseverity: low\nscript:\n  source: x\n  limits: { call_levels: 1000, operations: 0 }\n",
        );
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text.iter().any(|p| p.contains("names no table")), "{text:?}");
        assert!(text.iter().any(|p| p.starts_with("r.yaml:6:") && p.contains("limits.call_levels 1000")), "{text:?}");
        assert!(text.iter().any(|p| p.contains("limits.operations 0: expected 1 to")), "{text:?}");
    }
}
