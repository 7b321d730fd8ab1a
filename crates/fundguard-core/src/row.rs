//! Row images, and the columns of one a decoder left unread.
//!
//! A decoder given a [`Projection`](crate::Projection) converts only the columns someone
//! reads; the rest of the image stays in the message it came from ([`Unread`]) and is
//! read again, whole, the first time anyone looks past the read columns — a finding's
//! evidence, an attribution profile. To every reader the row is the same either way:
//! [`Row::iter`], [`Row::get`], equality and serialisation all see the whole image, in the
//! source's column order. Only the cost differs.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::Value;

/// Column names with their values, in the source's order.
type Columns = Vec<(Arc<str>, Value)>;

/// A row image: column names with their values, in the order the source gave them.
///
/// Column names are shared (`Arc<str>`) because every row of a table repeats them;
/// decoders intern them once per table.
#[derive(Clone, Default)]
pub struct Row {
    /// Every column, or — when `unread` is set — only the ones the decoder was asked for.
    columns: Columns,
    unread: Option<Arc<Unread>>,
}

/// Which row image of a message: the message's `index`-th row (a Canal message carries
/// several), before or after the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageAt {
    pub index: u32,
    pub before: bool,
}

/// Reads one image of a message again, every column converted: what a decoder leaves
/// behind with a projected row, so the columns it skipped can still be shown.
pub trait ReadAgain: Send + Sync {
    /// The whole image, or `None` when it cannot be read (a value no reader accepts: the
    /// row then shows the columns that were read).
    fn read_again(&self, message: &str, at: ImageAt) -> Option<Vec<(Arc<str>, Value)>>;
}

/// The columns of an image a decoder did not convert: the message, kept as its text, and
/// how to read it again. Read at most once; the result is kept.
pub struct Unread {
    message: Arc<str>,
    at: ImageAt,
    /// The columns the decoder was asked to convert: one of them missing from the row is
    /// missing from the message too, so looking for it does not read the message again.
    asked: Arc<HashSet<Box<str>>>,
    reader: Arc<dyn ReadAgain>,
    whole: OnceLock<Option<Columns>>,
}

impl Unread {
    pub fn new(message: Arc<str>, at: ImageAt, asked: Arc<HashSet<Box<str>>>, reader: Arc<dyn ReadAgain>) -> Unread {
        Unread { message, at, asked, reader, whole: OnceLock::new() }
    }

    fn whole(&self) -> Option<&[(Arc<str>, Value)]> {
        self.whole.get_or_init(|| self.reader.read_again(&self.message, self.at)).as_deref()
    }
}

impl Row {
    pub fn new() -> Self {
        Row::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Row { columns: Vec::with_capacity(n), unread: None }
    }

    /// A row of which only `read` was converted; the other columns are read from `unread`
    /// when someone asks for them.
    pub fn projected(read: Columns, unread: Unread) -> Self {
        Row { columns: read, unread: Some(Arc::new(unread)) }
    }

    /// Whether some columns were left unread by the decoder (and are read on demand).
    pub fn is_projected(&self) -> bool {
        self.unread.is_some()
    }

    /// Every column: the converted ones, or the image read again when some were left unread.
    fn whole(&self) -> &[(Arc<str>, Value)] {
        match &self.unread {
            Some(unread) => unread.whole().unwrap_or(&self.columns),
            None => &self.columns,
        }
    }

    /// Reads the unread columns now and forgets the message: a row about to change must
    /// change as a whole.
    fn materialize(&mut self) {
        if let Some(unread) = self.unread.take()
            && let Some(whole) = unread.whole()
        {
            self.columns = whole.to_vec();
        }
    }

    /// The columns, all of them, by value.
    pub fn into_columns(mut self) -> Columns {
        self.materialize();
        self.columns
    }

    pub fn push(&mut self, name: Arc<str>, value: Value) {
        self.materialize();
        self.columns.push((name, value));
    }

    /// Sets a column, replacing its value when it exists.
    pub fn set(&mut self, name: Arc<str>, value: Value) {
        self.materialize();
        match self.columns.iter_mut().find(|(n, _)| **n == *name) {
            Some(slot) => slot.1 = value,
            None => self.columns.push((name, value)),
        }
    }

    /// The value of a column; `hint` is where callers last found it, which is
    /// almost always where it is again, since rows of a table share one layout.
    pub fn get_hinted(&self, name: &str, hint: &mut usize) -> Option<&Value> {
        if let Some((n, v)) = self.columns.get(*hint)
            && &**n == name
        {
            return Some(v);
        }
        match self.columns.iter().position(|(n, _)| &**n == name) {
            Some(i) => {
                *hint = i;
                Some(&self.columns[i].1)
            }
            None => self.get_unread(name),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        match self.columns.iter().find(|(n, _)| &**n == name) {
            Some((_, v)) => Some(v),
            None => self.get_unread(name),
        }
    }

    fn get_unread(&self, name: &str) -> Option<&Value> {
        let unread = self.unread.as_ref()?;
        if unread.asked.contains(name) {
            return None;
        }
        let whole = unread.whole()?;
        whole.iter().find(|(n, _)| &**n == name).map(|(_, v)| v)
    }

    /// Replaces every value through `f`, stopping at the first error.
    pub fn try_map_values<E>(&mut self, mut f: impl FnMut(&str, Value) -> Result<Value, E>) -> Result<(), E> {
        self.materialize();
        self.try_map_read_values(|name, value| f(name, value))
    }

    /// Replaces the values of the columns the decoder converted, leaving unread ones
    /// unread: for a decoder finishing its own conversion, whose [`ReadAgain`] applies the
    /// same conversion when the rest is read.
    pub fn try_map_read_values<E>(&mut self, mut f: impl FnMut(&Arc<str>, Value) -> Result<Value, E>) -> Result<(), E> {
        for (name, value) in &mut self.columns {
            let taken = std::mem::take(value);
            *value = f(name, taken)?;
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.whole().iter().map(|(n, v)| (&**n, v))
    }

    /// The columns with their shared names (cloning a name is a reference count).
    pub fn columns(&self) -> impl Iterator<Item = (&Arc<str>, &Value)> {
        self.whole().iter().map(|(n, v)| (n, v))
    }

    pub fn len(&self) -> usize {
        self.whole().len()
    }

    pub fn is_empty(&self) -> bool {
        self.whole().is_empty()
    }

    /// The row as a JSON object (decimals as strings).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.iter().map(|(n, v)| (n.to_owned(), v.to_json())).collect())
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        self.whole() == other.whole()
    }
}

impl Eq for Row {}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let whole = self.whole();
        let mut map = serializer.serialize_map(Some(whole.len()))?;
        for (n, v) in whole {
            map.serialize_entry(&**n, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Columns;
        impl<'de> serde::de::Visitor<'de> for Columns {
            type Value = Row;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of column names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
                let mut row = Row::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((name, value)) = map.next_entry::<Arc<str>, Value>()? {
                    row.columns.push((name, value));
                }
                Ok(row)
            }
        }
        deserializer.deserialize_map(Columns)
    }
}

impl<N: Into<Arc<str>>, V: Into<Value>> FromIterator<(N, V)> for Row {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Row { columns: iter.into_iter().map(|(n, v)| (n.into(), v.into())).collect(), unread: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a message of `name=int` pairs separated by commas; counts its reads.
    struct Pairs(std::sync::atomic::AtomicUsize);

    impl ReadAgain for Pairs {
        fn read_again(&self, message: &str, _at: ImageAt) -> Option<Vec<(Arc<str>, Value)>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            message
                .split(',')
                .map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    Some((Arc::from(name), Value::Int(value.parse().ok()?)))
                })
                .collect()
        }
    }

    fn projected(message: &str, read: &[&str]) -> (Row, Arc<Pairs>) {
        let reader = Arc::new(Pairs(Default::default()));
        let whole = reader.read_again(message, ImageAt { index: 0, before: false }).unwrap_or_default();
        reader.0.store(0, std::sync::atomic::Ordering::Relaxed);
        let columns = whole.into_iter().filter(|(n, _)| read.contains(&&**n)).collect();
        let asked = Arc::new(read.iter().map(|&n| n.into()).collect());
        let unread = Unread::new(Arc::from(message), ImageAt { index: 0, before: false }, asked, reader.clone());
        (Row::projected(columns, unread), reader)
    }

    fn reads(reader: &Pairs) -> usize {
        reader.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn a_projected_row_reads_its_message_only_past_the_read_columns() {
        let (row, reader) = projected("id=1,amount=500,fee=3", &["amount"]);
        let mut hint = 0;
        assert_eq!(row.get_hinted("amount", &mut hint), Some(&Value::Int(500)));
        assert_eq!(reads(&reader), 0, "a read column needs no second read");
        assert_eq!(row.get("fee"), Some(&Value::Int(3)));
        assert_eq!(row.get("nothing"), None);
        assert_eq!(row.len(), 3);
        assert_eq!(reads(&reader), 1, "the message is read again once, then kept");
        let (row, reader) = projected("id=1", &["id", "amount"]);
        assert_eq!(row.get("amount"), None);
        assert_eq!(reads(&reader), 0, "a column asked for and not there is not in the message either");
    }

    #[test]
    fn a_projected_row_is_the_whole_row_to_every_reader() {
        let (row, _) = projected("id=1,amount=500,fee=3", &["fee"]);
        let whole: Row = [("id", 1i64), ("amount", 500), ("fee", 3)].into_iter().collect();
        assert_eq!(row, whole);
        assert_eq!(serde_json::to_string(&row).unwrap(), r#"{"id":1,"amount":500,"fee":3}"#);
        let names: Vec<&str> = row.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["id", "amount", "fee"], "the source's order");
        assert_eq!(format!("{row:?}"), format!("{whole:?}"));
    }

    #[test]
    fn changing_a_projected_row_changes_the_whole_row() {
        let (mut row, _) = projected("id=1,amount=500", &["amount"]);
        row.set(Arc::from("amount"), Value::Int(7));
        assert_eq!(row.get("id"), Some(&Value::Int(1)));
        assert_eq!(row.get("amount"), Some(&Value::Int(7)));
        assert!(!row.is_projected());
        let (mut row, _) = projected("id=1,amount=500", &["amount"]);
        row.try_map_read_values(|_, v| Ok::<_, ()>(if v == Value::Int(500) { Value::Int(5) } else { v })).unwrap();
        assert_eq!(row.get("amount"), Some(&Value::Int(5)), "the read columns changed in place");
        assert!(row.is_projected());
    }

    #[test]
    fn an_unreadable_message_leaves_the_read_columns() {
        let (row, _) = projected("id=1,amount=500", &["amount"]);
        let read: Vec<_> = row.columns.clone();
        let at = ImageAt { index: 0, before: false };
        let unread = Unread::new(Arc::from("id=x"), at, Arc::default(), Arc::new(Pairs(Default::default())));
        let row = Row::projected(read, unread);
        assert_eq!(row.len(), 1);
        assert_eq!(row.get("amount"), Some(&Value::Int(500)));
        assert_eq!(row.get("id"), None);
    }
}
