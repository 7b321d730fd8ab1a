//! The freshness report: per owner, how many of its rules are in each state, and every rule
//! that needs a look with its reasons — sent weekly through the notification channels
//! (`fundguard report freshness --send CHANNEL`), as text and HTML.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::assess::{RuleHealth, State};

/// Rules' health grouped by owner.
pub struct FreshnessReport<'a> {
    /// What the report covers, in words (`week to 2026-12-06`).
    pub label: String,
    owners: BTreeMap<&'a str, Vec<&'a RuleHealth>>,
}

impl<'a> FreshnessReport<'a> {
    pub fn new(label: impl Into<String>, judged: &'a [RuleHealth]) -> FreshnessReport<'a> {
        let mut owners: BTreeMap<&str, Vec<&RuleHealth>> = BTreeMap::new();
        for h in judged {
            owners.entry(h.owner.as_str()).or_default().push(h);
        }
        for rules in owners.values_mut() {
            rules.sort_by(|a, b| (a.state, &a.id).cmp(&(b.state, &b.id)));
        }
        FreshnessReport { label: label.into(), owners }
    }

    fn counts(rules: &[&RuleHealth]) -> String {
        State::ALL
            .iter()
            .map(|s| (s, rules.iter().filter(|h| h.state == *s).count()))
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {}", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn text(&self) -> String {
        let mut out = format!("fundguard rule freshness, {}\n", self.label);
        for (owner, rules) in &self.owners {
            let _ = writeln!(out, "\n{owner}: {} rule(s): {}", rules.len(), Self::counts(rules));
            for h in rules.iter().filter(|h| h.state != State::Ok) {
                let _ = writeln!(out, "  {} {}", h.state.as_str(), h.id);
                for r in &h.reasons {
                    let _ = writeln!(out, "    - {}", r.message);
                    for e in &r.evidence {
                        let _ = writeln!(out, "        {e}");
                    }
                }
            }
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("# fundguard rule freshness, {}\n", self.label);
        for (owner, rules) in &self.owners {
            let _ = writeln!(out, "\n## {owner}\n\n{} rule(s): {}\n", rules.len(), Self::counts(rules));
            for h in rules.iter().filter(|h| h.state != State::Ok) {
                let reasons: Vec<String> = h.reasons.iter().map(|r| r.message.replace('|', "\\|")).collect();
                let _ = writeln!(out, "- **{}** `{}`: {}", h.state.as_str(), h.id, reasons.join("; "));
            }
        }
        out
    }

    pub fn html(&self) -> String {
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
        let mut out = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>fundguard rule freshness</title></head><body><h1>fundguard rule freshness, {}</h1>",
            esc(&self.label)
        );
        for (owner, rules) in &self.owners {
            let _ = write!(out, "<h2>{}</h2><p>{} rule(s): {}</p>", esc(owner), rules.len(), esc(&Self::counts(rules)));
            let needing: Vec<_> = rules.iter().filter(|h| h.state != State::Ok).collect();
            if needing.is_empty() {
                continue;
            }
            out.push_str("<table border=\"1\" cellpadding=\"4\"><tr><th>Rule</th><th>State</th><th>Why</th></tr>");
            for h in needing {
                let reasons: Vec<String> = h.reasons.iter().map(|r| esc(&r.message)).collect();
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&h.id),
                    h.state.as_str(),
                    reasons.join("<br>")
                );
            }
            out.push_str("</table>");
        }
        out.push_str("</body></html>");
        out
    }
}
