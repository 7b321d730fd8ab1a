//! Rule files: the parser and validator on arbitrary text, and the engine's compiler on
//! whatever they accept — diagnostics with a place, never a panic.

use std::path::Path;
use std::sync::Arc;

use fundguard_engine::Engine;
use fundguard_rules::parse_rule;

use crate::seeds;

pub fn rule_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (rule, diagnostics) = parse_rule(Arc::from("fuzz.yaml"), &text);
    for d in &diagnostics {
        assert!(!d.message.is_empty(), "a diagnostic without a message: {d}");
    }
    if let Some(rule) = rule {
        // The compiler sees what validation let through: SQL text, column references, types.
        let _ = Engine::new(&[rule], &seeds::schemas());
    }
}

/// The example rules (streaming, scripted and scheduled).
pub fn seeds() -> Vec<Vec<u8>> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seeds = Vec::new();
    for dir in ["rules", "sql-rules", "script-rules"] {
        let Ok(entries) = std::fs::read_dir(examples.join(dir)) else { continue };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        seeds.extend(paths.iter().filter_map(|p| std::fs::read(p).ok()));
    }
    seeds
}

pub const DICTIONARY: &[&str] = &[
    "\nid: ",
    "\nowner: ",
    "\nseverity: critical",
    "\ncheck:\n  tables: [shop.orders]\n  assert: ",
    "\nwhen: ",
    "\nkey: [id]",
    "\nmoney: ",
    "\nwithin: ",
    "\nallowed_lateness: ",
    "\nstate_ttl: ",
    "\nreconcile:\n",
    "\ntransition:\n",
    "\ntimeout:\n",
    "\nrate:\n",
    "\nsql: ",
    "\nscript:\n  table: shop.orders\n  source: |\n    ",
    "\n  limits: { operations: ",
    "report(",
    "state.",
    "for x in after.",
    "loop { }",
    "fn f(n) { f(n) }",
    "#{",
    "`${",
    "\ntests:\n  - name: t\n    events:\n      - { at: 0s, table: shop.orders, op: u, after: { id: 1 } }\n    expect: []\n",
    "after.",
    "before.",
    "left.",
    "right.",
    " AND ",
    " OR NOT ",
    " IS NULL",
    " BETWEEN 1 AND ",
    "CAST(",
    " AS DECIMAL(38, 10))",
    "CASE WHEN ",
    "regexp_match(",
    "{{ ",
    " }}",
    "9999999999d",
    "-1s",
    "1e400",
    "&anchor ",
    "*anchor",
    "!!binary ",
    "<<: ",
    "? ",
    "|\n  ",
    "'",
    "\"",
];
