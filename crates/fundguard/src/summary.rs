//! The end-of-run report: a per-rule table and the pipeline's counters.

use std::io::Write;

use fundguard_engine::RuleStats;

use crate::pipeline::Counters;

/// Writes the per-rule table (events evaluated, findings, distinct keys, errors).
pub fn write_table(out: &mut dyn Write, stats: &[RuleStats]) -> std::io::Result<()> {
    let width = stats.iter().map(|s| s.rule.len()).max().unwrap_or(4).max(4);
    writeln!(
        out,
        "{:<width$}  {:<10}  {:>12}  {:>9}  {:>13}  {:>6}  {:>6}  {:>10}  {:>11}",
        "rule", "kind", "events", "findings", "distinct keys", "errors", "late", "state keys", "state bytes"
    )?;
    for s in stats {
        writeln!(
            out,
            "{:<width$}  {:<10}  {:>12}  {:>9}  {:>13}  {:>6}  {:>6}  {:>10}  {:>11}",
            s.rule, s.kind, s.events, s.findings, s.distinct_keys, s.errors, s.late_events, s.state_keys, s.state_bytes
        )?;
    }
    Ok(())
}

/// Writes the table of rules that failed to evaluate (rule, kind, errors — failed batches, or
/// a script's failed calls — and the last error); returns whether there was any.
pub fn write_rule_errors(out: &mut dyn Write, stats: &[RuleStats]) -> std::io::Result<bool> {
    let failed: Vec<&RuleStats> = stats.iter().filter(|s| s.errors > 0).collect();
    if failed.is_empty() {
        return Ok(false);
    }
    let width = failed.iter().map(|s| s.rule.len()).max().unwrap_or(4).max(4);
    writeln!(out, "\nrule errors:")?;
    writeln!(out, "{:<width$}  {:<10}  {:>14}  last error", "rule", "kind", "errors")?;
    for s in failed {
        let error = s.last_error.as_deref().unwrap_or("");
        writeln!(out, "{:<width$}  {:<10}  {:>14}  {error}", s.rule, s.kind, s.errors)?;
    }
    Ok(true)
}

/// Writes the counters line.
pub fn write_counters(out: &mut dyn Write, c: &Counters, seconds: f64) -> std::io::Result<()> {
    let rate = if seconds > 0.0 { c.events as f64 / seconds } else { 0.0 };
    writeln!(
        out,
        "{} messages, {} events, {} findings, {} dead letters, {} DDL skipped, {} tombstones, {} control; {:.2}s ({:.0} events/s)",
        c.messages, c.events, c.findings, c.dead_letters, c.ddl, c.tombstones, c.control, seconds, rate
    )
}
