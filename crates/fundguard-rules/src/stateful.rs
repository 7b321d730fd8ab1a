//! Validation of the stateful rule kinds: reconcile, transition, timeout, rate.

use fundguard_core::Decimal;
use serde_saphyr::Spanned;

use crate::file::{BaselineBody, RateBody, ReconcileBody, SideBody, TimeoutBody, TransitionBody};
use crate::load::Validator;
use crate::{
    AggFunc, Aggregate, Baseline, Cardinality, Evaluate, Expr, History, KeyType, LateCounterpart, Location, RateRule,
    ReconcileRule, Side, SideSpec, TimeoutRule, TransitionRule,
};

impl Validator {
    fn table(&mut self, t: &Spanned<String>) -> String {
        if !t.value.contains('.') {
            self.error(self.at(t), format!("table `{}`: expected `db.table`", t.value));
        }
        t.value.clone()
    }

    fn required_duration(&mut self, d: &Spanned<String>) -> Option<std::time::Duration> {
        self.duration(Some(d))
    }

    fn decimal(&mut self, d: &Spanned<String>) -> Option<Decimal> {
        match d.value.trim().parse::<Decimal>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(self.at(d), format!("`{}`: expected an exact decimal number such as 0.05", d.value));
                None
            }
        }
    }

    fn default_key(&self, key: &Option<Spanned<String>>, at: Location) -> Expr {
        match key {
            Some(k) => self.expr(k),
            None => Expr { sql: "coalesce(after.id, before.id)".into(), at },
        }
    }

    fn side(&mut self, s: &Spanned<SideBody>) -> SideSpec {
        SideSpec {
            table: self.table(&s.value.table),
            key: self.expr(&s.value.key),
            when: s.value.when.as_ref().map(|w| self.expr(w)),
            required: s.value.required,
        }
    }

    pub(crate) fn reconcile(&mut self, body: ReconcileBody, at: Location) -> Option<ReconcileRule> {
        let left = self.side(&body.left);
        let right = self.side(&body.right);
        let within = self.required_duration(&body.within);
        let key_type =
            self.one_of("key_type", body.key_type.as_ref(), &[("text", KeyType::Text), ("integer", KeyType::Integer)]);
        let cardinality = self.one_of(
            "cardinality",
            body.cardinality.as_ref(),
            &[
                ("one_to_one", Cardinality::OneToOne),
                ("one_to_many", Cardinality::OneToMany),
                ("many_to_many", Cardinality::ManyToMany),
            ],
        );
        let evaluate = match &body.evaluate {
            None if cardinality == Cardinality::ManyToMany => Evaluate::AtDeadline,
            e => self.one_of(
                "evaluate",
                e.as_ref(),
                &[("on_match", Evaluate::OnMatch), ("at_deadline", Evaluate::AtDeadline)],
            ),
        };
        let late_counterpart = self.one_of(
            "late_counterpart",
            body.late_counterpart.as_ref(),
            &[("pair", LateCounterpart::Pair), ("missing", LateCounterpart::Missing)],
        );
        let mut others = Vec::new();
        for (name, side) in &body.sides {
            let reserved = ["left", "right", "agg", "lookup"].contains(&name.as_str());
            if reserved
                || name.is_empty()
                || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                self.error(
                    self.at(side),
                    format!("side name `{name}`: expected lowercase letters, digits and `_`, other than left, right, agg and lookup"),
                );
                continue;
            }
            others.push((name.clone(), self.side(side)));
        }
        let names: Vec<&str> = ["left", "right"].into_iter().chain(others.iter().map(|(n, _)| n.as_str())).collect();
        let mut aggregates = Vec::new();
        for (name, spec) in &body.aggregates {
            match parse_aggregate(&spec.value, &names) {
                Some((func, side, column)) => aggregates.push(Aggregate { name: name.clone(), func, side, column }),
                None => self.error(
                    self.at(spec),
                    format!(
                        "aggregate `{}`: expected sum|min|max(<side>.<column>) or count(<side>), a side being {}",
                        spec.value,
                        names.join(", ")
                    ),
                ),
            }
        }
        let over_pair = aggregates.iter().any(|a| matches!(a.side, Side::Left | Side::Right));
        if cardinality == Cardinality::OneToOne && over_pair {
            self.error(at.clone(), "aggregates over left or right need cardinality one_to_many or many_to_many");
        }
        let tolerance = body.tolerance.as_ref().map(|t| {
            let at = self.at(t);
            let l = &t.value.left.value;
            let r = &t.value.right.value;
            let abs = t.value.absolute.as_ref().and_then(|a| self.decimal(a));
            let rel = t.value.relative.as_ref().and_then(|a| self.decimal(a));
            let bound = match (abs, rel) {
                (Some(a), Some(r_)) => format!("greatest(CAST({a} AS DECIMAL(38, 10)), {r_} * abs({r}))"),
                (Some(a), None) => format!("CAST({a} AS DECIMAL(38, 10))"),
                (None, Some(r_)) => format!("{r_} * abs({r})"),
                (None, None) => "0".to_string(),
            };
            Expr { sql: format!("abs(({l}) - ({r})) <= {bound}"), at }
        });
        let expect = match (body.expect.as_ref().map(|e| self.expr(e)), tolerance) {
            (Some(e), Some(t)) => Some(Expr { sql: format!("({}) AND ({})", e.sql, t.sql), at: e.at }),
            (e, t) => e.or(t),
        };
        Some(ReconcileRule {
            left,
            right,
            within: within?,
            key_type,
            cardinality,
            aggregates,
            expect,
            evaluate,
            duplicates: body.duplicates,
            late_counterpart,
            message: body.message.as_ref().map(|m| self.expr(m)),
            money: self.money(body.money.as_ref()),
            others,
        })
    }

    pub(crate) fn transition(&mut self, body: TransitionBody) -> Option<TransitionRule> {
        let table_at = self.at(&body.table);
        let mut forbidden = Vec::new();
        for f in &body.forbidden {
            match f.value.split_once("->") {
                Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                    forbidden.push((a.trim().to_string(), b.trim().to_string()))
                }
                _ => self.error(self.at(f), format!("forbidden `{}`: expected `FROM -> TO`", f.value)),
            }
        }
        if body.allowed.is_none() && forbidden.is_empty() && body.frozen.is_empty() && body.initial.is_none() {
            self.error(
                table_at.clone(),
                "the transition rule checks nothing: expected allowed, forbidden, frozen or initial",
            );
        }
        Some(TransitionRule {
            table: self.table(&body.table),
            key: self.default_key(&body.key, table_at),
            status: self.expr(&body.status),
            when: body.when.as_ref().map(|w| self.expr(w)),
            initial: body.initial,
            allowed: body.allowed,
            forbidden,
            frozen: body.frozen.into_iter().map(|f| (f.once, f.fields)).collect(),
            money: self.money(body.money.as_ref()),
        })
    }

    pub(crate) fn timeout(&mut self, body: TimeoutBody) -> Option<TimeoutRule> {
        let table_at = self.at(&body.table);
        let within = self.required_duration(&body.within);
        Some(TimeoutRule {
            table: self.table(&body.table),
            key: self.default_key(&body.key, table_at),
            enter: self.expr(&body.enter),
            exit: self.expr(&body.exit),
            within: within?,
            money: self.money(body.money.as_ref()),
        })
    }

    pub(crate) fn rate(&mut self, body: RateBody) -> Option<RateRule> {
        let window = self.required_duration(&body.window);
        let max_ratio = body.max_ratio.as_ref().and_then(|r| self.decimal(r));
        let baseline = match &body.baseline {
            Some(b) => self.baseline(b, &body.group, window),
            None => None,
        };
        let slide = body.slide.as_ref().and_then(|s| self.duration(Some(s)));
        if let (Some(slide), Some(window), Some(at)) = (slide, window, body.slide.as_ref())
            && (slide.is_zero() || slide > window || !window.as_micros().is_multiple_of(slide.as_micros().max(1)))
        {
            self.error(self.at(at), "slide must be positive and divide the window evenly (window 10m, slide 1m)");
        }
        if max_ratio.is_some() && body.numerator.is_none() {
            self.error(self.at(&body.group), "max_ratio needs a `numerator` (the rows counted on top of the ratio)");
        }
        if max_ratio.is_none() && body.max_count.is_none() && baseline.is_none() {
            self.error(
                self.at(&body.group),
                "the rate rule has no threshold: expected max_ratio, max_count or baseline",
            );
        }
        Some(RateRule {
            table: self.table(&body.table),
            when: body.when.as_ref().map(|w| self.expr(w)),
            group: self.expr(&body.group),
            numerator: body.numerator.as_ref().map(|n| self.expr(n)),
            window: window?,
            slide: slide.filter(|s| Some(*s) != window),
            min_volume: body.min_volume,
            max_ratio,
            max_count: body.max_count,
            baseline,
        })
    }
}

impl Validator {
    fn baseline(
        &mut self,
        b: &BaselineBody,
        group: &Spanned<String>,
        window: Option<std::time::Duration>,
    ) -> Option<Baseline> {
        let history = match (&b.windows, &b.days) {
            (Some(w), None) => History::Windows(w.value),
            (None, Some(d)) => {
                const DAY: u128 = 86_400_000_000;
                if window.is_some_and(|w| w.as_micros() == 0 || !DAY.is_multiple_of(w.as_micros())) {
                    self.error(self.at(d), "baseline days needs a window that divides a day evenly (1m, 10m, 1h, ...)");
                }
                History::Days(d.value)
            }
            _ => {
                self.error(self.at(group), "baseline: expected either `windows` (the previous N windows) or `days` (the same window of the previous N days)");
                return None;
            }
        };
        if history.kept() == 0 {
            self.error(self.at(group), "baseline windows/days must be at least 1");
        }
        let factor = match &b.factor {
            Some(f) => Some(self.decimal(f)?),
            None => None,
        };
        let z_score = match &b.z_score {
            Some(z) => Some(self.decimal(z)?),
            None => None,
        };
        if factor.is_none() && z_score.is_none() {
            self.error(
                self.at(group),
                "baseline: expected `factor` (times the mean) and/or `z_score` (standard deviations above the mean)",
            );
        }
        let min_history = b.min_history.unwrap_or(1).max(1);
        if min_history > history.kept() {
            self.error(
                self.at(group),
                format!("baseline min_history {min_history} is more than the {} windows kept", history.kept()),
            );
        }
        Some(Baseline { history, factor, z_score, min_history })
    }
}

/// Reads `sum(right.amount)`, `count(left)`, `sum(refunds.amount)` (`sides` are the names:
/// left, right, then the further sides in order).
fn parse_aggregate(text: &str, sides: &[&str]) -> Option<(AggFunc, Side, Option<String>)> {
    let (func, rest) = text.trim().split_once('(')?;
    let inner = rest.strip_suffix(')')?.trim();
    let func = match func.trim().to_ascii_lowercase().as_str() {
        "sum" => AggFunc::Sum,
        "count" => AggFunc::Count,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        _ => return None,
    };
    let (side, column) = match inner.split_once('.') {
        Some((s, c)) => (s, Some(c.trim().to_string())),
        None => (inner, None),
    };
    let side = match sides.iter().position(|s| *s == side.trim())? {
        0 => Side::Left,
        1 => Side::Right,
        i => Side::Other(i - 2),
    };
    if column.is_none() && func != AggFunc::Count {
        return None;
    }
    Some((func, side, column))
}
