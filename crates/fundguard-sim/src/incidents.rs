//! The incidents the simulator can inject, and the answer key it writes for them.

use std::collections::BTreeMap;

use fundguard_core::{EventTime, Value};
use serde::Serialize;

/// A kind of money bug the simulator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// An order whose pay amount is not total minus discount.
    WrongAmount,
    /// A payment whose yuan mirror holds the fen value (×100).
    UnitX100,
    /// A payment in a currency code that does not exist.
    BadCurrency,
    /// A refund with a negative amount.
    NegativeAmount,
    /// A settlement whose commission is not gross × rate.
    CommissionMiscalculation,
    /// A paid order moved back to PAYING.
    IllegalStatusChange,
    /// Refunds of an order adding up to more than its payment.
    OverRefund,
    /// A successful payment for an order that does not exist.
    OrphanPayment,
    /// An order marked PAID with no successful payment behind it.
    MissingPayment,
    /// An order left in PAYING while its payment succeeded.
    StuckOrder,
    /// A ledger transaction whose debits and credits differ.
    LedgerImbalance,
    /// A burst of failed payments on one channel.
    FailureRateSpike,
    /// A payment of the broken slice of an [`Outage`] that a bad deploy got one fen wrong.
    BadDeploy,
    /// An order of the broken merchant of an [`Outage`] left in PAYING after its payment.
    MerchantOutage,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 12] = [
        IncidentKind::WrongAmount,
        IncidentKind::UnitX100,
        IncidentKind::BadCurrency,
        IncidentKind::NegativeAmount,
        IncidentKind::CommissionMiscalculation,
        IncidentKind::IllegalStatusChange,
        IncidentKind::OverRefund,
        IncidentKind::OrphanPayment,
        IncidentKind::MissingPayment,
        IncidentKind::StuckOrder,
        IncidentKind::LedgerImbalance,
        IncidentKind::FailureRateSpike,
    ];

    /// The findings of the example rules (examples/rules) this incident must cause:
    /// rule id and the key (or the part of it that is known in advance).
    pub fn expected(self, ids: &Ids) -> Vec<Expected> {
        let e = |rule: &str, key: Vec<(&str, Value)>| Expected {
            rule: rule.to_string(),
            key: key.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        };
        let order = || Value::Int(ids.order);
        match self {
            IncidentKind::WrongAmount => vec![e("order-amounts-add-up", vec![("id", order())])],
            IncidentKind::UnitX100 => vec![e("payment-minor-units-consistent", vec![("id", Value::Int(ids.other))])],
            IncidentKind::BadCurrency => vec![
                e("payment-currency-valid", vec![("id", Value::Int(ids.other))]),
                e("payment-matches-order", vec![("order_id", order())]),
            ],
            IncidentKind::NegativeAmount => vec![e("refund-amount-positive", vec![("id", Value::Int(ids.other))])],
            IncidentKind::CommissionMiscalculation => {
                vec![e("settlement-commission-computed", vec![("id", Value::Int(ids.other))])]
            }
            IncidentKind::IllegalStatusChange => vec![
                e("order-status-no-regression", vec![("id", order())]),
                e("order-state-machine", vec![("id", order())]),
            ],
            IncidentKind::OverRefund => vec![e("refunds-within-payment", vec![("order_id", order())])],
            IncidentKind::OrphanPayment => vec![e("payment-matches-order", vec![("order_id", order())])],
            IncidentKind::MissingPayment => vec![e("payment-matches-order", vec![("order_id", order())])],
            IncidentKind::StuckOrder => vec![
                e("order-stuck-in-paying", vec![("id", order())]),
                e("payment-matches-order", vec![("order_id", order())]),
            ],
            IncidentKind::LedgerImbalance => {
                vec![e("ledger-balanced", vec![("txn_id", Value::String(format!("T{}", ids.order)))])]
            }
            IncidentKind::FailureRateSpike => {
                vec![e("payment-failure-rate", vec![("channel", Value::String("card".into()))])]
            }
            IncidentKind::BadDeploy => vec![e("payment-matches-order", vec![("order_id", order())])],
            IncidentKind::MerchantOutage => vec![
                e("order-stuck-in-paying", vec![("id", order())]),
                e("payment-matches-order", vec![("order_id", order())]),
            ],
        }
    }
}

/// What an [`Outage`] breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Slice {
    /// Payments of this channel carry one fen more than their order (a bad deploy).
    Channel(String),
    /// Orders of this merchant stay in PAYING after their payment succeeded.
    Merchant(i64),
}

/// One slice of the traffic broken for a while — from a deploy of `service`, if it has
/// one, until it is rolled back: many incidents with one cause, for attribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outage {
    pub slice: Slice,
    /// When it starts and ends, as fractions of the simulated hours.
    pub from: f64,
    pub until: f64,
    /// The service whose deploy (at `from`) and rollback (at `until`) bracket it; `None`
    /// for a failure outside the shop (a partner's).
    pub service: Option<String>,
}

/// A change to a system of the shop, as `changes.jsonl` lists them for `fundguard changes add`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimChange {
    pub service: String,
    pub kind: String,
    pub version: String,
    pub at: EventTime,
    pub description: String,
}

/// The ids an incident touches: its order (or the order id it claims) and the other row.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ids {
    pub order: i64,
    /// The payment, refund or settlement id, where the incident is on one of those.
    pub other: i64,
}

/// A finding an incident must cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expected {
    pub rule: String,
    /// Every column given here must be in the finding's key with this value.
    pub key: BTreeMap<String, Value>,
}

/// One injected incident: what, where and when, and the findings it must cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub kind: IncidentKind,
    pub table: String,
    pub at: EventTime,
    pub expected: Vec<Expected>,
}
