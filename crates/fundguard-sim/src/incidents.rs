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

    /// The example rules (examples/rules) that must report this incident, by id.
    /// Empty for kinds that need stateful rules not yet in the examples.
    pub fn detected_by(self) -> &'static [&'static str] {
        match self {
            IncidentKind::WrongAmount => &["order-amounts-add-up"],
            IncidentKind::UnitX100 => &["payment-minor-units-consistent"],
            IncidentKind::BadCurrency => &["payment-currency-valid"],
            IncidentKind::NegativeAmount => &["refund-amount-positive"],
            IncidentKind::CommissionMiscalculation => &["settlement-commission-computed"],
            IncidentKind::IllegalStatusChange => &["order-status-no-regression"],
            _ => &[],
        }
    }
}

/// One injected incident: what, where (table and key) and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub kind: IncidentKind,
    pub table: String,
    pub key: BTreeMap<String, Value>,
    pub at: EventTime,
    /// Example rules expected to report it.
    pub detected_by: Vec<String>,
}
