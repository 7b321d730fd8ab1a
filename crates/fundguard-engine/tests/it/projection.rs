//! The columns an engine asks decoders for: what its rules read, and whole tables where
//! rows are kept whole.

use fundguard_core::{TableColumns, TableSchemas};
use fundguard_engine::Engine;

use super::{check, rule};

fn columns(engine: &Engine, table: &str) -> Option<Vec<String>> {
    match engine.projection().table(table) {
        TableColumns::All => None,
        TableColumns::Only(columns) => {
            let mut names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            names.sort();
            Some(names)
        }
    }
}

#[test]
fn checks_ask_for_what_they_read_of_either_image() {
    let refund = check(
        "refund",
        "  when: \"op = 'update' AND before.status = 'PAID'\"\n  assert: after.amount > 0\n  key: { order_id: after.order_id }\n  money: { amount: after.amount, currency: after.currency }\n",
    );
    let engine = Engine::new(&[refund], &TableSchemas::default()).unwrap();
    let want = ["amount", "currency", "order_id", "status"].map(String::from).to_vec();
    assert_eq!(columns(&engine, "shop.t"), Some(want));
    assert_eq!(columns(&engine, "shop.unwatched"), Some(vec![]), "a table no rule watches has no column read");
}

#[test]
fn stateful_rules_and_stream_lookups_read_their_tables_whole() {
    let stuck = rule(
        "id: stuck\nowner: t\nseverity: high\ntimeout:\n  table: s.ord\n  key: after.id\n  enter: \"after.status = 'PAYING'\"\n  exit: \"after.status <> 'PAYING'\"\n  within: 30m\n",
    );
    let positive = check("positive", "  assert: after.amount > 0\n");
    let engine = Engine::new(&[stuck, positive.clone()], &TableSchemas::default()).unwrap();
    assert_eq!(columns(&engine, "s.ord"), None, "stored rows keep every column's dimensions");
    // A check without a `key` is keyed by `id`.
    assert_eq!(columns(&engine, "shop.t"), Some(vec!["amount".to_string(), "id".to_string()]));

    let order_exists = rule(
        "id: order-exists\nowner: t\nseverity: high\nlookups:\n  orders:\n    match: { id: after.order_id }\ncheck:\n  tables: [shop.refunds]\n  assert: \"lookup.orders.amount >= after.amount\"\n",
    );
    let mut engine = Engine::new(&[order_exists, positive], &TableSchemas::default()).unwrap();
    assert!(engine.maintain_lookup("orders", "shop.orders", None));
    assert_eq!(columns(&engine, "shop.orders"), None, "a lookup kept from the stream keeps its rows");
    assert_eq!(columns(&engine, "shop.refunds"), Some(["amount", "id", "order_id"].map(String::from).to_vec()));
}
