//! One query over three systems: orders in PostgreSQL, payments and refunds in MariaDB,
//! the settlement report in Parquet partitioned by day — the example D+1 rule must find
//! exactly the mismatches the test injects, with exact amounts.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use fundguard_core::Value;
use fundguard_warehouse::{RunStatus, run};

use crate::support::{MariaDb, PgDb, example, warehouse, write_parquet};

const MERCHANTS: i64 = 12;
const ORDERS: i64 = 300;

fn merchant_of(order: i64) -> i64 {
    1 + (order * 7) % MERCHANTS
}

fn amount_of(order: i64) -> i64 {
    1000 + (order * 37) % 5000
}

/// The business day checked, and the day before it (whose rows must not count).
const DAY: &str = "2026-11-25";
const DAY_BEFORE: &str = "2026-11-24";

struct Shop {
    orders: PgDb,
    pay: MariaDb,
    /// Per merchant: payments minus refunds on DAY.
    expected: BTreeMap<i64, i64>,
}

fn shop() -> Shop {
    let orders = PgDb::create("orders");
    let pay = MariaDb::create("pay");
    let mut order_rows = Vec::new();
    let mut payment_rows = Vec::new();
    let mut refund_rows = Vec::new();
    let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
    for id in 1..=ORDERS {
        let (merchant, amount) = (merchant_of(id), amount_of(id));
        order_rows.push(format!("({id}, {merchant}, {amount})"));
        let status = if id % 17 == 0 { "FAILED" } else { "SUCCESS" };
        // Every fifth payment belongs to the day before: filtered out by time.
        let day = if id % 5 == 0 { DAY_BEFORE } else { DAY };
        let paid_at = format!("{day} {:02}:{:02}:00", id % 24, id % 60);
        payment_rows.push(format!("({id}, {id}, '{status}', {amount}, '{paid_at}')"));
        if status == "SUCCESS" && day == DAY {
            *expected.entry(merchant).or_default() += amount;
            if id % 9 == 0 {
                let refund = amount / 3;
                refund_rows.push(format!("({id}, {id}, {id}, 'SUCCESS', {refund}, '{DAY} 23:59:59')"));
                *expected.entry(merchant).or_default() -= refund;
            } else if id % 11 == 0 {
                // A failed refund moves no money.
                refund_rows.push(format!("({id}, {id}, {id}, 'FAILED', 1, '{DAY} 12:00:00')"));
            }
        }
    }
    orders.sql(&format!(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, merchant_id BIGINT NOT NULL, total NUMERIC(18,2) NOT NULL);
         INSERT INTO orders VALUES {};",
        order_rows.join(",")
    ));
    pay.sql(&format!(
        "CREATE TABLE payments (id BIGINT PRIMARY KEY, order_id BIGINT, status VARCHAR(16), amount BIGINT, paid_at DATETIME);
         CREATE TABLE refunds (id BIGINT PRIMARY KEY, order_id BIGINT, payment_id BIGINT, status VARCHAR(16), amount BIGINT, refunded_at DATETIME);
         INSERT INTO payments VALUES {};
         INSERT INTO refunds VALUES {};",
        payment_rows.join(","),
        refund_rows.join(",")
    ));
    Shop { orders, pay, expected }
}

fn config(shop: &Shop, settlements: &std::path::Path) -> String {
    format!(
        "- {{ name: shop, type: postgres, url: \"{}\", sslmode: disable }}
- {{ name: pay, type: mysql, url: \"{}\", sslmode: disabled }}
- {{ name: settlements, type: parquet, path: {}, partitions: [ds] }}",
        shop.orders.url(),
        shop.pay.url(),
        settlements.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_source_join_finds_exactly_the_injected_settlement_mismatches() {
    let shop = shop();
    let dir = tempfile::tempdir().unwrap();
    let settlements = dir.path().join("settlements");
    // The report for DAY, with three faults: merchant 3 one fen short, merchant 7 missing,
    // and merchant 99 (no orders) settled 500.
    let mut rows: Vec<String> = Vec::new();
    for (&merchant, &net) in &shop.expected {
        match merchant {
            3 => rows.push(format!("({merchant}, {})", net - 1)),
            7 => {}
            _ => rows.push(format!("({merchant}, {net})")),
        }
    }
    rows.push("(99, 500)".into());
    let values = |rows: &[String]| {
        format!("SELECT column1 AS merchant_id, column2 AS net_amount FROM (VALUES {})", rows.join(","))
    };
    write_parquet(&settlements.join(format!("ds={DAY}/part-0.parquet")), &values(&rows)).await;
    // The day before's report is all wrong for DAY: only partition pruning keeps it out.
    let wrong: Vec<String> = (1..=MERCHANTS).map(|m| format!("({m}, 1)")).collect();
    write_parquet(&settlements.join(format!("ds={DAY_BEFORE}/part-0.parquet")), &values(&wrong)).await;

    let warehouse = warehouse(&config(&shop, &settlements), dir.path()).await;
    let rule = example("settlement-daily-totals.yaml");
    let ds = NaiveDate::parse_from_str(DAY, "%Y-%m-%d").unwrap();
    let outcome = run(&warehouse, &rule, ds, None, &chrono::Utc::now).await;
    assert_eq!(outcome.record.status, RunStatus::Ok, "{:?}", outcome.record.error);

    let found: BTreeMap<i64, Value> = outcome
        .findings
        .iter()
        .map(|f| {
            let Value::Int(merchant) = f.key["merchant_id"] else { panic!("merchant ids are integers: {f:?}") };
            assert_eq!(f.key["ds"], Value::String(DAY.into()));
            assert_eq!(f.owner, "settlement");
            let amount = f.money_at_risk.as_ref().expect("money at risk").amount;
            (merchant, Value::Int(i64::try_from(amount).expect("whole minor units")))
        })
        .collect();
    let want = BTreeMap::from([(3, Value::Int(-1)), (7, Value::Int(-shop.expected[&7])), (99, Value::Int(500))]);
    assert_eq!(found, want, "exactly the injected mismatches, with exact differences");
    assert_eq!(outcome.record.rows, 3);
    assert_eq!(outcome.record.findings, 3);
    let message = &outcome.findings.iter().find(|f| f.key["merchant_id"] == Value::Int(3)).unwrap().message;
    assert_eq!(
        message,
        &format!(
            "merchant 3 on {DAY}: settled {}, payments minus refunds {}",
            shop.expected[&3] - 1,
            shop.expected[&3]
        )
    );
    assert!(outcome.record.rows_scanned.is_some_and(|n| n > 0), "{:?}", outcome.record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_are_pushed_down_to_the_databases() {
    let shop = shop();
    let dir = tempfile::tempdir().unwrap();
    let settlements = dir.path().join("settlements");
    write_parquet(&settlements.join(format!("ds={DAY}/part-0.parquet")), "SELECT 1 AS merchant_id, 2 AS net_amount")
        .await;
    let warehouse = warehouse(&config(&shop, &settlements), dir.path()).await;
    let explain = |sql: &str| {
        let ctx = warehouse.context().clone();
        let sql = format!("EXPLAIN {sql}");
        async move {
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string()
        }
    };
    let mariadb = explain("SELECT id FROM pay.payments WHERE status = 'FAILED' AND amount > 3000").await;
    assert!(
        mariadb.contains("WHERE") && mariadb.contains("`status` = 'FAILED'") && mariadb.contains("`amount` > 3000"),
        "the MariaDB query carries the filter:\n{mariadb}"
    );
    let postgres = explain("SELECT id FROM shop.orders WHERE merchant_id = 3").await;
    assert!(
        postgres.contains("WHERE") && postgres.contains("\"merchant_id\" = 3"),
        "the PostgreSQL query carries the filter:\n{postgres}"
    );
    // And the rows that come back are the filtered ones.
    let batches =
        warehouse.context().sql("SELECT count(*) AS n FROM pay.payments WHERE status = 'FAILED'").await.unwrap();
    let n = batches.collect().await.unwrap();
    let count = fundguard_engine::value_at(n[0].column(0), 0);
    assert_eq!(count, Value::Int(ORDERS / 17));
    // Exact decimals from PostgreSQL NUMERIC.
    let total = warehouse.context().sql("SELECT total FROM shop.orders WHERE id = 1").await.unwrap();
    let total = total.collect().await.unwrap();
    assert_eq!(fundguard_engine::value_at(total[0].column(0), 0).to_string(), format!("{}.00", amount_of(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_beyond_their_payment_are_found_counting_earlier_days() {
    let pay = MariaDb::create("refunds");
    pay.sql(
        "CREATE TABLE payments (id BIGINT PRIMARY KEY, order_id BIGINT, status VARCHAR(16), amount BIGINT, paid_at DATETIME);
         CREATE TABLE refunds (id BIGINT PRIMARY KEY, order_id BIGINT, payment_id BIGINT, status VARCHAR(16), amount BIGINT, refunded_at DATETIME);
         INSERT INTO payments VALUES (1, 1, 'SUCCESS', 1000, '2026-11-20 10:00:00'), (2, 2, 'SUCCESS', 500, '2026-11-20 10:00:00'),
                                     (3, 3, 'SUCCESS', 700, '2026-11-20 10:00:00');
         -- Payment 1: 600 refunded on the 24th, 401 more on the 25th: 1 over.
         -- Payment 2: refunded in full on the 25th, and a failed retry. Payment 3: 800 refunded on the 26th.
         INSERT INTO refunds VALUES (1, 1, 1, 'SUCCESS', 600, '2026-11-24 09:00:00'), (2, 1, 1, 'SUCCESS', 401, '2026-11-25 09:00:00'),
                                    (3, 2, 2, 'SUCCESS', 500, '2026-11-25 11:00:00'), (4, 2, 2, 'FAILED', 500, '2026-11-25 11:05:00'),
                                    (5, 3, 3, 'SUCCESS', 800, '2026-11-26 08:00:00');",
    );
    let dir = tempfile::tempdir().unwrap();
    let warehouse =
        warehouse(&format!("- {{ name: pay, type: mysql, url: \"{}\", sslmode: disabled }}", pay.url()), dir.path())
            .await;
    let rule = example("refunds-within-payments-daily.yaml");
    let on = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let outcome = run(&warehouse, &rule, on("2026-11-25"), None, &chrono::Utc::now).await;
    assert_eq!(outcome.record.status, RunStatus::Ok, "{:?}", outcome.record.error);
    let found: Vec<(Value, Value)> = outcome
        .findings
        .iter()
        .map(|f| {
            (f.key["payment_id"].clone(), Value::Int(i64::try_from(f.money_at_risk.clone().unwrap().amount).unwrap()))
        })
        .collect();
    assert_eq!(found, [(Value::Int(1), Value::Int(1))], "only payment 1, by exactly one fen");
    assert_eq!(outcome.findings[0].message, "payment 1: refunded 1001 of 1000");
    let earlier = run(&warehouse, &rule, on("2026-11-24"), None, &chrono::Utc::now).await;
    assert!(earlier.findings.is_empty(), "on the 24th payment 1 was within its amount");
}
