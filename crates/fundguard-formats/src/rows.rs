//! Raw row objects to [`Row`]s, under a [`Projection`]: of a table someone reads only some
//! columns of, only those are converted; the rest stay in the message, which the row keeps
//! (one copy shared by all the rows of a message) to be read again whole when asked for.
//!
//! Converting a value is most of a decoder's cost (a string is an allocation, a decimal a
//! parse), and a rule set reads a few columns of wide tables: a table no rule reads costs
//! only the envelope's parse.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fundguard_core::{ImageAt, Projection, ReadAgain, Row, TableColumns, Unread, Value};
use serde_json::value::RawValue;

use crate::DecodeError;
use crate::json::{Interner, RawRow};

/// Converts the row images of a stream's messages. One per decoder.
pub(crate) struct Rows {
    pub interner: Interner,
    projection: Projection,
    /// What is read of each table seen, and where each table's is.
    tables: Vec<Verdicts>,
    index: HashMap<Arc<str>, usize>,
    /// The table of the last row: a stream's rows come in runs of one table.
    last: usize,
    /// How a projected row reads its message again: the same format, every column.
    reader: Arc<dyn ReadAgain>,
    /// The message being decoded, copied once for all its projected rows.
    message: Option<Arc<str>>,
}

/// Whether each column of one table is read, remembered per position: rows of a table
/// repeat their columns in one order, so a name comparison usually settles it.
struct Verdicts {
    table: Arc<str>,
    /// `None`: every column is read.
    read: Option<Arc<HashSet<Box<str>>>>,
    positions: Vec<(Arc<str>, bool)>,
}

/// Tables remembered before the list starts over (a stream of ever-new table names).
const MAX_TABLES: usize = 1024;

impl Rows {
    pub fn new(reader: Arc<dyn ReadAgain>) -> Rows {
        Rows {
            interner: Interner::default(),
            projection: Projection::all(),
            tables: Vec::new(),
            index: HashMap::new(),
            last: 0,
            reader,
            message: None,
        }
    }

    pub fn set_projection(&mut self, projection: Projection) {
        self.projection = projection;
        self.tables.clear();
        self.index.clear();
    }

    /// Forgets the previous message: called before each one is decoded.
    pub fn start_message(&mut self) {
        self.message = None;
    }

    /// Converts one image of `table` from the message `text`: `image`'s columns, with
    /// `overlay`'s values over them (an update's old values, which some formats give apart
    /// from the whole row), each through `read`.
    pub fn convert(
        &mut self,
        text: &str,
        table: &Arc<str>,
        at: ImageAt,
        image: &RawRow,
        overlay: Option<&RawRow>,
        mut read: impl FnMut(&str, &RawValue) -> Result<Value, DecodeError>,
    ) -> Result<Row, DecodeError> {
        let over = |name: &str| overlay?.0.iter().find(|(n, _)| n == name).map(|(_, raw)| *raw);
        let extras = overlay.into_iter().flat_map(|o| o.0.iter()).filter(|(n, _)| !image.0.iter().any(|(m, _)| m == n));
        if self.projection.is_all() {
            let mut row = Row::with_capacity(image.0.len());
            for (i, (name, raw)) in image.0.iter().enumerate() {
                let raw = over(name).unwrap_or(raw);
                row.push(self.interner.intern_column(i, name), read(name, raw)?);
            }
            for (name, raw) in extras {
                row.push(self.interner.intern(name), read(name, raw)?);
            }
            return Ok(row);
        }
        let verdicts = self.verdicts(table);
        let Rows { interner, tables, .. } = self;
        let verdicts = &mut tables[verdicts];
        let mut columns = Vec::new();
        for (i, (name, raw)) in image.0.iter().enumerate() {
            if let Some(name) = verdicts.name_if_read(interner, i, name) {
                let raw = over(&name).unwrap_or(raw);
                columns.push((name.clone(), read(&name, raw)?));
            }
        }
        for (name, raw) in extras {
            if verdicts.read.as_ref().is_none_or(|read| read.contains(&**name)) {
                columns.push((interner.intern(name), read(name, raw)?));
            }
        }
        let Some(asked) = verdicts.read.clone() else { return Ok(columns.into_iter().collect()) };
        let message = self.message.get_or_insert_with(|| Arc::from(text)).clone();
        Ok(Row::projected(columns, Unread::new(message, at, asked, self.reader.clone())))
    }

    /// The index in `tables` of `table`'s verdicts.
    fn verdicts(&mut self, table: &Arc<str>) -> usize {
        if self.tables.get(self.last).is_some_and(|v| Arc::ptr_eq(&v.table, table)) {
            return self.last;
        }
        if let Some(&i) = self.index.get(table) {
            self.last = i;
            return i;
        }
        if self.tables.len() >= MAX_TABLES {
            self.tables.clear();
            self.index.clear();
        }
        let read = match self.projection.table(table) {
            TableColumns::All => None,
            TableColumns::Only(columns) => Some(columns),
        };
        self.tables.push(Verdicts { table: table.clone(), read, positions: Vec::new() });
        self.last = self.tables.len() - 1;
        self.index.insert(table.clone(), self.last);
        self.last
    }
}

impl Verdicts {
    /// The interned name of the `index`-th column when it is read; `None` when it is not.
    fn name_if_read(&mut self, interner: &mut Interner, index: usize, name: &str) -> Option<Arc<str>> {
        if let Some((known, read)) = self.positions.get(index)
            && &**known == name
        {
            return read.then(|| known.clone());
        }
        let interned = interner.intern(name);
        let read = self.read.as_ref().is_none_or(|columns| columns.contains(name));
        if let Some(slot) = self.positions.get_mut(index) {
            *slot = (interned.clone(), read);
        } else if index == self.positions.len() && index < 1024 {
            self.positions.push((interned.clone(), read));
        }
        read.then_some(interned)
    }
}
