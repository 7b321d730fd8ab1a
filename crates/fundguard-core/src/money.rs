//! Money at risk: exact minor units of an ISO 4217 currency, and the one formatter that shows
//! them in major units (`4,198.45 CNY`, `1,500 JPY`, `−1.55`).
//!
//! A finding's amount is converted to minor units when it is built ([`Money::from_value`],
//! after the rule's `money.unit`); stores, webhooks and sums keep those exact minor units,
//! and everything people read goes through [`Money::display`] / [`format_major`]. An amount
//! whose currency is absent or not an ISO 4217 code with minor units (`XAU`, `POINTS`) cannot
//! be converted: it is kept and shown as given, a plain number. No floats anywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rust_decimal::Decimal;
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::Value;

/// The minus sign people read (U+2212), not a hyphen.
pub const MINUS: char = '\u{2212}';

/// The ISO 4217 minor-unit exponent of `code` (CNY 2, JPY 0, KWD 3, CLF 4); `None` for a code
/// that is not ISO 4217 or has no minor unit (XAU, XDR). Case and surrounding space are ignored.
pub fn exponent(code: &str) -> Option<u32> {
    let code = code.trim();
    if code.len() != 3 {
        return None;
    }
    iso_currency::Currency::from_code(&code.to_ascii_uppercase()).and_then(|c| c.exponent()).map(u32::from)
}

/// What unit a rule's `money.amount` is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MoneyUnit {
    /// An integer (or a decimal without fraction digits) is minor units; a decimal with a
    /// fractional scale (`DECIMAL(12,2)`: `4198.45`, `12.00`) is major units.
    #[default]
    Auto,
    /// Minor units (fen, cents): `419845`.
    Minor,
    /// Major units (yuan, dollars): `4198.45`.
    Major,
}

/// Money at risk: an exact amount and its currency.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Money {
    /// Minor units of `currency` when `minor` (integral unless the source had more fraction
    /// digits than the currency has: `1.005 CNY` is `100.5`); otherwise as the rule gave it.
    pub amount: Decimal,
    /// Upper-case ISO 4217 code when it is one; otherwise as given (trimmed).
    pub currency: Option<String>,
    /// `amount` is in minor units of `currency`, whose exponent is known.
    pub minor: bool,
}

/// The exact number in `value`: an integer, a decimal, or the text of one.
fn number(value: &Value) -> Option<Decimal> {
    match value {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Decimal(d) => Some(*d),
        Value::String(s) => match Value::parse_number(s.trim())? {
            Value::Int(i) => Some(Decimal::from(i)),
            Value::Decimal(d) => Some(d),
            _ => None,
        },
        _ => None,
    }
}

/// `10^e` as a decimal (`e` ≤ 4 for every ISO 4217 currency).
fn power_of_ten(e: u32) -> Option<Decimal> {
    10i64.checked_pow(e).map(Decimal::from)
}

impl Money {
    /// Money in minor units of `currency` (or as given when the currency has no known exponent).
    pub fn new(amount: Decimal, currency: Option<&str>, unit: MoneyUnit) -> Money {
        let currency = currency.map(str::trim).filter(|c| !c.is_empty());
        let Some((code, e)) = currency.and_then(|c| exponent(c).map(|e| (c.to_ascii_uppercase(), e))) else {
            return Money { amount, currency: currency.map(str::to_string), minor: false };
        };
        let major = match unit {
            MoneyUnit::Minor => false,
            MoneyUnit::Major => true,
            MoneyUnit::Auto => amount.scale() > 0,
        };
        if !major {
            return Money { amount: amount.normalize(), currency: Some(code), minor: true };
        }
        match power_of_ten(e).and_then(|p| amount.checked_mul(p)) {
            Some(minor) => Money { amount: minor.normalize(), currency: Some(code), minor: true },
            // Beyond 28 digits in minor units: kept as given rather than rounded.
            None => Money { amount, currency: Some(code), minor: false },
        }
    }

    /// Money from a rule's amount and currency values; `None` when the amount is NULL or not
    /// a number (a NULL or empty currency is no currency).
    pub fn from_value(amount: &Value, currency: Option<&Value>, unit: MoneyUnit) -> Option<Money> {
        let amount = number(amount)?;
        let currency = currency.filter(|c| !c.is_null()).map(Value::to_string);
        Some(Money::new(amount, currency.as_deref(), unit))
    }

    /// The exponent this amount is shown with: its currency's when the amount is in minor units.
    pub fn exponent(&self) -> Option<u32> {
        if self.minor { self.currency.as_deref().and_then(exponent) } else { None }
    }

    /// What people read: `4,198.45 CNY`, `1,500 JPY`, `−1.55 CNY`; an amount kept as given
    /// is its plain number (`12.5 POINTS`, `1250`).
    pub fn display(&self) -> String {
        let number = self.display_number();
        match &self.currency {
            Some(c) => format!("{number} {c}"),
            None => number,
        }
    }

    /// [`Money::display`] without the currency code: `−1.55`.
    pub fn display_number(&self) -> String {
        match self.exponent() {
            Some(e) => format_minor(self.amount, e),
            None => format_plain(self.amount),
        }
    }

    /// The sum of two amounts of the same currency and unit; `None` otherwise or past 28 digits.
    pub fn checked_add(&self, other: &Money) -> Option<Money> {
        if self.currency != other.currency || self.minor != other.minor {
            return None;
        }
        Some(Money { amount: self.amount.checked_add(other.amount)?, ..self.clone() })
    }

    /// The exact minor-unit amount as JSON text: `"419845"`.
    fn minor_text(&self) -> String {
        self.amount.normalize().to_string()
    }
}

/// `minor` units of a currency with exponent `e`, in major units: grouped by thousands, at
/// least `e` fraction digits (more when the amount has them), `−` for negatives.
pub fn format_minor(minor: Decimal, e: u32) -> String {
    let scale = minor.normalize().scale().saturating_add(e);
    let Ok(major) = Decimal::try_from_i128_with_scale(minor.normalize().mantissa(), scale) else {
        // More than 28 fraction digits in major units: the minor amount itself, plainly.
        return format_plain(minor);
    };
    let digits = major.abs().to_string();
    let (int, frac) = digits.split_once('.').unwrap_or((&digits, ""));
    let mut frac = frac.trim_end_matches('0').to_string();
    while frac.len() < e as usize {
        frac.push('0');
    }
    let mut out = String::new();
    if major.is_sign_negative() && !major.is_zero() {
        out.push(MINUS);
    }
    out.push_str(&group(int));
    if !frac.is_empty() {
        let _ = write!(out, ".{frac}");
    }
    out
}

/// `minor` units of `currency` in major units with the code: `format_major(419845, "CNY")` is
/// `4,198.45 CNY`; a currency without a known exponent shows the number as given.
pub fn format_major(minor: Decimal, currency: &str) -> String {
    match exponent(currency) {
        Some(e) => format!("{} {}", format_minor(minor, e), currency.trim().to_ascii_uppercase()),
        None => format!("{} {}", format_plain(minor), currency.trim()),
    }
}

/// A number as given, with `−` for negatives and no grouping: `1250`, `−12.50`.
pub fn format_plain(amount: Decimal) -> String {
    let text = amount.to_string();
    match text.strip_prefix('-') {
        Some(rest) => format!("{MINUS}{rest}"),
        None => text,
    }
}

fn group(int: &str) -> String {
    let mut out = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Reads what [`Money::display`] wrote back into exact money: `4,198.45 CNY` is 419845 minor
/// units of CNY. `None` for text that is not such an amount.
pub fn parse_display(text: &str) -> Option<Money> {
    let text = text.trim();
    let (number, currency) = match text.rsplit_once(' ') {
        Some((n, c)) => (n, Some(c)),
        None => (text, None),
    };
    let (negative, digits) = match number.strip_prefix(MINUS).or_else(|| number.strip_prefix('-')) {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let groups: Vec<&str> = int.split(',').collect();
    let grouped_well = groups.len() == 1
        || (!groups[0].is_empty() && groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3));
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !grouped_well || !groups.iter().all(|g| plain(g)) || (digits.contains('.') && !plain(frac)) {
        return None;
    }
    let mut exact = groups.concat();
    if !frac.is_empty() {
        exact = format!("{exact}.{frac}");
    }
    let mut amount = Decimal::from_str_exact(&exact).ok()?;
    if negative {
        amount.set_sign_negative(true);
    }
    Some(Money::new(amount, currency, MoneyUnit::Major))
}

/// Findings, alerts and webhooks carry `{"amount_minor": "419845", "currency": "CNY",
/// "exponent": 2, "display": "4,198.45 CNY"}` — exact minor units as text, so no reader turns
/// them into floats — or, for an amount kept as given, `{"amount": "12.5", "currency":
/// "POINTS", "display": "12.5 POINTS"}`.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.minor {
            map.serialize_entry("amount_minor", &self.minor_text())?;
        } else {
            map.serialize_entry("amount", &self.amount.to_string())?;
        }
        if let Some(c) = &self.currency {
            map.serialize_entry("currency", c)?;
        }
        if let Some(e) = self.exponent() {
            map.serialize_entry("exponent", &e)?;
        }
        map.serialize_entry("display", &self.display())?;
        map.end()
    }
}

/// Reads both the form above and what fundguard stored before amounts were converted —
/// `{"amount": 1250 | "12.50", "currency": "CNY"}`, the rule's value as given — by the `auto`
/// rule: an integer is minor units, a decimal with fraction digits major units.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(deserializer)?;
        Money::from_json(&json).ok_or_else(|| serde::de::Error::custom("expected money: amount_minor or amount"))
    }
}

impl Money {
    /// Money from its JSON form (see the `Deserialize` impl); `None` when it has no amount.
    pub fn from_json(json: &serde_json::Value) -> Option<Money> {
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(Value::String(s.clone())),
            serde_json::Value::Number(n) => Value::parse_number(&n.to_string()),
            _ => None,
        };
        let currency = json.get("currency").and_then(serde_json::Value::as_str).map(|c| Value::String(c.into()));
        if let Some(minor) = json.get("amount_minor").and_then(text) {
            return Money::from_value(&minor, currency.as_ref(), MoneyUnit::Minor);
        }
        Money::from_value(&json.get("amount").and_then(text)?, currency.as_ref(), MoneyUnit::Auto)
    }
}

/// Money added up exactly per currency (and unit), for reports and dashboards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoneyTotals {
    totals: BTreeMap<(Option<String>, bool), Decimal>,
}

impl MoneyTotals {
    /// Adds `money` to its currency's total. A total past 28 digits stays where it was.
    pub fn add(&mut self, money: &Money) {
        let total = self.totals.entry((money.currency.clone(), money.minor)).or_default();
        if let Some(sum) = total.checked_add(money.amount) {
            *total = sum;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }

    /// Each currency's total, in currency order.
    pub fn iter(&self) -> impl Iterator<Item = Money> + '_ {
        self.totals.iter().map(|((currency, minor), amount)| Money {
            amount: *amount,
            currency: currency.clone(),
            minor: *minor,
        })
    }

    /// `4,198.45 CNY, 1,500 JPY`, or `-` when there is nothing.
    pub fn display(&self) -> String {
        if self.is_empty() {
            return "-".to_string();
        }
        self.iter().map(|m| m.display()).collect::<Vec<_>>().join(", ")
    }
}

/// A list of each currency's total, as [`Money`] serialises.
impl Serialize for MoneyTotals {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn exponents_come_from_iso_4217() {
        assert_eq!(exponent("CNY"), Some(2));
        assert_eq!(exponent("jpy"), Some(0));
        assert_eq!(exponent(" KWD "), Some(3));
        assert_eq!(exponent("CLF"), Some(4));
        assert_eq!(exponent("XAU"), None);
        assert_eq!(exponent("POINTS"), None);
        assert_eq!(exponent(""), None);
    }

    #[test]
    fn major_units_with_grouping_and_a_real_minus() {
        assert_eq!(format_major(d("419845"), "CNY"), "4,198.45 CNY");
        assert_eq!(format_major(d("1500"), "JPY"), "1,500 JPY");
        assert_eq!(format_major(d("-155"), "CNY"), "\u{2212}1.55 CNY");
        assert_eq!(format_major(d("1234567"), "KWD"), "1,234.567 KWD");
        assert_eq!(format_major(d("5"), "CNY"), "0.05 CNY");
        assert_eq!(format_major(d("0"), "CNY"), "0.00 CNY");
        assert_eq!(format_major(d("100.5"), "CNY"), "1.005 CNY");
        assert_eq!(format_major(d("123456789012"), "USD"), "1,234,567,890.12 USD");
        assert_eq!(format_major(d("1250"), "POINTS"), "1250 POINTS");
    }

    #[test]
    fn amounts_are_converted_by_unit() {
        let cny = |v: Value, unit| Money::from_value(&v, Some(&Value::from("cny")), unit).unwrap();
        assert_eq!(cny(Value::Int(419845), MoneyUnit::Auto).display(), "4,198.45 CNY");
        assert_eq!(cny(Value::Decimal(d("4198.45")), MoneyUnit::Auto).amount, d("419845"));
        assert_eq!(cny(Value::Decimal(d("12.00")), MoneyUnit::Auto).amount, d("1200"));
        assert_eq!(cny(Value::Decimal(d("1250")), MoneyUnit::Auto).amount, d("1250"));
        assert_eq!(cny(Value::Int(12), MoneyUnit::Major).amount, d("1200"));
        assert_eq!(cny(Value::Decimal(d("1250.00")), MoneyUnit::Minor).amount, d("1250"));
        // More digits than the currency has: kept, never rounded.
        assert_eq!(cny(Value::Decimal(d("1.005")), MoneyUnit::Auto).amount, d("100.5"));
        let plain = Money::from_value(&Value::Decimal(d("12.50")), None, MoneyUnit::Auto).unwrap();
        assert_eq!((plain.minor, plain.display()), (false, "12.50".to_string()));
        let points = Money::from_value(&Value::Int(-7), Some(&Value::from("POINTS")), MoneyUnit::Auto).unwrap();
        assert_eq!(points.display(), "\u{2212}7 POINTS");
        assert_eq!(Money::from_value(&Value::Null, None, MoneyUnit::Auto), None);
        assert_eq!(Money::from_value(&Value::from("n/a"), None, MoneyUnit::Auto), None);
        let huge = Money::new(Decimal::MAX, Some("CNY"), MoneyUnit::Major);
        assert!(!huge.minor, "kept as given rather than overflowing");
    }

    #[test]
    fn json_keeps_minor_units_and_reads_what_older_versions_stored() {
        let m = Money::new(d("4198.45"), Some("CNY"), MoneyUnit::Auto);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"amount_minor": "419845", "currency": "CNY", "exponent": 2, "display": "4,198.45 CNY"})
        );
        assert_eq!(serde_json::from_value::<Money>(json).unwrap(), m);
        let old: Money = serde_json::from_str(r#"{"amount": "4198.45", "currency": "CNY"}"#).unwrap();
        assert_eq!(old, m);
        let old_fen: Money = serde_json::from_str(r#"{"amount": 419845, "currency": "CNY"}"#).unwrap();
        assert_eq!(old_fen, m);
        let plain: Money = serde_json::from_str(r#"{"amount": "1"}"#).unwrap();
        assert_eq!(serde_json::to_value(&plain).unwrap(), serde_json::json!({"amount": "1", "display": "1"}));
    }

    #[test]
    fn totals_add_per_currency() {
        let mut t = MoneyTotals::default();
        t.add(&Money::new(d("0.10"), Some("CNY"), MoneyUnit::Auto));
        t.add(&Money::new(d("20"), Some("CNY"), MoneyUnit::Auto));
        t.add(&Money::new(d("1500"), Some("JPY"), MoneyUnit::Auto));
        assert_eq!(t.display(), "0.30 CNY, 1,500 JPY");
        assert_eq!(MoneyTotals::default().display(), "-");
    }

    proptest! {
        /// Formatting then parsing back gives the exact amount, for exponents 0, 2 and 3.
        #[test]
        fn display_reads_back_exactly(minor in any::<i64>(), extra in 0u32..3, code in prop::sample::select(vec!["JPY", "CNY", "KWD", "POINTS"])) {
            let amount = Decimal::new(minor, extra);
            let money = Money::new(amount, Some(code), MoneyUnit::Minor);
            let back = parse_display(&money.display()).unwrap();
            prop_assert_eq!(back.amount, money.amount.normalize());
            prop_assert_eq!(back.currency, money.currency);
        }

        /// The number without a code reads back too.
        #[test]
        fn plain_numbers_read_back(minor in any::<i64>(), scale in 0u32..6) {
            let amount = Decimal::new(minor, scale);
            let back = parse_display(&format_plain(amount)).unwrap();
            prop_assert_eq!(back.amount, amount);
        }
    }
}
