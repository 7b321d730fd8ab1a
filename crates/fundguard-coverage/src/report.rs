//! A [`Report`] for people (text, Markdown, HTML) and machines (JSON). Gaps come first,
//! grouped by owner and table: what a reviewer must act on leads.

use std::fmt::Write;

use crate::measure::{ColumnReport, Dimensions, Figure, Report};

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Markdown,
    Html,
    /// Prometheus gauges per dimension and owner, for a textfile collector or a Pushgateway.
    Prometheus,
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
        Format::Text => text(report),
        Format::Markdown => markdown(report),
        Format::Html => html(report),
        Format::Prometheus => prometheus(report),
    }
}

/// `fundguard_coverage_{covered,total,ratio}{dimension, owner}`. Overall figures are the sums
/// over owners (every field, metric item and relation has exactly one owner), so only the
/// per-owner series are written: `sum(covered) / sum(total)` is the overall ratio.
fn prometheus(report: &Report) -> String {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;
    type Labels = Vec<(String, String)>;
    let covered = Family::<Labels, Gauge>::default();
    let total = Family::<Labels, Gauge>::default();
    let ratio = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for (owner, d) in &report.owners {
        for (dimension, f) in [("field", d.field), ("metric", d.metric), ("cross_system", d.cross_system)] {
            let labels = vec![("dimension".to_string(), dimension.to_string()), ("owner".to_string(), owner.clone())];
            covered.get_or_create(&labels).set(i64::try_from(f.covered).unwrap_or(i64::MAX));
            total.get_or_create(&labels).set(i64::try_from(f.total).unwrap_or(i64::MAX));
            // A ratio for dashboards; the exact figures are the two gauges above.
            ratio.get_or_create(&labels).set(f.permille() as f64 / 1000.0);
        }
    }
    let mut registry = Registry::default();
    registry.register("fundguard_coverage_covered", "Items of a coverage dimension a rule covers, per owner", covered);
    registry.register(
        "fundguard_coverage_total",
        "Items of a coverage dimension (waived fields left out), per owner",
        total,
    );
    registry.register(
        "fundguard_coverage_ratio",
        "Covered / total, rounded down to 0.001 (1 when there is nothing to cover)",
        ratio,
    );
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// (dimension, owner, covered, total) of every owner of a JSON report (`--format json`):
/// what `fundguard run` exports as gauges. `None` when the text is not such a report.
pub fn figures_of_json(json: &str) -> Option<Vec<(String, String, u64, u64)>> {
    let report: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut out = Vec::new();
    for (owner, d) in report.get("owners")?.as_object()? {
        for dimension in ["field", "metric", "cross_system"] {
            let f = d.get(dimension)?;
            out.push((dimension.to_string(), owner.clone(), f.get("covered")?.as_u64()?, f.get("total")?.as_u64()?));
        }
    }
    Some(out)
}

/// The figures of a JSON report (`--format json`) as a section of the daily report: one
/// line per owner, in the daily report's format (`text`, `markdown` or `html`). `None` when
/// the text is not such a report.
pub fn summary_of_json(json: &str, format: &str) -> Option<String> {
    let report: serde_json::Value = serde_json::from_str(json).ok()?;
    let read = |v: &serde_json::Value| -> Option<Figure> {
        Some(Figure { covered: v.get("covered")?.as_u64()? as usize, total: v.get("total")?.as_u64()? as usize })
    };
    let dims = |d: &serde_json::Value| -> Option<[Figure; 3]> {
        Some([read(d.get("field")?)?, read(d.get("metric")?)?, read(d.get("cross_system")?)?])
    };
    let mut rows = vec![("overall".to_string(), dims(report.get("overall")?)?)];
    for (owner, d) in report.get("owners")?.as_object()? {
        rows.push((owner.clone(), dims(d)?));
    }
    let gaps = report.get("columns")?.as_array()?.iter().filter(|c| {
        c["money_field"] == true
            && c["covered_by"].as_array().is_some_and(|r| r.is_empty())
            && c.get("waived").is_none()
    });
    let gaps = gaps.count();
    let cell = |f: &Figure| figure(f).trim().to_string();
    let mut out = String::new();
    match format {
        "markdown" | "md" => {
            let _ = writeln!(
                out,
                "\n## Coverage ({gaps} uncovered money fields)\n\n| owner | field | metric | cross-system |\n|---|---|---|---|"
            );
            for (o, [f, m, c]) in &rows {
                let _ = writeln!(out, "| {o} | {} | {} | {} |", cell(f), cell(m), cell(c));
            }
        }
        "html" => {
            let _ = write!(
                out,
                "<h2>Coverage ({gaps} uncovered money fields)</h2><table><tr><th>owner</th><th>field</th><th>metric</th><th>cross-system</th></tr>"
            );
            for (o, [f, m, c]) in &rows {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(o),
                    cell(f),
                    cell(m),
                    cell(c)
                );
            }
            out.push_str("</table>\n");
        }
        _ => {
            let _ = writeln!(
                out,
                "\ncoverage ({gaps} uncovered money fields)   field            metric           cross-system"
            );
            for (o, [f, m, c]) in &rows {
                let _ = writeln!(out, "  {o:<38} {:<16} {:<16} {}", figure(f), figure(m), figure(c));
            }
        }
    }
    Some(out)
}

fn figure(f: &Figure) -> String {
    if f.total == 0 {
        return "    — (0/0)".to_string();
    }
    format!("{:>5}% ({}/{})", f.percent_text(), f.covered, f.total)
}

fn gaps(report: &Report) -> Vec<&ColumnReport> {
    let mut gaps: Vec<&ColumnReport> = report.columns.iter().filter(|c| c.is_gap()).collect();
    gaps.sort_by(|a, b| (&a.owner, &a.table, &a.column).cmp(&(&b.owner, &b.table, &b.column)));
    gaps
}

fn text(report: &Report) -> String {
    let mut out = String::new();
    let d = &report.overall;
    let _ = writeln!(out, "coverage          field            metric           cross-system");
    let _ = writeln!(
        out,
        "{:<17} {:<16} {:<16} {}",
        "overall",
        figure(&d.field),
        figure(&d.metric),
        figure(&d.cross_system)
    );
    for (owner, d) in &report.owners {
        let _ =
            writeln!(out, "{owner:<17} {:<16} {:<16} {}", figure(&d.field), figure(&d.metric), figure(&d.cross_system));
    }
    let gaps = gaps(report);
    let _ = writeln!(out, "\nuncovered money fields ({}):", gaps.len());
    for c in &gaps {
        let new = if c.new { " NEW" } else { "" };
        let _ = writeln!(
            out,
            "  {:<10} {}.{} [{} {}%: {}]{new}",
            c.owner,
            c.table,
            c.column,
            c.classification.class.name(),
            c.classification.confidence,
            c.classification.reason
        );
    }
    let waived: Vec<&ColumnReport> = report.columns.iter().filter(|c| c.money_field && c.waived.is_some()).collect();
    if !waived.is_empty() {
        let _ = writeln!(out, "\nwaived ({}):", waived.len());
        for c in waived {
            if let Some(w) = &c.waived {
                let _ = writeln!(out, "  {}.{}: {} (waived by {})", c.table, c.column, w.reason, w.owner);
            }
        }
    }
    let _ = writeln!(out, "\ncovered money fields:");
    for c in report.columns.iter().filter(|c| c.money_field && !c.covered_by.is_empty()) {
        let _ = writeln!(
            out,
            "  {}.{} [{}] ← {}",
            c.table,
            c.column,
            c.classification.class.name(),
            c.covered_by.join(", ")
        );
    }
    let _ = writeln!(out, "\nmetrics (money tables with a status column):");
    for m in &report.metrics {
        let list = |v: &[String]| if v.is_empty() { "MISSING".to_string() } else { v.join(", ") };
        let _ = writeln!(out, "  {} ({}) {}", m.table, m.status_column, figure(&m.figure));
        let _ = writeln!(out, "    transition: {}", list(&m.transition_rules));
        match &m.intermediate_states {
            Some(_) => {
                for (state, rules) in &m.timeouts {
                    let _ = writeln!(out, "    timeout in {state}: {}", list(rules));
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "    timeout: {} (states unknown: no transition rule names them)",
                    list(&m.timeout_rules)
                );
            }
        }
        let _ = writeln!(out, "    failure rate: {}", list(&m.rate_rules));
    }
    let _ = writeln!(out, "\nrelations between money tables:");
    for r in &report.relations {
        let via = r.via.as_deref().map(|v| format!(" via {v}")).unwrap_or_default();
        let state = if r.reconciled_by.is_empty() {
            "NOT RECONCILED".to_string()
        } else {
            format!("{} [{}]", r.reconciled_by.join(", "), r.directions.join("; "))
        };
        let new = if r.new { " NEW" } else { "" };
        let _ = writeln!(out, "  {} → {}{via} ({}): {state}{new}", r.from, r.to, r.found_by);
    }
    let unknown: Vec<_> = report.rules.iter().filter(|r| r.unknown.is_some()).collect();
    if !unknown.is_empty() {
        let _ = writeln!(out, "\nunknown coverage (counted as covering nothing):");
        for r in unknown {
            let _ = writeln!(out, "  {} ({}): {}", r.id, r.kind, r.unknown.as_deref().unwrap_or_default());
        }
    }
    let elsewhere: Vec<_> = report.rules.iter().filter(|r| !r.tables_not_in_schema.is_empty()).collect();
    if !elsewhere.is_empty() {
        let _ = writeln!(out, "\nrules reading tables no schema source describes (not counted there):");
        for r in elsewhere {
            let _ = writeln!(out, "  {}: {}", r.id, r.tables_not_in_schema.join(", "));
        }
    }
    if !report.problems.is_empty() {
        let _ = writeln!(out, "\nproblems:");
        for p in &report.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

fn markdown(report: &Report) -> String {
    let mut out = String::from("# Coverage\n\n| owner | field | metric | cross-system |\n|---|---|---|---|\n");
    let row = |out: &mut String, name: &str, d: &Dimensions| {
        let _ =
            writeln!(out, "| {name} | {} | {} | {} |", figure(&d.field), figure(&d.metric), figure(&d.cross_system));
    };
    row(&mut out, "**overall**", &report.overall);
    for (owner, d) in &report.owners {
        row(&mut out, owner, d);
    }
    out.push_str("\n## Uncovered money fields\n\n| owner | column | class | why |\n|---|---|---|---|\n");
    for c in gaps(report) {
        let _ = writeln!(
            out,
            "| {} | `{}.{}`{} | {} ({}%) | {} |",
            c.owner,
            c.table,
            c.column,
            if c.new { " **new**" } else { "" },
            c.classification.class.name(),
            c.classification.confidence,
            c.classification.reason.replace('|', "\\|")
        );
    }
    out.push_str("\n## Relations\n\n| from | to | reconciled by | directions |\n|---|---|---|---|\n");
    for r in &report.relations {
        let by = if r.reconciled_by.is_empty() { "**not reconciled**".into() } else { r.reconciled_by.join(", ") };
        let _ = writeln!(out, "| `{}` | `{}` | {by} | {} |", r.from, r.to, r.directions.join("; "));
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html(report: &Report) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>fundguard coverage</title></head><body><h1>Coverage</h1><table><tr><th>owner</th><th>field</th><th>metric</th><th>cross-system</th></tr>",
    );
    let row = |out: &mut String, name: &str, d: &Dimensions| {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            figure(&d.field),
            figure(&d.metric),
            figure(&d.cross_system)
        );
    };
    row(&mut out, "overall", &report.overall);
    for (owner, d) in &report.owners {
        row(&mut out, owner, d);
    }
    out.push_str("</table><h2>Uncovered money fields</h2><table><tr><th>owner</th><th>column</th><th>class</th><th>why</th></tr>");
    for c in gaps(report) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}.{}</td><td>{} ({}%)</td><td>{}</td></tr>",
            escape(&c.owner),
            escape(&c.table),
            escape(&c.column),
            c.classification.class.name(),
            c.classification.confidence,
            escape(&c.classification.reason)
        );
    }
    out.push_str("</table><h2>Relations</h2><table><tr><th>from</th><th>to</th><th>reconciled by</th></tr>");
    for r in &report.relations {
        let by = if r.reconciled_by.is_empty() { "not reconciled".into() } else { r.reconciled_by.join(", ") };
        let _ = write!(out, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", escape(&r.from), escape(&r.to), escape(&by));
    }
    out.push_str("</table></body></html>\n");
    out
}
