//! Property tests: the DDL reader never panics, whatever the input, and classification
//! depends only on the column and the catalog.

use proptest::prelude::*;

use crate::classify::classify;
use crate::ddl::{Dialect, parse_ddl, parse_ddl_as};
use crate::schema::{Catalog, Column, SchemaChange, Table};

/// Text that looks like DDL often enough to reach deep into the parser.
fn ddl_like() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "CREATE TABLE ",
        "ALTER TABLE ",
        "ADD COLUMN ",
        "COMMENT ON COLUMN ",
        " IS ",
        "shop.t",
        "`x`",
        "\"y\"",
        "(",
        ")",
        ",",
        ";",
        " BIGINT",
        " DECIMAL(12,2)",
        " VARCHAR(3)",
        " COMMENT 'fee'",
        " REFERENCES o(id)",
        "FOREIGN KEY (a) REFERENCES b(c)",
        "'",
        "--",
        "/*",
        "*/",
        "$$",
        "\n",
        " ",
        "é",
        "金额",
        "\u{0}",
    ]);
    prop_oneof![prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat()), ".{0,200}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_ddl_reader_never_panics(text in ddl_like()) {
        let parsed = parse_ddl("fuzz.sql", &text);
        for problem in &parsed.problems {
            prop_assert!(problem.line >= 1);
        }
        let _ = parse_ddl_as("fuzz.sql", &text, Dialect::Postgres);
    }

    #[test]
    fn classification_is_deterministic(
        name in "[a-z_]{1,20}",
        data_type in prop::sample::select(vec!["BIGINT", "decimal(12,2)", "varchar(16)", "datetime", "double", "money", "json"]),
        comment in prop::option::of(".{0,20}"),
    ) {
        let mut catalog = Catalog::default();
        for t in ["shop.orders", "shop.payments"] {
            catalog.apply(SchemaChange::CreateTable(Table { name: t.into(), columns: vec![], source: "p".into() }));
        }
        let column = Column { name: name.clone(), data_type: data_type.to_string(), comment, references: None, samples: Vec::new() };
        let first = classify("shop.payments", &column, &catalog);
        prop_assert_eq!(&first, &classify("shop.payments", &column, &catalog));
        prop_assert!(first.confidence <= 100);
        let upper = Column { name: name.to_uppercase(), data_type: data_type.to_uppercase(), ..column };
        prop_assert_eq!(first.class, classify("shop.payments", &upper, &catalog).class);
    }
}
