//! The shop: order lifecycles driven by a time-ordered queue of steps.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use fundguard_core::{ChangeEvent, ColumnType, Decimal, EventTime, Op, Position, Row, TableSchemas, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::RoundingStrategy;

use crate::{Ids, Incident, IncidentKind, Outage, SimChange, Slice};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub start: EventTime,
    /// Simulated time over which orders arrive.
    pub hours: u32,
    pub orders: u64,
    /// Fraction of orders that carry an injected incident (0 gives clean output).
    pub incident_rate: f64,
    /// The incident kinds to inject, taken in turn.
    pub kinds: Vec<IncidentKind>,
    /// Slices of traffic broken for a while, each one cause of many alerts.
    pub outages: Vec<Outage>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            start: EventTime::from_secs(1_714_521_600), // 2024-05-01T00:00:00Z
            hours: 4,
            orders: 2_000,
            incident_rate: 0.0,
            kinds: IncidentKind::ALL.to_vec(),
            outages: Vec::new(),
        }
    }
}

const SECOND: i64 = 1_000_000;
const CURRENCIES: [&str; 3] = ["CNY", "CNY", "USD"];
const CHANNELS: [&str; 3] = ["alipay", "wechat", "card"];

/// The simulator's tables and column types (also written as a schema file).
pub fn schema() -> TableSchemas {
    use ColumnType::*;
    let t = |cols: &[(&str, ColumnType)]| cols.iter().map(|(n, t)| (n.to_string(), *t)).collect::<BTreeMap<_, _>>();
    let mut tables = BTreeMap::new();
    tables.insert(
        "shop.orders".into(),
        t(&[
            ("id", Int),
            ("user_id", Int),
            ("merchant_id", Int),
            ("status", String),
            ("total_amount", Int),
            ("discount_amount", Int),
            ("pay_amount", Int),
            ("currency", String),
            ("created_at", Timestamp),
            ("updated_at", Timestamp),
        ]),
    );
    tables.insert(
        "shop.payments".into(),
        t(&[
            ("id", Int),
            ("order_id", Int),
            ("channel", String),
            ("status", String),
            ("amount", Int),
            ("amount_yuan", Decimal),
            ("currency", String),
            ("created_at", Timestamp),
            ("updated_at", Timestamp),
        ]),
    );
    tables.insert(
        "shop.refunds".into(),
        t(&[
            ("id", Int),
            ("order_id", Int),
            ("payment_id", Int),
            ("status", String),
            ("amount", Int),
            ("currency", String),
            ("created_at", Timestamp),
            ("updated_at", Timestamp),
        ]),
    );
    tables.insert(
        "shop.settlements".into(),
        t(&[
            ("id", Int),
            ("order_id", Int),
            ("merchant_id", Int),
            ("gross_amount", Int),
            ("commission_rate", Decimal),
            ("commission_amount", Int),
            ("net_amount", Int),
            ("currency", String),
            ("created_at", Timestamp),
        ]),
    );
    tables.insert(
        "shop.ledger_entries".into(),
        t(&[
            ("id", Int),
            ("txn_id", String),
            ("account", String),
            ("direction", String),
            ("amount", Int),
            ("currency", String),
            ("created_at", Timestamp),
        ]),
    );
    TableSchemas { tables }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    CreateOrder,
    StartPaying,
    CompletePayment,
    MarkPaid,
    Settle,
    Refund,
    CompleteRefund,
    Ship,
    Complete,
    IllegalRegression,
    Repay,
}

struct Order {
    row: Row,
    payment: Option<Row>,
    refunds: Vec<Row>,
    incident: Option<IncidentKind>,
    fails: bool,
}

/// Generates the shop's change events in commit-time order.
pub struct Simulator {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<(i64, u64, Step, u64)>>,
    orders: HashMap<u64, Order>,
    tables: HashMap<&'static str, Arc<str>>,
    names: HashMap<&'static str, Arc<str>>,
    next_id: HashMap<&'static str, u64>,
    seq: u64,
    next_kind: usize,
    incidents: Vec<Incident>,
    changes: Vec<SimChange>,
}

impl Simulator {
    pub fn new(cfg: SimConfig) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut sim = Simulator {
            cfg,
            rng,
            queue: BinaryHeap::new(),
            orders: HashMap::new(),
            tables: HashMap::new(),
            names: HashMap::new(),
            next_id: HashMap::new(),
            seq: 0,
            next_kind: 0,
            incidents: Vec::new(),
            changes: Vec::new(),
        };
        sim.changes = sim.outage_changes();
        let span = i64::from(sim.cfg.hours.max(1)) * 3600 * SECOND;
        let start = sim.cfg.start.as_micros();
        let n = sim.cfg.orders.max(1);
        for i in 0..n {
            // Evenly spread arrivals with jitter: a steady shop with concurrent orders.
            let base = start + (span / n as i64) * i as i64;
            let jitter = sim.rng.random_range(0..(span / n as i64).max(1));
            sim.schedule(base + jitter - start + start, Step::CreateOrder, 0);
        }
        sim
    }

    /// The incidents injected so far (complete once [`Simulator::run`] returns).
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// The changes to the shop's systems: each outage's deploy and rollback, and — two
    /// hours before each deploy — an unrelated deploy of another service, oldest first.
    pub fn changes(&self) -> &[SimChange] {
        &self.changes
    }

    fn outage_changes(&self) -> Vec<SimChange> {
        let mut changes = Vec::new();
        for (i, outage) in self.cfg.outages.iter().enumerate() {
            let Some(service) = &outage.service else { continue };
            let (from, until) = (self.outage_time(outage.from), self.outage_time(outage.until));
            let change = |service: &str, kind: &str, version: String, at: i64, description: &str| SimChange {
                service: service.to_string(),
                kind: kind.to_string(),
                version,
                at: EventTime::from_micros(at),
                description: description.to_string(),
            };
            changes.push(change(
                "search-frontend",
                "deploy",
                format!("s{i}.0"),
                from - 2 * 3600 * SECOND,
                "new ranking",
            ));
            changes.push(change(service, "deploy", format!("v{i}.1"), from, "payment amount rounding"));
            changes.push(change(service, "deploy", format!("v{i}.0"), until, "rollback"));
        }
        changes.sort_by_key(|c| c.at);
        changes
    }

    /// The time a fraction of the simulated hours stands for.
    fn outage_time(&self, fraction: f64) -> i64 {
        let span = i64::from(self.cfg.hours.max(1)) * 3600 * SECOND;
        self.cfg.start.as_micros() + (span as f64 * fraction.clamp(0.0, 1.0)) as i64
    }

    /// Whether `slice` is broken at `t`.
    fn broken(&self, t: i64, slice: impl Fn(&Slice) -> bool) -> bool {
        self.cfg
            .outages
            .iter()
            .any(|o| slice(&o.slice) && t >= self.outage_time(o.from) && t < self.outage_time(o.until))
    }

    /// Runs the simulation, handing each event to `emit` in commit-time order, as a
    /// change log has them. A step may write events a little ahead of its own time
    /// (a payment 100 ms after its order, a burst over two minutes); they wait in a
    /// heap until no later step can commit anything before them.
    pub fn run(&mut self, mut emit: impl FnMut(ChangeEvent)) {
        let mut out = Vec::new();
        let mut ahead: BinaryHeap<Reverse<(i64, u64)>> = BinaryHeap::new();
        let mut held: HashMap<u64, ChangeEvent> = HashMap::new();
        let mut n = 0u64;
        while let Some(Reverse((t, _, step, order))) = self.queue.pop() {
            self.step(t, step, order, &mut out);
            for e in out.drain(..) {
                n += 1;
                ahead.push(Reverse((e.commit_time.as_micros(), n)));
                held.insert(n, e);
            }
            let horizon = self.queue.peek().map_or(i64::MAX, |Reverse((next, ..))| *next);
            while let Some(Reverse((time, id))) = ahead.peek().copied() {
                if time > horizon {
                    break;
                }
                ahead.pop();
                if let Some(e) = held.remove(&id) {
                    emit(e);
                }
            }
        }
        while let Some(Reverse((_, id))) = ahead.pop() {
            if let Some(e) = held.remove(&id) {
                emit(e);
            }
        }
    }

    fn schedule(&mut self, t: i64, step: Step, order: u64) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, step, order)));
    }

    fn id(&mut self, table: &'static str) -> u64 {
        let next = self.next_id.entry(table).or_insert(0);
        *next += 1;
        *next
    }

    fn name(&mut self, n: &'static str) -> Arc<str> {
        self.names.entry(n).or_insert_with(|| Arc::from(n)).clone()
    }

    fn row(&mut self, columns: &[(&'static str, Value)]) -> Row {
        let mut row = Row::with_capacity(columns.len());
        for (n, v) in columns {
            let name = self.name(n);
            row.push(name, v.clone());
        }
        row
    }

    fn event(&mut self, table: &'static str, op: Op, before: Option<Row>, after: Option<Row>, t: i64) -> ChangeEvent {
        let table = self.tables.entry(table).or_insert_with(|| Arc::from(format!("shop.{table}"))).clone();
        self.seq += 1;
        ChangeEvent {
            table,
            op,
            before,
            after,
            commit_time: EventTime::from_micros(t),
            position: Position::Synthetic { seq: self.seq },
        }
    }

    fn update(&mut self, table: &'static str, row: &mut Row, changes: &[(&'static str, Value)], t: i64) -> ChangeEvent {
        let before = row.clone();
        for (n, v) in changes {
            let name = self.name(n);
            row.set(name, v.clone());
        }
        let updated = self.name("updated_at");
        if row.get("updated_at").is_some() {
            row.set(updated, Value::Timestamp(EventTime::from_micros(t)));
        }
        self.event(table, Op::Update, Some(before), Some(row.clone()), t)
    }

    fn record(&mut self, kind: IncidentKind, table: &str, ids: Ids, t: i64) {
        self.incidents.push(Incident {
            kind,
            table: format!("shop.{table}"),
            at: EventTime::from_micros(t),
            expected: kind.expected(&ids),
        });
    }

    fn pick_incident(&mut self) -> Option<IncidentKind> {
        if self.cfg.kinds.is_empty()
            || self.cfg.incident_rate <= 0.0
            || !self.rng.random_bool(self.cfg.incident_rate.min(1.0))
        {
            return None;
        }
        let kind = self.cfg.kinds[self.next_kind % self.cfg.kinds.len()];
        self.next_kind += 1;
        Some(kind)
    }

    fn delay(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.random_range(lo..=hi)
    }

    fn step(&mut self, t: i64, step: Step, id: u64, out: &mut Vec<ChangeEvent>) {
        match step {
            Step::CreateOrder => self.create_order(t, out),
            Step::StartPaying => self.start_paying(t, id, out),
            Step::CompletePayment => self.complete_payment(t, id, out),
            Step::MarkPaid => self.mark_paid(t, id, out),
            Step::Settle => self.settle(t, id, out),
            Step::Refund => self.refund(t, id, out),
            Step::CompleteRefund => self.complete_refund(t, id, out),
            Step::Ship | Step::Complete => {
                let status = if step == Step::Ship { "SHIPPED" } else { "COMPLETED" };
                if let Some(mut o) = self.orders.remove(&id) {
                    out.push(self.update("orders", &mut o.row, &[("status", status.into())], t));
                    if step == Step::Ship {
                        let d = self.delay(3600 * SECOND, 6 * 3600 * SECOND);
                        self.orders.insert(id, o);
                        self.schedule(t + d, Step::Complete, id);
                    }
                }
            }
            Step::IllegalRegression => {
                if let Some(mut o) = self.orders.remove(&id) {
                    out.push(self.update("orders", &mut o.row, &[("status", "PAYING".into())], t));
                    self.record(IncidentKind::IllegalStatusChange, "orders", Ids { order: id as i64, other: 0 }, t);
                    self.orders.insert(id, o);
                    self.schedule(t + 2 * SECOND, Step::Repay, id);
                }
            }
            Step::Repay => {
                if let Some(mut o) = self.orders.remove(&id) {
                    out.push(self.update("orders", &mut o.row, &[("status", "PAID".into())], t));
                    self.orders.insert(id, o);
                    let d = self.delay(600 * SECOND, 3600 * SECOND);
                    self.schedule(t + d, Step::Ship, id);
                }
            }
        }
    }

    fn create_order(&mut self, t: i64, out: &mut Vec<ChangeEvent>) {
        let id = self.id("orders");
        let incident = self.pick_incident();
        let total: i64 = self.rng.random_range(100..=500_000);
        let discount: i64 = if self.rng.random_bool(0.3) { self.rng.random_range(0..=total / 10) } else { 0 };
        let mut pay = total - discount;
        if incident == Some(IncidentKind::WrongAmount) {
            pay += 100;
            self.record(IncidentKind::WrongAmount, "orders", Ids { order: id as i64, other: 0 }, t);
        }
        let currency = CURRENCIES[self.rng.random_range(0..CURRENCIES.len())];
        let user = self.rng.random_range(1..=50_000i64);
        let merchant = self.rng.random_range(1..=200i64);
        let now = Value::Timestamp(EventTime::from_micros(t));
        let row = self.row(&[
            ("id", Value::Int(id as i64)),
            ("user_id", user.into()),
            ("merchant_id", merchant.into()),
            ("status", "CREATED".into()),
            ("total_amount", total.into()),
            ("discount_amount", discount.into()),
            ("pay_amount", pay.into()),
            ("currency", currency.into()),
            ("created_at", now.clone()),
            ("updated_at", now),
        ]);
        out.push(self.event("orders", Op::Insert, None, Some(row.clone()), t));
        if incident == Some(IncidentKind::FailureRateSpike) {
            self.spike(t, out);
        }
        if incident == Some(IncidentKind::OrphanPayment) {
            self.orphan_payment(t, out);
        }
        // Orders carrying an incident take the success path, so the incident surfaces.
        let fails = self.rng.random_bool(0.04) && incident.is_none();
        self.orders.insert(id, Order { row, payment: None, refunds: Vec::new(), incident, fails });
        let d = self.delay(SECOND, 30 * SECOND);
        self.schedule(t + d, Step::StartPaying, id);
    }

    fn payment_row(&mut self, order_id: i64, amount: i64, currency: &str, channel: &str, t: i64) -> Row {
        let id = self.id("payments") as i64;
        let now = Value::Timestamp(EventTime::from_micros(t));
        self.row(&[
            ("id", id.into()),
            ("order_id", order_id.into()),
            ("channel", channel.into()),
            ("status", "INIT".into()),
            ("amount", amount.into()),
            ("amount_yuan", Value::Decimal(Decimal::new(amount, 2))),
            ("currency", currency.into()),
            ("created_at", now.clone()),
            ("updated_at", now),
        ])
    }

    fn start_paying(&mut self, t: i64, id: u64, out: &mut Vec<ChangeEvent>) {
        let Some(mut o) = self.orders.remove(&id) else {
            return;
        };
        out.push(self.update("orders", &mut o.row, &[("status", "PAYING".into())], t));
        if o.incident == Some(IncidentKind::MissingPayment) {
            self.record(IncidentKind::MissingPayment, "orders", Ids { order: id as i64, other: 0 }, t);
            self.orders.insert(id, o);
            let d = self.delay(SECOND, 10 * SECOND);
            self.schedule(t + d, Step::MarkPaid, id);
            return;
        }
        let amount = int(o.row.get("pay_amount"));
        let currency = o.row.get("currency").map(|v| v.to_string()).unwrap_or_default();
        let channel = CHANNELS[self.rng.random_range(0..CHANNELS.len())];
        // (A payment that is going to fail is never captured: its amount harms no one.)
        let bad_deploy =
            o.incident.is_none() && !o.fails && self.broken(t, |s| *s == Slice::Channel(channel.to_string()));
        // A bad deploy of the payment service: one fen more, in both amount columns alike.
        let charged = if bad_deploy { amount + 1 } else { amount };
        let mut payment = self.payment_row(id as i64, charged, &currency, channel, t + 100_000);
        let pid = int(payment.get("id"));
        if bad_deploy {
            self.record(IncidentKind::BadDeploy, "payments", Ids { order: id as i64, other: pid }, t + 100_000);
        }
        match o.incident {
            Some(IncidentKind::UnitX100) => {
                let name = self.name("amount_yuan");
                payment.set(name, Value::Decimal(Decimal::new(amount * 100, 2)));
                self.record(IncidentKind::UnitX100, "payments", Ids { order: id as i64, other: pid }, t + 100_000);
            }
            Some(IncidentKind::BadCurrency) => {
                let name = self.name("currency");
                payment.set(name, "RMB".into());
                self.record(IncidentKind::BadCurrency, "payments", Ids { order: id as i64, other: pid }, t + 100_000);
            }
            _ => {}
        }
        out.push(self.event("payments", Op::Insert, None, Some(payment.clone()), t + 100_000));
        o.payment = Some(payment);
        self.orders.insert(id, o);
        let d = self.delay(SECOND, 20 * SECOND);
        self.schedule(t + d, Step::CompletePayment, id);
    }

    fn complete_payment(&mut self, t: i64, id: u64, out: &mut Vec<ChangeEvent>) {
        let Some(mut o) = self.orders.remove(&id) else {
            return;
        };
        let Some(mut payment) = o.payment.take() else {
            return;
        };
        let status = if o.fails { "FAILED" } else { "SUCCESS" };
        out.push(self.update("payments", &mut payment, &[("status", status.into())], t));
        o.payment = Some(payment);
        if o.fails {
            out.push(self.update("orders", &mut o.row, &[("status", "CANCELLED".into())], t + 50_000));
            return;
        }
        if o.incident == Some(IncidentKind::StuckOrder) {
            self.record(IncidentKind::StuckOrder, "orders", Ids { order: id as i64, other: 0 }, t);
            return;
        }
        let merchant = int(o.row.get("merchant_id"));
        if o.incident.is_none() && self.broken(t, |s| *s == Slice::Merchant(merchant)) {
            self.record(IncidentKind::MerchantOutage, "orders", Ids { order: id as i64, other: 0 }, t);
            return;
        }
        self.orders.insert(id, o);
        self.schedule(t + 50_000, Step::MarkPaid, id);
    }

    fn mark_paid(&mut self, t: i64, id: u64, out: &mut Vec<ChangeEvent>) {
        let Some(mut o) = self.orders.remove(&id) else {
            return;
        };
        out.push(self.update("orders", &mut o.row, &[("status", "PAID".into())], t));
        // Double entry: the customer's wallet is debited, the platform's escrow credited.
        let pay = int(o.row.get("pay_amount"));
        let user = int(o.row.get("user_id"));
        let currency = o.row.get("currency").cloned().unwrap_or_default();
        let txn = format!("T{id}");
        let credit = if o.incident == Some(IncidentKind::LedgerImbalance) {
            self.record(IncidentKind::LedgerImbalance, "ledger_entries", Ids { order: id as i64, other: 0 }, t);
            pay - 1
        } else {
            pay
        };
        let now = Value::Timestamp(EventTime::from_micros(t));
        for (account, direction, amount) in
            [(format!("user:{user}:wallet"), "DEBIT", pay), ("platform:escrow".to_string(), "CREDIT", credit)]
        {
            let lid = self.id("ledger_entries") as i64;
            let row = self.row(&[
                ("id", lid.into()),
                ("txn_id", txn.clone().into()),
                ("account", account.into()),
                ("direction", direction.into()),
                ("amount", amount.into()),
                ("currency", currency.clone()),
                ("created_at", now.clone()),
            ]);
            out.push(self.event("ledger_entries", Op::Insert, None, Some(row), t));
        }
        let incident = o.incident;
        self.orders.insert(id, o);
        let d = self.delay(300 * SECOND, 900 * SECOND);
        self.schedule(t + d, Step::Settle, id);
        match incident {
            Some(IncidentKind::IllegalStatusChange) => self.schedule(t + 5 * SECOND, Step::IllegalRegression, id),
            Some(IncidentKind::NegativeAmount | IncidentKind::OverRefund) => {
                self.schedule(t + d + 60 * SECOND, Step::Refund, id)
            }
            _ if self.rng.random_bool(0.08) && incident.is_none() => {
                self.schedule(t + d + 60 * SECOND, Step::Refund, id)
            }
            _ => {
                let d2 = self.delay(600 * SECOND, 3600 * SECOND);
                self.schedule(t + d + d2, Step::Ship, id);
            }
        }
    }

    fn settle(&mut self, t: i64, id: u64, out: &mut Vec<ChangeEvent>) {
        let Some(o) = self.orders.remove(&id) else {
            return;
        };
        let gross = int(o.row.get("pay_amount"));
        let merchant = int(o.row.get("merchant_id"));
        // Each merchant has its own rate between 0.60% and 5.00%, four decimal places.
        let rate = Decimal::new(60 + (merchant * 37) % 441, 4);
        let mut commission = i64::try_from(
            (Decimal::from(gross) * rate).round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero).mantissa(),
        )
        .unwrap_or(0);
        let sid = self.id("settlements") as i64;
        if o.incident == Some(IncidentKind::CommissionMiscalculation) {
            commission += 7;
            self.record(IncidentKind::CommissionMiscalculation, "settlements", Ids { order: id as i64, other: sid }, t);
        }
        let row = self.row(&[
            ("id", sid.into()),
            ("order_id", Value::Int(id as i64)),
            ("merchant_id", merchant.into()),
            ("gross_amount", gross.into()),
            ("commission_rate", Value::Decimal(rate)),
            ("commission_amount", commission.into()),
            ("net_amount", (gross - commission).into()),
            ("currency", o.row.get("currency").cloned().unwrap_or_default()),
            ("created_at", Value::Timestamp(EventTime::from_micros(t))),
        ]);
        out.push(self.event("settlements", Op::Insert, None, Some(row), t));
        self.orders.insert(id, o);
    }

    fn refund(&mut self, t: i64, id: u64, out: &mut Vec<ChangeEvent>) {
        let Some(mut o) = self.orders.remove(&id) else {
            return;
        };
        let pay = int(o.row.get("pay_amount"));
        let payment_id = o.payment.as_ref().map_or(0, |p| int(p.get("id")));
        let currency = o.row.get("currency").cloned().unwrap_or_default();
        let amounts: Vec<i64> = match o.incident {
            Some(IncidentKind::NegativeAmount) => vec![-pay.max(1)],
            Some(IncidentKind::OverRefund) => vec![pay * 6 / 10 + 1, pay * 6 / 10 + 1],
            _ if self.rng.random_bool(0.5) => vec![pay],
            _ => vec![(pay / 2).max(1)],
        };
        if o.incident == Some(IncidentKind::OverRefund) {
            self.record(IncidentKind::OverRefund, "refunds", Ids { order: id as i64, other: 0 }, t);
        }
        for (i, amount) in amounts.into_iter().enumerate() {
            let rid = self.id("refunds") as i64;
            let at = t + i as i64 * 30 * SECOND;
            let now = Value::Timestamp(EventTime::from_micros(at));
            if o.incident == Some(IncidentKind::NegativeAmount) {
                self.record(IncidentKind::NegativeAmount, "refunds", Ids { order: id as i64, other: rid }, at);
            }
            let row = self.row(&[
                ("id", rid.into()),
                ("order_id", Value::Int(id as i64)),
                ("payment_id", payment_id.into()),
                ("status", "PENDING".into()),
                ("amount", amount.into()),
                ("currency", currency.clone()),
                ("created_at", now.clone()),
                ("updated_at", now),
            ]);
            out.push(self.event("refunds", Op::Insert, None, Some(row.clone()), at));
            o.refunds.push(row);
        }
        self.orders.insert(id, o);
        let d = self.delay(90 * SECOND, 600 * SECOND);
        self.schedule(t + d, Step::CompleteRefund, id);
    }

    fn complete_refund(&mut self, t: i64, id: u64, out: &mut Vec<ChangeEvent>) {
        let Some(mut o) = self.orders.remove(&id) else {
            return;
        };
        let pay = int(o.row.get("pay_amount"));
        let mut refunded = 0;
        let mut refunds = std::mem::take(&mut o.refunds);
        for r in &mut refunds {
            refunded += int(r.get("amount"));
            out.push(self.update("refunds", r, &[("status", "SUCCESS".into())], t));
        }
        if refunded >= pay {
            out.push(self.update("orders", &mut o.row, &[("status", "REFUNDED".into())], t + 50_000));
        }
    }

    fn spike(&mut self, t: i64, out: &mut Vec<ChangeEvent>) {
        self.record(IncidentKind::FailureRateSpike, "payments", Ids::default(), t);
        for i in 0..30 {
            let at = t + i * 4 * SECOND;
            let mut p = self.payment_row(0, 1000, "CNY", "card", at);
            // Failed attempts of anonymous checkouts: no order row is ever written for them.
            let oid = self.name("order_id");
            p.set(oid, Value::Null);
            out.push(self.event("payments", Op::Insert, None, Some(p.clone()), at));
            out.push(self.update("payments", &mut p, &[("status", "FAILED".into())], at + SECOND));
        }
    }

    fn orphan_payment(&mut self, t: i64, out: &mut Vec<ChangeEvent>) {
        let ghost = 900_000_000 + self.seq as i64;
        let mut p = self.payment_row(ghost, 5000, "CNY", "alipay", t + SECOND);
        let pid = int(p.get("id"));
        self.record(IncidentKind::OrphanPayment, "payments", Ids { order: ghost, other: pid }, t + SECOND);
        out.push(self.event("payments", Op::Insert, None, Some(p.clone()), t + SECOND));
        out.push(self.update("payments", &mut p, &[("status", "SUCCESS".into())], t + 3 * SECOND));
    }
}

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Int(i)) => *i,
        _ => 0,
    }
}
