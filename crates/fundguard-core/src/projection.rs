//! Which columns of which tables anyone downstream reads: decoders convert those and
//! leave the rest of each image unread (see [`Row`](crate::Row)).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The columns read per table. The default reads every column of every table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    /// `None`: every table whole. Otherwise a table not listed has no column read.
    tables: Option<Arc<HashMap<Box<str>, TableColumns>>>,
}

/// What is read of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableColumns {
    /// Every column (someone reads rows whole, or by names not known in advance).
    All,
    /// These columns, of either image.
    Only(Arc<HashSet<Box<str>>>),
}

impl Projection {
    /// Every column of every table: what a decoder does with no projection.
    pub fn all() -> Projection {
        Projection::default()
    }

    /// The listed tables' columns; tables not listed have none read.
    pub fn only(tables: HashMap<Box<str>, TableColumns>) -> Projection {
        Projection { tables: Some(Arc::new(tables)) }
    }

    /// What is read of `table`.
    pub fn table(&self, table: &str) -> TableColumns {
        match &self.tables {
            None => TableColumns::All,
            Some(tables) => tables.get(table).cloned().unwrap_or_else(|| TableColumns::Only(Arc::default())),
        }
    }

    /// Whether every column of every table is read.
    pub fn is_all(&self) -> bool {
        self.tables.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_not_listed_have_no_column_read() {
        let orders = TableColumns::Only(Arc::new(["amount".into()].into_iter().collect()));
        let p = Projection::only([("shop.orders".into(), orders.clone())].into_iter().collect());
        assert_eq!(p.table("shop.orders"), orders);
        assert_eq!(p.table("shop.users"), TableColumns::Only(Arc::default()));
        assert_eq!(Projection::all().table("shop.users"), TableColumns::All);
    }
}
