//! Loading: files and directories of rule files → validated [`Rule`]s plus every problem found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fundguard_core::{Action, ActionMode, ChangeEvent, EventTime, MoneyUnit, Op, Position, Row, TableSchemas, Value};
use serde_saphyr::Spanned;

use crate::file::{ActionBody, CheckBody, MoneyBody, RuleFile, TestCase};
use crate::{
    CheckRule, Diagnostic, ExpectedFinding, Expr, Location, LookupUse, MissingLookup, MoneyExprs, Once, Rule, RuleBody,
    RuleTest, StateOptions, TestEvent, parse_duration,
};

/// Where test timelines start: `at: 0s` is this instant.
pub const TEST_EPOCH: &str = "2024-01-01T00:00:00Z";

/// Loads rule files from files and directories (recursively, `*.yaml` / `*.yml`,
/// in name order). Returns the rules that could be read and every problem found;
/// rule ids must be unique across all files. Run the rules only when there are no problems.
pub fn load_paths(paths: &[PathBuf]) -> (Vec<Rule>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    for path in paths {
        collect_files(path, &mut files, &mut diagnostics);
    }
    let mut rules: Vec<Rule> = Vec::new();
    let mut seen: HashMap<String, Location> = HashMap::new();
    for file in files {
        let name: Arc<str> = Arc::from(file.display().to_string());
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                diagnostics.push(Diagnostic::new(Location::new(name, 0, 0), format!("cannot read the file: {e}")));
                continue;
            }
        };
        let (rule, mut problems) = parse_rule(name, &text);
        diagnostics.append(&mut problems);
        let Some(rule) = rule else { continue };
        if let Some(first) = seen.get(&rule.id) {
            diagnostics.push(Diagnostic::new(
                rule.at.clone(),
                format!("duplicate rule id `{}`: already defined at {first}; rule ids must be unique", rule.id),
            ));
            continue;
        }
        seen.insert(rule.id.clone(), rule.at.clone());
        rules.push(rule);
    }
    (rules, diagnostics)
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>, diagnostics: &mut Vec<Diagnostic>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(dir) => dir.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                diagnostics.push(Diagnostic::new(
                    Location::new(Arc::from(path.display().to_string()), 0, 0),
                    format!("cannot read the directory: {e}"),
                ));
                return;
            }
        };
        entries.sort();
        for entry in entries {
            if entry.is_dir() || matches!(entry.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                collect_files(&entry, files, diagnostics);
            }
        }
    } else if path.exists() {
        files.push(path.to_path_buf());
    } else {
        diagnostics.push(Diagnostic::new(
            Location::new(Arc::from(path.display().to_string()), 0, 0),
            "no such file or directory: expected a rule file or a directory of them",
        ));
    }
}

/// Parses and validates one rule file's text.
///
/// Returns the rule whenever its shape could be read, together with every problem
/// found, so later checks (SQL, columns) can report theirs in the same pass. A rule
/// with any problem must not run.
pub fn parse_rule(file: Arc<str>, text: &str) -> (Option<Rule>, Vec<Diagnostic>) {
    let parsed: RuleFile = match serde_saphyr::from_str(text) {
        Ok(p) => p,
        Err(e) => return (None, vec![yaml_error(&file, &e)]),
    };
    let mut v = Validator { file, diagnostics: Vec::new() };
    let rule = v.rule(parsed, text);
    (rule, v.diagnostics)
}

/// Reads declared column types (see [`TableSchemas`]) from a YAML file.
pub fn load_schemas(path: &Path) -> Result<TableSchemas, Diagnostic> {
    let file: Arc<str> = Arc::from(path.display().to_string());
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::new(Location::new(file.clone(), 0, 0), format!("cannot read the schema file: {e}")))?;
    parse_schemas(file, &text)
}

/// Reads a schema file's text; `file` names it in diagnostics.
pub fn parse_schemas(file: Arc<str>, text: &str) -> Result<TableSchemas, Diagnostic> {
    serde_saphyr::from_str(text).map_err(|e| yaml_error(&file, &e))
}

fn yaml_error(file: &Arc<str>, e: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = e.location().map(|l| (l.line() as usize, l.column() as usize)).unwrap_or((0, 0));
    let text = e.without_snippet().to_string();
    // The library appends its own " at line X column Y"; we lead with the location instead.
    let message = match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    Diagnostic::new(Location::new(file.clone(), line, column), message)
}

pub(crate) struct Validator {
    pub(crate) file: Arc<str>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl Validator {
    pub(crate) fn at<T>(&self, spanned: &Spanned<T>) -> Location {
        Location::new(self.file.clone(), spanned.referenced.line() as usize, spanned.referenced.column() as usize)
    }

    pub(crate) fn error(&mut self, at: Location, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(at, message));
    }

    pub(crate) fn expr(&self, spanned: &Spanned<String>) -> Expr {
        Expr { sql: spanned.value.clone(), at: self.at(spanned) }
    }

    fn rule(&mut self, file: RuleFile, text: &str) -> Option<Rule> {
        let at = self.at(&file.id);
        let id = file.id.value.clone();
        if id.is_empty()
            || !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        {
            self.error(at.clone(), format!("rule id `{id}`: expected lowercase letters, digits, `-`, `_` or `.`"));
        }
        if file.owner.value.trim().is_empty() {
            self.error(self.at(&file.owner), "owner is empty: expected the team that answers this rule's alerts");
        }
        let severity = file.severity.value;
        let deadline = match &file.deadline {
            Some(d) => match parse_duration(&d.value) {
                Ok(d) => d,
                Err(e) => {
                    self.error(self.at(d), e);
                    severity.default_deadline()
                }
            },
            None => severity.default_deadline(),
        };
        let mut bodies = Vec::new();
        if let Some(b) = file.check {
            let b_at = self.at(&b);
            bodies.push(self.check(b.value, b_at).map(RuleBody::Check));
        }
        if let Some(b) = file.reconcile {
            let b_at = self.at(&b);
            bodies.push(self.reconcile(b.value, b_at).map(RuleBody::Reconcile));
        }
        if let Some(b) = file.transition {
            bodies.push(self.transition(b.value).map(RuleBody::Transition));
        }
        if let Some(b) = file.timeout {
            bodies.push(self.timeout(b.value).map(RuleBody::Timeout));
        }
        if let Some(b) = file.rate {
            bodies.push(self.rate(b.value).map(RuleBody::Rate));
        }
        if let Some(b) = file.sql {
            if let Some(t) = file.tests.first() {
                self.error(
                    self.at(&t.name),
                    "a sql rule has no event tests: expected none; try it on tables with `fundguard sql run`",
                );
            }
            bodies.push(self.sql(b.value).map(RuleBody::Sql));
        }
        if let Some(b) = file.script {
            let b_at = self.at(&b);
            bodies.push(self.script(b.value, b_at, text).map(RuleBody::Script));
        }
        if bodies.len() > 1 {
            self.error(
                at.clone(),
                "the rule has several bodies: expected exactly one of check, reconcile, transition, timeout, rate, sql, script",
            );
        }
        let body = match bodies.into_iter().next() {
            Some(body) => body?,
            None => {
                self.error(
                    at.clone(),
                    "the rule has no body: expected one of the rule kinds (check, reconcile, transition, timeout, rate, sql, script)",
                );
                return None;
            }
        };
        let defaults = StateOptions::default();
        let state = StateOptions {
            allowed_lateness: self.duration(file.allowed_lateness.as_ref()).unwrap_or(defaults.allowed_lateness),
            ttl: self.duration(file.state_ttl.as_ref()).unwrap_or(defaults.ttl),
            max_state_bytes: file.max_state_bytes.unwrap_or(defaults.max_state_bytes),
        };
        let lookups = self.lookups(&file.lookups, &body);
        let tests = file.tests.into_iter().filter_map(|t| self.test(t, &lookups)).collect();
        let action = file.action.and_then(|a| self.action(a.value)).map(Arc::new);
        let fingerprint_by = match file.fingerprint {
            Some(columns) if columns.value.is_empty() || columns.value.iter().any(|c| c.trim().is_empty()) => {
                self.error(
                    self.at(&columns),
                    "`fingerprint` lists no columns: expected key column names, e.g. [merchant_id]",
                );
                None
            }
            Some(columns) => {
                let key: Option<Vec<&str>> = match &body {
                    RuleBody::Check(check) => Some(check.key.iter().map(|(n, _)| n.as_str()).collect()),
                    RuleBody::Script(script) => Some(script.key.iter().map(|(n, _)| n.as_str()).collect()),
                    RuleBody::Sql(sql) => Some(sql.key.iter().map(String::as_str).collect()),
                    _ => None,
                };
                if let Some(known) = key {
                    for c in &columns.value {
                        if !known.contains(&c.as_str()) {
                            self.error(
                                self.at(&columns),
                                format!(
                                    "`fingerprint` column `{c}` is not in the key: expected one of {}",
                                    known.join(", ")
                                ),
                            );
                        }
                    }
                }
                Some(columns.value.into())
            }
            None => None,
        };
        Some(Rule {
            id,
            description: file.description,
            owner: file.owner.value,
            severity,
            deadline,
            tags: crate::rule::tags_for(file.tags, file.mode),
            enabled: file.enabled,
            mode: file.mode,
            body,
            action,
            fingerprint_by,
            state,
            lookups,
            tests,
            at,
        })
    }

    /// `lookups:`: names a rule's expressions may read as `lookup.<name>.<column>`.
    fn lookups(
        &mut self,
        declared: &std::collections::BTreeMap<String, Spanned<crate::file::LookupBody>>,
        body: &RuleBody,
    ) -> Vec<LookupUse> {
        let mut uses = Vec::new();
        for (name, spanned) in declared {
            let at = self.at(spanned);
            if !body.is_streaming() {
                self.error(
                    at.clone(),
                    "a sql rule reads no lookups: expected none; join the reference table in the query instead",
                );
                continue;
            }
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                self.error(at.clone(), format!("lookup name `{name}`: expected lowercase letters, digits and `_`"));
                continue;
            }
            let missing = self.one_of(
                "missing",
                spanned.value.missing.as_ref(),
                &[("report", MissingLookup::Report), ("skip", MissingLookup::Skip), ("judge", MissingLookup::Judge)],
            );
            let columns = &spanned.value.matches;
            if columns.value.is_empty() {
                self.error(
                    self.at(columns),
                    "`match` is empty: expected lookup column → expression, e.g. `{ merchant_id: after.merchant_id }`",
                );
                continue;
            }
            let matches = columns.value.iter().map(|(c, e)| (c.clone(), self.expr(e))).collect();
            uses.push(LookupUse { name: name.clone(), matches, missing, at });
        }
        uses
    }

    /// The option `value` names among `options` (name, value; the first is the default).
    /// An unknown name is reported at its place, listing the names, and reads as the default.
    pub(crate) fn one_of<T: Copy>(&mut self, field: &str, value: Option<&Spanned<String>>, options: &[(&str, T)]) -> T {
        let default = options[0].1;
        let Some(v) = value else { return default };
        if let Some((_, chosen)) = options.iter().find(|(name, _)| *name == v.value) {
            return *chosen;
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let expected = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.concat(),
        };
        self.error(self.at(v), format!("{field} `{}`: expected {expected}", v.value));
        default
    }

    /// A `money:` block's expressions and unit.
    pub(crate) fn money(&mut self, m: Option<&MoneyBody>) -> Option<MoneyExprs> {
        let m = m?;
        Some(MoneyExprs {
            amount: self.expr(&m.amount),
            currency: m.currency.as_ref().map(|c| self.expr(c)),
            unit: self.money_unit(m.unit.as_ref()),
        })
    }

    /// `money.unit`: `auto` (default), `minor` or `major`.
    pub(crate) fn money_unit(&mut self, unit: Option<&Spanned<String>>) -> MoneyUnit {
        self.one_of(
            "money.unit",
            unit,
            &[("auto", MoneyUnit::Auto), ("minor", MoneyUnit::Minor), ("major", MoneyUnit::Major)],
        )
    }

    /// Parses an optional duration, reporting a bad one.
    pub(crate) fn duration(&mut self, d: Option<&Spanned<String>>) -> Option<std::time::Duration> {
        let d = d?;
        match parse_duration(&d.value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(self.at(d), e);
                None
            }
        }
    }

    fn action(&mut self, body: ActionBody) -> Option<Action> {
        let mut ok = true;
        let name = body.name.value.trim().to_string();
        if name.is_empty() {
            ok = false;
            self.error(self.at(&body.name), "the action's name is empty: expected a short name like `pause-payouts`");
        }
        let url = body.url.value.trim().to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            ok = false;
            self.error(self.at(&body.url), format!("action url `{url}`: expected an http:// or https:// URL"));
        }
        let method = match &body.method {
            Some(m) => {
                let upper = m.value.trim().to_ascii_uppercase();
                if !matches!(upper.as_str(), "POST" | "PUT" | "PATCH" | "DELETE" | "GET") {
                    ok = false;
                    self.error(
                        self.at(m),
                        format!("action method `{}`: expected POST, PUT, PATCH, DELETE or GET", m.value),
                    );
                }
                upper
            }
            None => "POST".to_string(),
        };
        let mode = match body.mode.as_ref().map(|m| (m, m.value.trim())) {
            None | Some((_, "run")) => ActionMode::Run,
            Some((_, "dry_run")) => ActionMode::DryRun,
            Some((_, "approval")) => ActionMode::Approval,
            Some((m, other)) => {
                ok = false;
                self.error(self.at(m), format!("action mode `{other}`: expected run, dry_run or approval"));
                ActionMode::Run
            }
        };
        let action = Action { name, method, url, mode, secret_env: body.secret_env };
        for unknown in action.unknown_placeholders() {
            ok = false;
            self.error(
                self.at(&body.url),
                format!("action url placeholder `{unknown}`: expected {{key.COLUMN}}, {{rule}} or {{alert}}"),
            );
        }
        ok.then_some(action)
    }

    fn check(&mut self, body: CheckBody, at: Location) -> Option<CheckRule> {
        if body.tables.is_empty() {
            self.error(at.clone(), "`tables` is empty: expected at least one `db.table`");
        }
        for table in &body.tables {
            if !table.value.contains('.') {
                self.error(self.at(table), format!("table `{}`: expected `db.table`", table.value));
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
        let once = self.one_of("once", body.once.as_ref(), &[("every_row", Once::EveryRow), ("per_key", Once::PerKey)]);
        Some(CheckRule {
            tables: body.tables.iter().map(|t| t.value.clone()).collect(),
            when: body.when.as_ref().map(|e| self.expr(e)),
            assert: self.expr(&body.assert),
            key,
            message: body.message.as_ref().map(|e| self.expr(e)),
            money: self.money(body.money.as_ref()),
            once,
        })
    }

    fn test(&mut self, test: TestCase, lookups: &[LookupUse]) -> Option<RuleTest> {
        let at = self.at(&test.name);
        let mut reference = Vec::new();
        for (name, rows) in &test.lookups {
            if !lookups.iter().any(|l| l.name == *name) {
                let known: Vec<&str> = lookups.iter().map(|l| l.name.as_str()).collect();
                let expected =
                    if known.is_empty() { "none: the rule reads no lookups".to_string() } else { known.join(", ") };
                self.error(
                    self.at(rows),
                    format!("test lookup `{name}` is not one the rule reads: expected {expected}"),
                );
                continue;
            }
            reference.push((name.clone(), rows.value.iter().map(row_from_json).collect()));
        }
        let epoch = EventTime::parse(TEST_EPOCH).ok()?;
        let mut events = Vec::new();
        for (seq, spanned) in test.events.iter().enumerate() {
            let event_at = self.at(spanned);
            let body = &spanned.value;
            let commit_time = match parse_duration(&body.at.value) {
                Ok(offset) => Some(epoch.plus(offset)),
                Err(_) => EventTime::parse(&body.at.value).ok(),
            };
            if commit_time.is_none() {
                self.error(
                    self.at(&body.at),
                    format!("`at: {}`: expected an offset like 2s or 5m, or an RFC 3339 timestamp", body.at.value),
                );
            }
            let op = Op::parse(&body.op.value);
            if op.is_none() {
                self.error(
                    self.at(&body.op),
                    format!("op `{}`: expected insert, update, delete or message", body.op.value),
                );
            }
            let (Some(commit_time), Some(op)) = (commit_time, op) else { continue };
            let before = body.before.as_ref().map(row_from_json);
            let after = body.after.as_ref().map(row_from_json);
            let missing = match op {
                Op::Insert | Op::Update | Op::Message if after.is_none() => Some("after"),
                Op::Delete if before.is_none() => Some("before"),
                _ => None,
            };
            if let Some(image) = missing {
                self.error(event_at.clone(), format!("a `{op}` event needs an `{image}` row"));
                continue;
            }
            events.push(TestEvent {
                event: ChangeEvent {
                    table: Arc::from(body.table.as_str()),
                    op,
                    before,
                    after,
                    commit_time,
                    position: Position::Synthetic { seq: seq as u64 + 1 },
                },
                at: event_at,
            });
        }
        let expect = test
            .expect
            .iter()
            .map(|e| ExpectedFinding {
                key: e.key.iter().map(|(k, v)| (k.clone(), value_from_json(v))).collect(),
                message: e.message.clone(),
            })
            .collect();
        Some(RuleTest { name: test.name.value, lookups: reference, events, expect, at })
    }
}

fn row_from_json(map: &std::collections::BTreeMap<String, serde_json::Value>) -> Row {
    map.iter().map(|(k, v)| (k.as_str(), value_from_json(v))).collect()
}

/// Turns a YAML/JSON scalar into a value. YAML numbers with a fraction arrive as
/// floats; their shortest decimal text is what the author wrote (up to 15
/// significant digits), so it is read back as an exact decimal.
pub(crate) fn value_from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::parse_number(&n.to_string()).unwrap_or(Value::Null),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        other => Value::Json(other.to_string()),
    }
}
