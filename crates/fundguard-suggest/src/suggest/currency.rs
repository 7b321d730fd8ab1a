//! Currencies in the observed set of ISO 4217 codes: one check per currency column. Observed
//! values that are not ISO codes are left out of the set and named for review.

use fundguard_core::{Op, Value};

use super::{
    Body, Context, Kind, Skipped, Suggestion, Suggestions, TestCase, TestEvent, class_confidence, confidence, pick,
    sql_text, with, within_tolerance,
};

pub struct Currency;

impl Kind for Currency {
    fn name(&self) -> &'static str {
        "currency"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        for (name, table, profile) in cx.tables() {
            for column in &table.currencies {
                let subject = format!("{name}.{column}");
                let Some(c) = profile.columns.get(column) else { continue };
                let present = c.present();
                if present < cx.options.min_rows {
                    out.skipped.push(Skipped {
                        kind: self.name(),
                        subject,
                        reason: format!(
                            "only {present} row(s) with a currency; at least {} are needed",
                            cx.options.min_rows
                        ),
                    });
                    continue;
                }
                let Some(values) = c.values.values() else {
                    out.skipped.push(Skipped {
                        kind: self.name(),
                        subject,
                        reason: format!(
                            "more than {} distinct values: not a list of currencies",
                            fundguard_core::distinct::EXACT_BOUND
                        ),
                    });
                    continue;
                };
                let (iso, other): (Vec<_>, Vec<_>) = values.iter().partition(|(v, _)| ISO_4217.contains(&v.as_str()));
                let other_rows: u64 = other.iter().map(|(_, n)| **n).sum();
                if iso.is_empty() || !within_tolerance(other_rows, present) {
                    out.skipped.push(Skipped {
                        kind: self.name(),
                        subject,
                        reason: format!("{other_rows} of {present} values are not ISO 4217 codes"),
                    });
                    continue;
                }
                let set: Vec<String> = iso.iter().map(|(v, _)| sql_text(v)).collect();
                let column_sql = format!("after.{column}");
                let assert = if c.nulls > 0 {
                    format!("{column_sql} IS NULL OR {column_sql} IN ({})", set.join(", "))
                } else {
                    format!("{column_sql} IN ({})", set.join(", "))
                };
                let counts: Vec<String> = iso.iter().map(|(v, n)| format!("{v} {n}")).collect();
                let mut evidence =
                    vec![format!("{present} values, {} ISO 4217 code(s): {}", iso.len(), counts.join(", "))];
                let mut review = Vec::new();
                if !other.is_empty() {
                    let list: Vec<String> = other.iter().map(|(v, n)| format!("{v:?} ({n} rows)")).collect();
                    evidence.push(format!("not ISO 4217, left out: {}", list.join(", ")));
                    review.push(format!("values left out because they are not ISO 4217 codes: {}", list.join(", ")));
                }
                let key_column = table.id.clone();
                let mut tests = Vec::new();
                if let Some(row) = &c.example {
                    let mut cols: Vec<&str> = key_column.iter().map(String::as_str).collect();
                    cols.push(column);
                    let real = pick(row, &cols);
                    let unseen =
                        ["XXX", "XTS", "XAU"].into_iter().find(|code| !values.contains_key(*code)).unwrap_or("ZZZ");
                    let expect_key =
                        key_column.iter().filter_map(|k| row.get(k).map(|v| (k.clone(), v.clone()))).collect();
                    tests.push(TestCase {
                        name: "a real row from the sample".into(),
                        events: vec![TestEvent { at: 0, table: name.clone(), op: Op::Insert, after: real.clone() }],
                        expect: vec![],
                    });
                    tests.push(TestCase {
                        name: format!("a currency never seen: {unseen}"),
                        events: vec![TestEvent {
                            at: 0,
                            table: name.clone(),
                            op: Op::Insert,
                            after: with(real, column, Value::String(unseen.into())),
                        }],
                        expect: vec![expect_key],
                    });
                }
                let codes: Vec<&str> = iso.iter().map(|(v, _)| v.as_str()).collect();
                out.made.push(Suggestion {
                    id: super::rule_id(&format!("{}-{column}-known", super::short(name))),
                    kind: self.name(),
                    tables: vec![name.clone()],
                    columns: vec![subject],
                    invariant: format!(
                        "{} {column} is one of the ISO 4217 codes seen: {}.",
                        super::short(name),
                        codes.join(", ")
                    ),
                    evidence,
                    confidence: confidence(present, class_confidence(table, column)),
                    review,
                    owner: cx.owner(name),
                    severity: "high",
                    tags: vec!["money".into(), "currency".into(), "suggested".into()],
                    body: Body::Check {
                        table: name.clone(),
                        when: Some("op <> 'delete'".into()),
                        assert,
                        key: key_column.iter().map(|k| (k.clone(), format!("after.{k}"))).collect(),
                        money: None,
                    },
                    tests,
                });
            }
        }
    }
}

/// ISO 4217 alphabetic codes in use (including the X codes for metals, testing and "no currency").
pub const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF",
    "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CLF",
    "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB",
    "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR",
    "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD",
    "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR",
    "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP",
    "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD",
    "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF",
    "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF", "XPD", "XPF", "XPT", "XSU", "XTS", "XUA",
    "XXX", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
];
