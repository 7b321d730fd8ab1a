//! The report a reviewer reads: per suggestion the invariant in words, the evidence, the
//! confidence and what its backtest raised, best first; then what got no suggestion and
//! why, and the profile itself. JSON for machines, Markdown for people.

use std::fmt::Write;

use serde::Serialize;

use crate::backtest::{Checked, Rejected, RuleResult, Verdict, rank};
use crate::layout::Layout;
use crate::profile::Profile;
use crate::suggest::{Skipped, Suggestion};

/// Everything `fundguard suggest` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub sample: Sample,
    pub suggestions: Vec<Reported>,
    /// Suggestions whose file failed to load, compile or pass its tests (not written).
    pub rejected: Vec<Rejected>,
    /// Columns, states and relations that got no suggestion of a kind, and why.
    pub skipped: Vec<Skipped>,
    /// How coverage classified the tables and related them (what the kinds read).
    pub layout: Layout,
    pub profile: Profile,
}

/// What was profiled.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub events: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    pub tables: usize,
    pub dead_letters: u64,
}

/// One written suggestion with its backtest.
#[derive(Debug, Clone, Serialize)]
pub struct Reported {
    #[serde(flatten)]
    pub suggestion: Suggestion,
    pub file: String,
    pub verdict: Verdict,
    /// The confidence after the backtest (noise ranks a suggestion down).
    pub ranked_confidence: u8,
    pub backtest: RuleResult,
}

impl Report {
    /// Orders the suggestions best first: quiet before noisy, then by confidence.
    pub fn new(
        layout: Layout,
        profile: Profile,
        checked: &[Checked],
        results: impl Fn(&str) -> RuleResult,
        rejected: Vec<Rejected>,
        skipped: Vec<Skipped>,
        dead_letters: u64,
    ) -> Report {
        let mut suggestions: Vec<Reported> = checked
            .iter()
            .map(|c| {
                let backtest = results(&c.suggestion.id);
                let (verdict, ranked_confidence) = rank(c.suggestion.confidence, &backtest);
                Reported {
                    suggestion: c.suggestion.clone(),
                    file: format!("{}.yaml", c.suggestion.id),
                    verdict,
                    ranked_confidence,
                    backtest,
                }
            })
            .collect();
        suggestions.sort_by(|a, b| {
            (a.verdict, std::cmp::Reverse(a.ranked_confidence), &a.suggestion.id).cmp(&(
                b.verdict,
                std::cmp::Reverse(b.ranked_confidence),
                &b.suggestion.id,
            ))
        });
        Report {
            sample: Sample {
                events: profile.events,
                first: profile.first.map(|t| t.to_string()),
                last: profile.last.map(|t| t.to_string()),
                tables: profile.tables.len(),
                dead_letters,
            },
            suggestions,
            rejected,
            skipped,
            layout,
            profile,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let s = &self.sample;
        let _ = writeln!(m, "# Suggested rules\n");
        let _ = writeln!(
            m,
            "{} events of {} tables, {} to {}{}.\n",
            s.events,
            s.tables,
            s.first.as_deref().unwrap_or("-"),
            s.last.as_deref().unwrap_or("-"),
            if s.dead_letters > 0 {
                format!("; {} unreadable message(s) dead-lettered", s.dead_letters)
            } else {
                String::new()
            }
        );
        let _ = writeln!(m, "| rule | kind | verdict | confidence | findings on the sample | worst day |");
        let _ = writeln!(m, "|---|---|---|---|---|---|");
        for r in &self.suggestions {
            let _ = writeln!(
                m,
                "| [{}]({}) | {} | {} | {}% | {} | {} |",
                r.suggestion.id,
                r.file,
                r.suggestion.kind,
                verdict_text(r.verdict),
                r.ranked_confidence,
                r.backtest.findings,
                r.backtest.worst_day()
            );
        }
        for r in &self.suggestions {
            let _ = writeln!(m, "\n## {}\n", r.suggestion.id);
            let _ = writeln!(m, "{}\n", r.suggestion.invariant);
            let _ = writeln!(
                m,
                "Kind `{}`, severity {}, confidence {}% ({}% before the backtest), file `{}`.\n",
                r.suggestion.kind, r.suggestion.severity, r.ranked_confidence, r.suggestion.confidence, r.file
            );
            let _ = writeln!(m, "Evidence:");
            for e in &r.suggestion.evidence {
                let _ = writeln!(m, "- {e}");
            }
            for e in &r.suggestion.review {
                let _ = writeln!(m, "- **review:** {e}");
            }
            if r.backtest.findings == 0 {
                let _ = writeln!(m, "\nBacktest: no findings on the sample.");
            } else {
                let days: Vec<String> = r.backtest.per_day.iter().map(|(d, n)| format!("{d}: {n}")).collect();
                let _ = writeln!(m, "\nBacktest: {} finding(s) ({}).", r.backtest.findings, days.join(", "));
                for key in &r.backtest.examples {
                    let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let _ = writeln!(m, "- example key: {}", parts.join(", "));
                }
            }
            if let Some(e) = &r.backtest.last_error {
                let _ = writeln!(m, "\nEvaluation errors: {} (last: {e})", r.backtest.errors);
            }
        }
        if !self.rejected.is_empty() {
            let _ = writeln!(m, "\n## Not written\n");
            for r in &self.rejected {
                let _ = writeln!(m, "- `{}` ({}): {}", r.id, r.kind, r.reason);
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(m, "\n## No suggestion\n");
            let _ = writeln!(m, "| kind | subject | why |");
            let _ = writeln!(m, "|---|---|---|");
            for s in &self.skipped {
                let _ = writeln!(m, "| {} | {} | {} |", s.kind, s.subject, s.reason.replace('|', "\\|"));
            }
        }
        m
    }

    /// One line per suggestion, for the terminal.
    pub fn summary(&self) -> String {
        let mut t = String::new();
        for r in &self.suggestions {
            let _ = writeln!(
                t,
                "{:<12} {:>3}%  {:>6} finding(s)  {}",
                verdict_text(r.verdict),
                r.ranked_confidence,
                r.backtest.findings,
                r.suggestion.id
            );
        }
        t
    }
}

fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Recommended => "recommended",
        Verdict::Review => "review",
        Verdict::Noisy => "noisy",
    }
}
