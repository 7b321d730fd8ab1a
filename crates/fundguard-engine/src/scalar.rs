//! Arrow cells back to fundguard [`Value`]s (for keys, money and messages).

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use fundguard_core::{Decimal, EventTime, Value};

/// Reads row `i` of an array as a value; types fundguard does not model become text.
pub fn value_at(array: &ArrayRef, i: usize) -> Value {
    // The types batches are built from, read directly: this runs for every projected cell.
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Int64 => return Value::Int(array.as_primitive::<Int64Type>().value(i)),
        DataType::Utf8 => return Value::String(array.as_string::<i32>().value(i).to_string()),
        DataType::Boolean => return Value::Bool(array.as_boolean().value(i)),
        DataType::Decimal128(_, s) => {
            let v = array.as_primitive::<Decimal128Type>().value(i);
            if let Ok(d) = Decimal::try_from_i128_with_scale(v, u32::try_from(*s).unwrap_or(0)) {
                return Value::Decimal(d);
            }
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            return Value::Timestamp(EventTime::from_micros(array.as_primitive::<TimestampMicrosecondType>().value(i)));
        }
        _ => {}
    }
    let Ok(scalar) = ScalarValue::try_from_array(array, i) else {
        return Value::Null;
    };
    if scalar.is_null() {
        return Value::Null;
    }
    match scalar {
        ScalarValue::Boolean(Some(b)) => Value::Bool(b),
        ScalarValue::Int8(Some(v)) => Value::Int(v.into()),
        ScalarValue::Int16(Some(v)) => Value::Int(v.into()),
        ScalarValue::Int32(Some(v)) => Value::Int(v.into()),
        ScalarValue::Int64(Some(v)) => Value::Int(v),
        ScalarValue::UInt8(Some(v)) => Value::Int(v.into()),
        ScalarValue::UInt16(Some(v)) => Value::Int(v.into()),
        ScalarValue::UInt32(Some(v)) => Value::Int(v.into()),
        ScalarValue::UInt64(Some(v)) => i64::try_from(v).map_or_else(|_| Value::Decimal(v.into()), Value::Int),
        ScalarValue::Decimal128(Some(v), _, s) => Decimal::try_from_i128_with_scale(v, u32::try_from(s).unwrap_or(0))
            .map_or_else(|_| Value::String(scalar_text(&ScalarValue::Decimal128(Some(v), 38, s))), Value::Decimal),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            Value::String(s)
        }
        ScalarValue::TimestampMicrosecond(Some(v), _) => Value::Timestamp(EventTime::from_micros(v)),
        ScalarValue::TimestampMillisecond(Some(v), _) => Value::Timestamp(EventTime::from_millis(v)),
        ScalarValue::TimestampSecond(Some(v), _) => Value::Timestamp(EventTime::from_secs(v)),
        ScalarValue::TimestampNanosecond(Some(v), _) => Value::Timestamp(EventTime::from_micros(v.div_euclid(1000))),
        other => Value::String(scalar_text(&other)),
    }
}

fn scalar_text(s: &ScalarValue) -> String {
    s.to_string()
}
