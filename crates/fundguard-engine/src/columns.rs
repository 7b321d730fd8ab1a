//! Per-table column typing and Arrow batch building.
//!
//! A table's columns get one Arrow type each: the declared type when the schema
//! file gives one, else the type inferred from the values seen so far. Inferred
//! types only widen (integer → decimal, a larger decimal scale, anything mixed →
//! text), so a column never narrows between batches.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Int64Builder, NullArray, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::{DFSchema, TableReference};
use fundguard_core::{ChangeEvent, ColumnType, Decimal, Value};

/// Which image a column comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Image {
    Before,
    After,
    /// Reconciliation rows and aggregates, in `expect` expressions.
    Left,
    Right,
    Agg,
}

impl Image {
    pub(crate) fn qualifier(self) -> &'static str {
        match self {
            Image::Before => "before",
            Image::After => "after",
            Image::Left => "left",
            Image::Right => "right",
            Image::Agg => "agg",
        }
    }
}

/// The type a column holds in batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ColumnKind {
    /// Never seen with a value: an all-null column that compares as NULL.
    Unknown,
    Int,
    Decimal {
        scale: u32,
    },
    String,
    Bool,
    Timestamp,
}

impl ColumnKind {
    pub(crate) fn of_declared(t: ColumnType) -> ColumnKind {
        match t {
            ColumnType::Int => ColumnKind::Int,
            ColumnType::Decimal => ColumnKind::Decimal { scale: 0 },
            ColumnType::String | ColumnType::Json => ColumnKind::String,
            ColumnType::Bool => ColumnKind::Bool,
            ColumnType::Timestamp | ColumnType::Date => ColumnKind::Timestamp,
        }
    }

    pub(crate) fn of_value(v: &Value) -> ColumnKind {
        match v {
            Value::Null => ColumnKind::Unknown,
            Value::Bool(_) => ColumnKind::Bool,
            Value::Int(_) => ColumnKind::Int,
            Value::Decimal(d) => ColumnKind::Decimal { scale: d.scale() },
            Value::String(_) | Value::Json(_) => ColumnKind::String,
            Value::Timestamp(_) => ColumnKind::Timestamp,
        }
    }

    /// The narrowest kind holding both.
    pub(crate) fn widen(self, other: ColumnKind) -> ColumnKind {
        use ColumnKind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Unknown, x) | (x, Unknown) => x,
            (Int, Decimal { scale }) | (Decimal { scale }, Int) => Decimal { scale },
            (Decimal { scale: a }, Decimal { scale: b }) => Decimal { scale: a.max(b) },
            _ => String,
        }
    }

    pub(crate) fn data_type(self) -> DataType {
        match self {
            ColumnKind::Unknown => DataType::Null,
            ColumnKind::Int => DataType::Int64,
            ColumnKind::Decimal { scale } => DataType::Decimal128(38, i8::try_from(scale).unwrap_or(28)),
            ColumnKind::String => DataType::Utf8,
            ColumnKind::Bool => DataType::Boolean,
            ColumnKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

/// A column a batch carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ColumnRef {
    pub image: Image,
    pub name: String,
}

/// The columns (and their kinds) of one table's batches.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableLayout {
    pub columns: BTreeMap<(Image, String), ColumnKind>,
    declared: BTreeMap<String, ColumnType>,
}

/// The fixed columns every batch starts with.
pub(crate) const OP: &str = "op";
pub(crate) const TABLE: &str = "table";
pub(crate) const COMMIT_TIME: &str = "commit_time";

impl TableLayout {
    pub(crate) fn new(declared: Option<&BTreeMap<String, ColumnType>>) -> Self {
        TableLayout { columns: BTreeMap::new(), declared: declared.cloned().unwrap_or_default() }
    }

    /// Adds a referenced column, typed by its declaration when there is one.
    pub(crate) fn reference(&mut self, column: &ColumnRef) {
        let kind = self.declared.get(&column.name).map_or(ColumnKind::Unknown, |t| ColumnKind::of_declared(*t));
        self.columns.entry((column.image, column.name.clone())).or_insert(kind);
    }

    /// Widens undeclared columns to hold the values of these events.
    /// Returns true when any column's kind changed (compiled expressions must be rebuilt).
    pub(crate) fn observe(&mut self, events: &[ChangeEvent], indices: &[usize]) -> bool {
        let mut changed = false;
        for ((image, name), kind) in self.columns.iter_mut() {
            let declared_decimal = match self.declared.get(name) {
                Some(ColumnType::Decimal) => true,
                Some(_) => continue,
                None => false,
            };
            let mut hint = 0;
            let mut k = *kind;
            for &i in indices {
                let row = match image {
                    Image::Before => events[i].before.as_ref(),
                    Image::After => events[i].after.as_ref(),
                    _ => None,
                };
                if let Some(v) = row.and_then(|r| r.get_hinted(name, &mut hint)) {
                    let seen = ColumnKind::of_value(v);
                    // A declared decimal column only grows its scale.
                    if !declared_decimal || matches!(seen, ColumnKind::Decimal { .. }) {
                        k = k.widen(seen);
                    }
                }
            }
            if k != *kind {
                *kind = k;
                changed = true;
            }
        }
        changed
    }

    /// The DataFusion schema of this layout's batches.
    pub(crate) fn df_schema(&self) -> Arc<DFSchema> {
        let mut fields: Vec<(Option<TableReference>, Arc<Field>)> = vec![
            (None, Arc::new(Field::new(OP, DataType::Utf8, false))),
            (None, Arc::new(Field::new(TABLE, DataType::Utf8, false))),
            (None, Arc::new(Field::new(COMMIT_TIME, ColumnKind::Timestamp.data_type(), false))),
        ];
        for ((image, name), kind) in &self.columns {
            fields.push((
                Some(TableReference::bare(image.qualifier())),
                Arc::new(Field::new(name, kind.data_type(), true)),
            ));
        }
        // Names are unique by construction (qualifier + column), so this cannot fail.
        Arc::new(DFSchema::new_with_metadata(fields, Default::default()).unwrap_or_else(|_| DFSchema::empty()))
    }

    /// Builds the batch of the given events (all of this table).
    pub(crate) fn batch(
        &self,
        events: &[ChangeEvent],
        indices: &[usize],
        schema: &DFSchema,
    ) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        let n = indices.len();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(3 + self.columns.len());
        let mut ops = StringBuilder::with_capacity(n, n * 6);
        let mut tables = StringBuilder::with_capacity(n, n * 16);
        let mut times = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for &i in indices {
            let e = &events[i];
            ops.append_value(e.op.as_str());
            tables.append_value(&*e.table);
            times.append_value(e.commit_time.as_micros());
        }
        arrays.push(Arc::new(ops.finish()));
        arrays.push(Arc::new(tables.finish()));
        arrays.push(Arc::new(times.finish()));
        for ((image, name), kind) in &self.columns {
            let mut hint = 0;
            let values = indices.iter().map(|&i| {
                let row = match image {
                    Image::Before => events[i].before.as_ref(),
                    Image::After => events[i].after.as_ref(),
                    _ => None,
                };
                row.and_then(|r| r.get_hinted(name, &mut hint))
            });
            arrays.push(build_array(*kind, n, values));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let arrow_schema: Arc<Schema> = Arc::new(schema.as_arrow().clone());
        RecordBatch::try_new_with_options(arrow_schema, arrays, &options)
    }
}

pub(crate) fn build_array<'a>(kind: ColumnKind, n: usize, values: impl Iterator<Item = Option<&'a Value>>) -> ArrayRef {
    match kind {
        ColumnKind::Unknown => Arc::new(NullArray::new(n)),
        ColumnKind::Int => {
            let mut b = Int64Builder::with_capacity(n);
            for v in values {
                match v {
                    Some(Value::Int(i)) => b.append_value(*i),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        ColumnKind::Decimal { scale } => {
            let mut b = Decimal128Builder::with_capacity(n);
            for v in values {
                let d = match v {
                    Some(Value::Decimal(d)) => Some(*d),
                    Some(Value::Int(i)) => Some(Decimal::from(*i)),
                    _ => None,
                };
                match d.and_then(|d| rescale(d, scale)) {
                    Some(m) => b.append_value(m),
                    None => b.append_null(),
                }
            }
            // Scales come from rust_decimal (at most 28), always valid for Decimal128(38, _).
            let s = i8::try_from(scale).unwrap_or(28);
            let array = b.finish();
            match array.clone().with_precision_and_scale(38, s) {
                Ok(a) => Arc::new(a),
                Err(_) => Arc::new(array),
            }
        }
        ColumnKind::String => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for v in values {
                match v {
                    None | Some(Value::Null) => b.append_null(),
                    Some(Value::String(s) | Value::Json(s)) => b.append_value(s),
                    Some(other) => b.append_value(other.to_string()),
                }
            }
            Arc::new(b.finish())
        }
        ColumnKind::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            for v in values {
                match v {
                    Some(Value::Bool(x)) => b.append_value(*x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        ColumnKind::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
            for v in values {
                match v {
                    Some(Value::Timestamp(t)) => b.append_value(t.as_micros()),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    }
}

/// The unscaled value of `d` at `scale`, if it fits without losing digits.
fn rescale(d: Decimal, scale: u32) -> Option<i128> {
    let current = d.scale();
    let m = d.mantissa();
    if current <= scale {
        m.checked_mul(10i128.checked_pow(scale - current)?)
    } else {
        let div = 10i128.checked_pow(current - scale)?;
        (m % div == 0).then_some(m / div)
    }
}

/// Rows of one table as a record batch of plain columns (no `after.` image, no `op`): the
/// declared types where the schema gives them, widened by the values, else the values'
/// types. What a warehouse table of the same rows would hold.
pub fn rows_batch(
    rows: &[fundguard_core::Row],
    declared: Option<&BTreeMap<String, ColumnType>>,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut kinds: Vec<(String, ColumnKind)> = Vec::new();
    for (name, t) in declared.into_iter().flatten() {
        kinds.push((name.clone(), ColumnKind::of_declared(*t)));
    }
    for row in rows {
        for (name, value) in row.iter() {
            let kind = ColumnKind::of_value(value);
            match kinds.iter_mut().find(|(n, _)| n == name) {
                Some((_, k)) => *k = k.widen(kind),
                None => kinds.push((name.to_string(), kind)),
            }
        }
    }
    let fields: Vec<Field> = kinds.iter().map(|(n, k)| Field::new(n, k.data_type(), true)).collect();
    let arrays: Vec<ArrayRef> =
        kinds.iter().map(|(n, k)| build_array(*k, rows.len(), rows.iter().map(|r| r.get(n)))).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
}
