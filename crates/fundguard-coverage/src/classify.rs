//! Column classes: what a column holds, read from its type, name and comment, with a
//! confidence and the reason in words, so a reviewer can see why a field counts as money.
//!
//! Deterministic and ordered: a declared foreign key first, then names and types, then
//! comments. The type is read as a family (integer, decimal, text, …), never as the
//! spelling, so `DECIMAL(12,2)` of a MySQL dump and `numeric(12,2)` of a live PostgreSQL
//! server classify the same.

use serde::Serialize;

use crate::schema::{Catalog, Column};

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    MoneyAmount,
    Currency,
    /// The unit or scale of an amount (`minor_unit`, `scale`): a wrong one is a ×100 error.
    Unit,
    /// A rate or percentage (commission, interest, FX).
    Rate,
    /// A state machine.
    Status,
    EventTime,
    Identifier,
    /// A reference to a row of another table (named in `references`).
    ForeignReference,
    Other,
}

impl Class {
    pub fn name(&self) -> &'static str {
        match self {
            Class::MoneyAmount => "money_amount",
            Class::Currency => "currency",
            Class::Unit => "unit",
            Class::Rate => "rate",
            Class::Status => "status",
            Class::EventTime => "event_time",
            Class::Identifier => "identifier",
            Class::ForeignReference => "foreign_reference",
            Class::Other => "other",
        }
    }

    /// `money`, `amount`, `money_amount`, … as written in coverage.yaml.
    pub fn parse(text: &str) -> Option<Class> {
        Some(match text {
            "money" | "amount" | "money_amount" => Class::MoneyAmount,
            "currency" => Class::Currency,
            "unit" | "scale" => Class::Unit,
            "rate" | "percentage" => Class::Rate,
            "status" | "state" => Class::Status,
            "event_time" | "time" => Class::EventTime,
            "identifier" | "id" => Class::Identifier,
            "foreign_reference" | "reference" => Class::ForeignReference,
            "other" | "not_money" => Class::Other,
            _ => return None,
        })
    }

    /// Whether the class carries money: every such field should be checked by a rule.
    pub fn is_money_field(&self) -> bool {
        matches!(self, Class::MoneyAmount | Class::Currency | Class::Unit | Class::Rate)
    }
}

/// A column's class, how sure, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub class: Class,
    /// 0–100.
    pub confidence: u8,
    pub reason: String,
    /// For a foreign reference: the table referenced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
}

/// The family of a column type, whatever the dialect calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeFamily {
    Integer,
    Decimal,
    Float,
    /// PostgreSQL's `money`.
    Money,
    Text,
    Bool,
    Time,
    Json,
    Other,
}

impl TypeFamily {
    pub fn of(data_type: &str) -> TypeFamily {
        let t = data_type.trim().to_lowercase();
        let head: String = t.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ' ').collect();
        let head = head.trim().trim_end_matches(" unsigned").trim_end_matches(" signed");
        match head {
            // SQL spellings, then Arrow's (warehouse tables, the schema file).
            "int" | "integer" | "bigint" | "smallint" | "tinyint" | "mediumint" | "int2" | "int4" | "int8"
            | "serial" | "bigserial" | "smallserial" | "int16" | "int32" | "int64" | "uint8" | "uint16" | "uint32"
            | "uint64" => TypeFamily::Integer,
            "decimal" | "numeric" | "dec" | "fixed" | "decimal32" | "decimal64" | "decimal128" | "decimal256" => {
                TypeFamily::Decimal
            }
            "float" | "double" | "double precision" | "real" | "float4" | "float8" | "float16" | "float32"
            | "float64" => TypeFamily::Float,
            "money" => TypeFamily::Money,
            "bool" | "boolean" | "bit" => TypeFamily::Bool,
            "json" | "jsonb" => TypeFamily::Json,
            h if h.starts_with("timestamp") || h.starts_with("date") || h.starts_with("time") => TypeFamily::Time,
            h if h.contains("char")
                || h.contains("text")
                || h.contains("utf8")
                || h == "string"
                || h == "enum"
                || h == "set"
                || h == "uuid" =>
            {
                TypeFamily::Text
            }
            _ => TypeFamily::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TypeFamily::Integer => "integer",
            TypeFamily::Decimal => "decimal",
            TypeFamily::Float => "floating-point",
            TypeFamily::Money => "money",
            TypeFamily::Text => "text",
            TypeFamily::Bool => "boolean",
            TypeFamily::Time => "time",
            TypeFamily::Json => "JSON",
            TypeFamily::Other => "other",
        }
    }

    fn is_number(self) -> bool {
        matches!(self, TypeFamily::Integer | TypeFamily::Decimal | TypeFamily::Float | TypeFamily::Money)
    }
}

/// Name parts that mean an amount of money.
const MONEY_WORDS: &[&str] = &[
    "amount",
    "amt",
    "price",
    "fee",
    "fees",
    "cost",
    "total",
    "balance",
    "paid",
    "payable",
    "refund",
    "refunded",
    "gross",
    "net",
    "commission",
    "discount",
    "tax",
    "payout",
    "charge",
    "deposit",
    "withdrawal",
    "subtotal",
    "money",
    "fen",
    "cents",
    "cent",
    "yuan",
    "principal",
    "interest",
    "settled",
    "credit",
    "debit",
    "tip",
    "bonus",
    "penalty",
    "fine",
    "salary",
    "wage",
    "revenue",
    "income",
    "spend",
    "budget",
    "limit",
    "quota",
];
/// Name parts that make a number a count rather than money (`total_items`).
const COUNT_WORDS: &[&str] =
    &["count", "qty", "quantity", "num", "number", "items", "times", "attempts", "retries", "version", "seq"];
const RATE_WORDS: &[&str] = &["rate", "ratio", "percent", "percentage", "pct", "bps", "fx", "multiplier"];
const UNIT_WORDS: &[&str] = &["unit", "units", "scale", "precision", "decimals", "exponent", "minor"];
/// Comment words (English and Chinese) that say a number is money.
const MONEY_COMMENT_WORDS: &[&str] =
    &["amount", "money", "price", "fee", "cents", "fen", "yuan", "金额", "元", "分", "费", "价"];

/// Classifies one column of `table`; `catalog` resolves `<table>_id` names to tables.
pub fn classify(table: &str, column: &Column, catalog: &Catalog) -> Classification {
    let name = column.name.to_lowercase();
    let parts: Vec<&str> = name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()).collect();
    let has = |words: &[&str]| parts.iter().any(|p| words.contains(p));
    let family = TypeFamily::of(&column.data_type);
    let comment = column.comment.as_deref().unwrap_or("").to_lowercase();
    let found = |class, confidence, reason: String| Classification { class, confidence, reason, references: None };

    if let Some(target) = &column.references {
        return Classification {
            class: Class::ForeignReference,
            confidence: 95,
            reason: format!("declared foreign key to {target}"),
            references: Some(target.clone()),
        };
    }
    if name == "id" {
        return found(Class::Identifier, 95, "named `id`".into());
    }
    if let Some(stem) = name.strip_suffix("_id").or_else(|| name.strip_suffix("_no")) {
        return match referenced_table(stem, table, catalog) {
            Some(target) => Classification {
                class: Class::ForeignReference,
                confidence: 70,
                reason: format!("named `{stem}_id` and table {target} exists (no declared foreign key)"),
                references: Some(target),
            },
            None => found(Class::Identifier, 60, format!("named `{name}`; no table `{stem}` is known to reference")),
        };
    }
    if family == TypeFamily::Money {
        return found(Class::MoneyAmount, 95, "of the `money` type".into());
    }
    if name == "currency" || name.ends_with("_currency") || name == "ccy" || name.ends_with("currency_code") {
        let confidence = if family == TypeFamily::Text { 95 } else { 70 };
        return found(Class::Currency, confidence, format!("named `{name}`, {} type", family.name()));
    }
    if has(RATE_WORDS) && family.is_number() {
        return found(Class::Rate, 85, format!("`{name}` names a rate, {} type", family.name()));
    }
    if has(UNIT_WORDS) && !has(MONEY_WORDS) {
        return found(Class::Unit, 75, format!("`{name}` names a unit or scale"));
    }
    if has(MONEY_WORDS) && family.is_number() && !has(COUNT_WORDS) {
        let (confidence, how) = match family {
            TypeFamily::Decimal => (90, "an exact decimal".to_string()),
            TypeFamily::Integer => (85, "an integer (minor units)".to_string()),
            _ => (80, format!("a {} number: not exact, a risk of its own", family.name())),
        };
        return found(Class::MoneyAmount, confidence, format!("`{name}` names an amount, stored as {how}"));
    }
    if name == "status" || name == "state" || name.ends_with("_status") || name.ends_with("_state") {
        return found(Class::Status, 90, format!("named `{name}`: a state machine"));
    }
    if family == TypeFamily::Time {
        return found(Class::EventTime, 90, format!("a {} column", family.name()));
    }
    if name.ends_with("_at") || name.ends_with("_time") || name.ends_with("_date") {
        return found(Class::EventTime, 60, format!("named `{name}`"));
    }
    if family.is_number() && MONEY_COMMENT_WORDS.iter().any(|w| comment.contains(w)) {
        return found(Class::MoneyAmount, 75, format!("a number whose comment says money: \"{}\"", comment.trim()));
    }
    if family == TypeFamily::Text
        && !column.samples.is_empty()
        && column.samples.iter().all(|v| CURRENCY_CODES.contains(&v.trim()))
    {
        return found(Class::Currency, 80, format!("its values are currency codes: {}", column.samples.join(", ")));
    }
    found(Class::Other, 50, format!("no money, status, time or reference sign in `{name}` ({} type)", family.name()))
}

/// ISO 4217 codes common enough that a column holding only these holds currencies.
const CURRENCY_CODES: &[&str] = &[
    "CNY", "USD", "EUR", "JPY", "GBP", "HKD", "SGD", "AUD", "CAD", "CHF", "KRW", "TWD", "MOP", "INR", "IDR", "THB",
    "MYR", "PHP", "VND", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "RUB", "TRY", "BRL", "MXN", "ARS", "CLP",
    "COP", "ZAR", "AED", "SAR", "ILS", "EGP", "NGN", "KES", "PKR", "BDT", "USDT", "USDC",
];

/// The table a `<stem>_id` column points at: `order` → `orders`, `category` →
/// `categories`, in the referencing table's database first.
fn referenced_table(stem: &str, table: &str, catalog: &Catalog) -> Option<String> {
    let database = table.rsplit_once('.').map(|(db, _)| db);
    let mut candidates = vec![stem.to_string(), format!("{stem}s"), format!("{stem}es")];
    if let Some(base) = stem.strip_suffix('y') {
        candidates.push(format!("{base}ies"));
    }
    for candidate in &candidates {
        let qualified = database.map(|db| format!("{db}.{candidate}"));
        for name in qualified.iter().chain(std::iter::once(candidate)) {
            if let Some(at) = catalog.resolve(name) {
                return Some(catalog.tables()[at].name.clone());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{SchemaChange, Table};

    fn shop() -> Catalog {
        let mut catalog = Catalog::default();
        for name in ["shop.orders", "shop.payments"] {
            catalog.apply(SchemaChange::CreateTable(Table { name: name.into(), columns: vec![], source: "t".into() }));
        }
        catalog
    }

    fn class_of(name: &str, data_type: &str, comment: Option<&str>) -> Classification {
        let column = Column {
            name: name.into(),
            data_type: data_type.into(),
            comment: comment.map(Into::into),
            references: None,
            samples: Vec::new(),
        };
        classify("shop.payments", &column, &shop())
    }

    #[test]
    fn money_currency_rate_and_unit() {
        assert_eq!(class_of("pay_amount", "BIGINT", None).class, Class::MoneyAmount);
        assert_eq!(class_of("amount_yuan", "DECIMAL(14,2)", None).confidence, 90);
        assert_eq!(class_of("currency", "CHAR(3)", None).class, Class::Currency);
        assert_eq!(class_of("commission_rate", "numeric(6,4)", None).class, Class::Rate);
        assert_eq!(class_of("minor_unit", "smallint", None).class, Class::Unit);
        assert_eq!(class_of("total_items", "int", None).class, Class::Other);
        assert_eq!(class_of("price", "double", None).confidence, 80);
        assert_eq!(class_of("x", "bigint", Some("退款金额")).class, Class::MoneyAmount);
    }

    #[test]
    fn references_by_name_and_identifiers() {
        let order = class_of("order_id", "bigint", None);
        assert_eq!((order.class, order.references.as_deref()), (Class::ForeignReference, Some("shop.orders")));
        assert_eq!(class_of("txn_id", "varchar(32)", None).class, Class::Identifier);
        assert_eq!(class_of("id", "bigint", None).class, Class::Identifier);
    }

    #[test]
    fn a_live_profile_of_currency_codes_makes_a_currency() {
        let mut column = Column {
            name: "settle_in".into(),
            data_type: "char(3)".into(),
            comment: None,
            references: None,
            samples: vec!["CNY".into(), "USD".into()],
        };
        let catalog = shop();
        let classified = classify("shop.payments", &column, &catalog);
        assert_eq!((classified.class, classified.confidence), (Class::Currency, 80));
        column.samples.push("NEW".into());
        assert_eq!(classify("shop.payments", &column, &catalog).class, Class::Other);
    }

    #[test]
    fn status_and_time() {
        assert_eq!(class_of("status", "varchar(16)", None).class, Class::Status);
        assert_eq!(class_of("created_at", "datetime(3)", None).class, Class::EventTime);
        assert_eq!(class_of("created_at", "timestamp with time zone", None).confidence, 90);
    }

    #[test]
    fn the_type_family_not_its_spelling_decides() {
        for (a, b) in [("DECIMAL(12,2)", "numeric(12,2)"), ("VARCHAR(16)", "character varying(16)"), ("BIGINT", "int8")]
        {
            assert_eq!(TypeFamily::of(a), TypeFamily::of(b));
            assert_eq!(class_of("fee", a, None), class_of("fee", b, None));
        }
    }
}
