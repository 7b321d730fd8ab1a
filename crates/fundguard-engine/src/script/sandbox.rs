//! The sandbox a script runs in: a Rhai engine holding only what a rule needs, with its
//! per-call limits, and the compiling of a script into an AST read once at load.
//!
//! Sandboxed by construction: [`rhai::Engine::new_raw`] starts with no functions at all and
//! only the standard package (arithmetic, logic, strings, arrays, maps) is added back, built
//! without the clock (`no_time`), floats (`no_float`: number literals are exact decimals)
//! and modules (`no_module`: no `import`, so no file is ever read). Nothing here opens a
//! file or a socket, and `print`/`debug` go nowhere (`new_raw` installs no printer); `eval`
//! is switched off, so everything a script can run is in the text compiled at load.

use std::sync::{Arc, Mutex, PoisonError};

use fundguard_core::{EventTime, Value};
use fundguard_rules::{Diagnostic, ScriptLimits, ScriptSource};
use rhai::packages::{Package, StandardPackage};
use rhai::{AST, ASTNode, Dynamic, EvalAltResult, Expr, ImmutableString, Position, Scope};

/// What one call of `report(...)` asked for.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub message: String,
    pub amount: Option<Value>,
    pub currency: Option<String>,
}

/// The findings a call reported so far; the engine's `report` function appends to it.
pub(crate) type Reports = Arc<Mutex<Vec<Report>>>;

/// The names a script sees, as the engine binds them for every call.
pub(crate) const NAMES: [&str; 8] = ["table", "op", "commit_time", "before", "after", "key", "state", "lookup"];

/// A Rhai engine for one rule: the standard package, the rule's limits, `report` and
/// `time_text`.
pub(crate) fn engine(limits: &ScriptLimits, reports: Reports) -> rhai::Engine {
    let mut engine = rhai::Engine::new_raw();
    engine.register_global_module(StandardPackage::new().as_shared_module());
    engine
        .set_max_operations(limits.operations)
        .set_max_string_size(limits.string_size)
        .set_max_array_size(limits.array_size)
        .set_max_map_size(limits.map_size)
        .set_max_call_levels(limits.call_levels)
        .set_max_expr_depths(limits.expr_depth, (limits.expr_depth / 2).max(1))
        .set_strict_variables(true)
        .disable_symbol("eval");
    let max = limits.reports;
    let to = reports.clone();
    engine.register_fn("report", move |message: ImmutableString| {
        push(&to, max, Report { message: message.to_string(), amount: None, currency: None })
    });
    let to = reports;
    engine.register_fn("report", move |spec: rhai::Map| push(&to, max, report_of(spec)?));
    engine.register_fn("time_text", |micros: rhai::INT| EventTime::from_micros(micros).to_string());
    engine
}

fn push(reports: &Reports, max: usize, report: Report) -> Result<(), Box<EvalAltResult>> {
    let mut reports = reports.lock().unwrap_or_else(PoisonError::into_inner);
    if reports.len() >= max {
        return Err(format!("more than {max} reports in one call (limits.reports)").into());
    }
    reports.push(report);
    Ok(())
}

/// `report(#{ message: …, amount: …, currency: … })`: only `message` is required.
fn report_of(spec: rhai::Map) -> Result<Report, Box<EvalAltResult>> {
    let mut report = Report { message: String::new(), amount: None, currency: None };
    let mut message = None;
    for (field, value) in spec {
        match field.as_str() {
            "message" => message = Some(value.to_string()),
            "amount" if value.is_unit() => {}
            "amount" => match super::values::number(&value) {
                Some(v) => report.amount = Some(v),
                None => {
                    return Err(format!(
                        "report: amount `{value}` is a {}: expected an integer or a decimal",
                        value.type_name()
                    )
                    .into());
                }
            },
            "currency" if value.is_unit() => {}
            "currency" => report.currency = Some(value.to_string()),
            other => {
                return Err(format!("report: unknown field `{other}`: expected message, amount or currency").into());
            }
        }
    }
    report.message = message.ok_or("report: the map has no `message`")?;
    Ok(report)
}

/// A scope with every name a script may use, so a misspelt name is a load error.
pub(crate) fn compile_scope() -> Scope<'static> {
    let mut scope = Scope::new();
    for name in NAMES {
        // Not constants: the optimiser would fold a constant's compile-time value into the AST.
        scope.push_dynamic(name, Dynamic::UNIT);
    }
    scope
}

/// Compiles a script, or says where in the rule file it does not parse or assigns through
/// an index.
pub(crate) fn compile(engine: &rhai::Engine, source: &ScriptSource) -> Result<AST, Diagnostic> {
    let ast = engine.compile_with_scope(&compile_scope(), &source.text).map_err(|e| {
        let message = e.err_type().to_string();
        Diagnostic::new(at(source, e.position()), format!("script: {message}"))
    })?;
    if let Some(position) = index_assignment(&ast) {
        return Err(Diagnostic::new(at(source, position), INDEX_ASSIGNMENT));
    }
    Ok(ast)
}

/// Why `x[k] = v` is refused: Rhai checks the size of the value written there, not of the
/// map or array it goes into, so a loop of them could fill memory past every limit. A
/// method call (`set`, `push`) checks the whole value it changes.
const INDEX_ASSIGNMENT: &str = "script: assigning through an index (`x[k] = v`, `x[k] += v`) is not allowed, as it escapes the size limits: write `x.set(k, v)` (a map or an array), or `x.name = v`";

/// Where a script assigns through an index, if it does.
fn index_assignment(ast: &AST) -> Option<Position> {
    fn index_in(e: &Expr) -> Option<Position> {
        match e {
            Expr::Index(_, _, pos) => Some(*pos),
            Expr::Dot(chain, ..) => index_in(&chain.lhs).or_else(|| index_in(&chain.rhs)),
            _ => None,
        }
    }
    let mut found = None;
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(rhai::Stmt::Assignment(assignment))) = path.last() {
            found = index_in(&assignment.1.lhs);
        }
        found.is_none()
    });
    found
}

/// The rule-file location of a place in the script.
pub(crate) fn at(source: &ScriptSource, position: Position) -> fundguard_rules::Location {
    source.locate(position.line().unwrap_or(0), position.position().unwrap_or(0))
}

/// The innermost error of a failed call (an error inside a function is wrapped in one per
/// call level), its place, and what it means in the rule's terms.
pub(crate) fn explain(error: &EvalAltResult, limits: &ScriptLimits) -> (String, Position) {
    let mut inner = error;
    while let EvalAltResult::ErrorInFunctionCall(_, _, e, _) = inner {
        inner = e;
    }
    let position = inner.position();
    let message = match inner {
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "the script ran past its {} operations (limits.operations): a loop that never ends, or more work than one row should take",
            limits.operations
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            let limit = match what.as_str() {
                w if w.starts_with("Length of string") => format!("limits.string_size {}", limits.string_size),
                w if w.starts_with("Size of array") => format!("limits.array_size {}", limits.array_size),
                _ => format!("limits.map_size {}", limits.map_size),
            };
            format!("{what} over its limit ({limit}): the script allocates without bound")
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            format!("functions called {} levels deep (limits.call_levels): unbounded recursion?", limits.call_levels)
        }
        EvalAltResult::ErrorRuntime(value, _) => format!("thrown: {value}"),
        other => {
            // Display ends with the position, which the caller turns into the rule file's.
            let text = other.to_string();
            let suffix = format!(" ({position})");
            text.strip_suffix(&suffix).map_or_else(|| text.clone(), str::to_string)
        }
    };
    (message, position)
}

/// Which columns of a row a script reads: `None` when it uses the row other than as
/// `row.column` (`for (k, v) in after`, `after[name]`, `after.keys()`), and so may read any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ColumnsRead {
    pub before: Option<Vec<(String, Position)>>,
    pub after: Option<Vec<(String, Position)>>,
    /// Whether the script names `state` at all (one that does not keeps none).
    pub state: bool,
    /// The `lookup.<name>.<column>` the script names: the columns its lookups bring.
    pub lookups: Vec<(String, String, Position)>,
    /// Which of [`NAMES`] the script names at all: only those are bound, so a row,
    /// key or lookup the script never reads is never turned into a map.
    pub names: [bool; NAMES.len()],
}

/// Reads the `before.x` / `after.x` a script names from its AST (functions included).
pub(crate) fn columns_read(ast: &AST) -> ColumnsRead {
    let mut read = ColumnsRead {
        before: Some(Vec::new()),
        after: Some(Vec::new()),
        state: false,
        lookups: Vec::new(),
        names: [false; NAMES.len()],
    };
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::Variable(var, _, _))) = path.last() else { return true };
        if let Some(i) = NAMES.iter().position(|n| *n == var.1.as_str()) {
            read.names[i] = true;
        }
        let row = match var.1.as_str() {
            "before" => &mut read.before,
            "after" => &mut read.after,
            "state" => {
                read.state = true;
                return true;
            }
            "lookup" => {
                // `lookup.<name>.<column>`: a Dot whose right side chains two properties.
                if let Some(ASTNode::Expr(Expr::Dot(dot, _, _))) = path.len().checked_sub(2).and_then(|i| path.get(i))
                    && let Expr::Dot(chain, _, _) = &dot.rhs
                    && let Expr::Property(name, _) = &chain.lhs
                    && let Some((column, position)) = property(&chain.rhs)
                    && !read.lookups.iter().any(|(n, c, _)| *n == name.2.as_str() && *c == column)
                {
                    read.lookups.push((name.2.to_string(), column, position));
                }
                return true;
            }
            _ => return true,
        };
        let column = match path.len().checked_sub(2).and_then(|i| path.get(i)) {
            Some(ASTNode::Expr(Expr::Dot(dot, _, _))) if matches!(&dot.lhs, Expr::Variable(v, ..) if v.1 == var.1) => {
                property(&dot.rhs)
            }
            _ => None,
        };
        match (column, row.as_mut()) {
            (Some(c), Some(columns)) => {
                if !columns.iter().any(|(n, _)| *n == c.0) {
                    columns.push(c);
                }
            }
            (None, _) => *row = None,
            (Some(_), None) => {}
        }
        true
    });
    read
}

/// The property a chain starts with: `x` of `.x`, `.x.y`, `.x[0]`, `.x.len()`.
fn property(rhs: &Expr) -> Option<(String, Position)> {
    match rhs {
        Expr::Property(p, pos) => Some((p.2.to_string(), *pos)),
        Expr::Dot(chain, ..) | Expr::Index(chain, ..) => match &chain.lhs {
            Expr::Property(p, pos) => Some((p.2.to_string(), *pos)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(script: &str) -> ColumnsRead {
        let engine = engine(&ScriptLimits::default(), Reports::default());
        let source = ScriptSource {
            text: script.into(),
            at: fundguard_rules::Location::new("r.yaml".into(), 1, 1),
            block: true,
        };
        columns_read(&compile(&engine, &source).unwrap())
    }

    fn names(columns: &Option<Vec<(String, Position)>>) -> Option<Vec<&str>> {
        columns.as_ref().map(|c| c.iter().map(|(n, _)| n.as_str()).collect())
    }

    #[test]
    fn the_columns_a_script_names_are_read_off_its_ast() {
        let r = read(
            "let t = 0; for i in after.items { t += i.price; } if t != after.amount + after.items.len() { report(`${before.status}`); }",
        );
        assert_eq!(names(&r.after), Some(vec!["items", "amount"]));
        assert_eq!(names(&r.before), Some(vec!["status"]));
        let r = read("for (k, v) in after { } let x = before[\"a\"];");
        assert_eq!((r.after, r.before), (None, None), "a row used as a whole may read any column");
        let r = read("fn f(after) { after.x } f(#{x: 1});");
        assert_eq!(names(&r.after), Some(vec!["x"]), "a parameter of the same name only adds its columns");
        let r = read("if op == \"insert\" { report(`${key.id} ${lookup.rates.rate}`); }");
        let named: Vec<&str> = NAMES.iter().zip(r.names).filter(|(_, used)| *used).map(|(n, _)| *n).collect();
        assert_eq!(named, ["op", "key", "lookup"]);
    }

    #[test]
    fn misspelt_names_and_bad_syntax_are_located_in_the_rule_file() {
        let engine = engine(&ScriptLimits::default(), Reports::default());
        let source = ScriptSource {
            text: "let a = 1;\nreport(aftr.id);\n".into(),
            at: fundguard_rules::Location::new("r.yaml".into(), 10, 5),
            block: true,
        };
        let d = compile(&engine, &source).unwrap_err();
        assert_eq!((d.location.line, d.location.column), (11, 12), "{d}");
        assert!(d.message.contains("aftr"), "{d}");
        let source = ScriptSource { text: "let a = ;".into(), ..source };
        let d = compile(&engine, &source).unwrap_err();
        assert_eq!(d.location.line, 10, "{d}");
        let source = ScriptSource { text: "eval(\"1\")".into(), ..source };
        assert!(compile(&engine, &source).is_err(), "eval is switched off");
        for text in ["let m = #{};\nm[\"a\"] = 1;", "let m = #{a: [1]};\nm.a[0] += 1;"] {
            let source = ScriptSource { text: text.into(), ..source.clone() };
            let d = compile(&engine, &source).unwrap_err();
            assert_eq!(d.location.line, 11, "{d}");
            assert!(d.message.contains("x.set(k, v)"), "{d}");
        }
    }
}
