//! Group numbers of a narrow range of integers, by array index instead of hashing.
//!
//! db-benchmark's groupby q4 takes three means by `id4`, 100 integers: `perf record` of it at
//! 1e7 rows put 19% of the samples in DataFusion's `GroupValuesPrimitive::intern`, a hash and
//! a probe per row for a hundred keys. [`DenseGroups`] keeps each key's group in an array
//! indexed by the key's distance from the smallest key seen, while the keys span at most
//! [`MOST_SPAN`] values; when a batch would widen the span beyond that it hands its groups, in
//! order, to DataFusion's table and goes on with it, so group numbers never change.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowNumericType, AsArray, NullBufferBuilder, PrimitiveArray,
};
use datafusion::arrow::compute::{max, min};
use datafusion::arrow::datatypes::{
    ArrowNativeType, DataType, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::EmitTo;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

/// Keys spanning at most this many values are numbered through an array (1 MiB of it):
/// db-benchmark's `id6` at 1e7 rows spans 100,000.
pub const MOST_SPAN: u64 = 1 << 18;

const UNSEEN: u32 = u32::MAX;

/// The group values for `schema`: [`DenseGroups`] for one integer column, DataFusion's
/// otherwise.
pub fn group_values(schema: &SchemaRef) -> DfResult<Box<dyn IndexedGroups>> {
    indexed_within(schema, MOST_SPAN)
}

/// [`group_values`] with keys numbered through an array while they span at most `most_span`
/// values: for an operator whose own state per group outweighs the array's four bytes a key.
pub fn group_values_within(schema: &SchemaRef, most_span: u64) -> DfResult<Box<dyn GroupValues>> {
    Ok(indexed_within(schema, most_span)?)
}

/// Group values that say whether they number keys through an array.
pub trait IndexedGroups: GroupValues {
    /// Whether every key so far was numbered through the array, none hashed.
    fn indexed(&self) -> bool;
}

impl<T: ArrowNumericType> IndexedGroups for DenseGroups<T> {
    fn indexed(&self) -> bool {
        self.hashed.is_none()
    }
}

/// DataFusion's table, which hashes every key.
struct Hashed(Box<dyn GroupValues>);

impl IndexedGroups for Hashed {
    fn indexed(&self) -> bool {
        false
    }
}

impl GroupValues for Hashed {
    fn intern(&mut self, cols: &[ArrayRef], groups: &mut Vec<usize>) -> DfResult<()> {
        self.0.intern(cols, groups)
    }

    fn size(&self) -> usize {
        self.0.size()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn emit(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        self.0.emit(emit_to)
    }

    fn clear_shrink(&mut self, num_rows: usize) {
        self.0.clear_shrink(num_rows)
    }
}

fn indexed_within(schema: &SchemaRef, most_span: u64) -> DfResult<Box<dyn IndexedGroups>> {
    let dense: Option<Box<dyn IndexedGroups>> = match schema.fields().as_ref() {
        [field] => match field.data_type() {
            DataType::Int8 => Some(Box::new(DenseGroups::<Int8Type>::new(schema, most_span))),
            DataType::Int16 => Some(Box::new(DenseGroups::<Int16Type>::new(schema, most_span))),
            DataType::Int32 => Some(Box::new(DenseGroups::<Int32Type>::new(schema, most_span))),
            DataType::Int64 => Some(Box::new(DenseGroups::<Int64Type>::new(schema, most_span))),
            DataType::UInt8 => Some(Box::new(DenseGroups::<UInt8Type>::new(schema, most_span))),
            DataType::UInt16 => Some(Box::new(DenseGroups::<UInt16Type>::new(schema, most_span))),
            DataType::UInt32 => Some(Box::new(DenseGroups::<UInt32Type>::new(schema, most_span))),
            DataType::UInt64 => Some(Box::new(DenseGroups::<UInt64Type>::new(schema, most_span))),
            _ => None,
        },
        _ => None,
    };
    match dense {
        Some(d) => Ok(d),
        None => Ok(Box::new(Hashed(new_group_values(
            Arc::clone(schema),
            &GroupOrdering::None,
        )?))),
    }
}

/// The groups of one integer column.
pub struct DenseGroups<T: ArrowNumericType> {
    schema: SchemaRef,
    /// The smallest key `slots` covers, as a signed 128-bit number (any 64-bit key fits).
    base: i128,
    /// The group of key `base + i` at `i`, or `UNSEEN`.
    slots: Vec<u32>,
    /// Each group's key (a default value for the null group).
    values: Vec<T::Native>,
    null_group: Option<usize>,
    /// The widest span of keys `slots` may cover.
    most_span: u64,
    /// DataFusion's table, once the keys spread too wide.
    hashed: Option<Box<dyn GroupValues>>,
}

impl<T: ArrowNumericType> DenseGroups<T> {
    fn new(schema: &SchemaRef, most_span: u64) -> Self {
        DenseGroups {
            most_span,
            schema: Arc::clone(schema),
            base: 0,
            slots: Vec::new(),
            values: Vec::new(),
            null_group: None,
            hashed: None,
        }
    }

    /// Makes `slots` cover keys `low..=high`, or says it cannot within `most_span`.
    fn cover(&mut self, low: i128, high: i128) -> bool {
        let (low, high) = match self.slots.is_empty() {
            true => (low, high),
            false => (
                low.min(self.base),
                high.max(self.base + self.slots.len() as i128 - 1),
            ),
        };
        if high - low >= i128::from(self.most_span) {
            return false;
        }
        let span = (high - low + 1) as usize;
        if !self.slots.is_empty() && low == self.base && span == self.slots.len() {
            return true;
        }
        self.base = low;
        self.slots.clear();
        self.slots.resize(span, UNSEEN);
        for (group, v) in self.values.iter().enumerate() {
            if Some(group) != self.null_group {
                let at = (key(*v) - self.base) as usize;
                self.slots[at] = group as u32;
            }
        }
        true
    }

    /// The groups so far as one array, group `g` at row `g`.
    fn array(values: Vec<T::Native>, null_group: Option<usize>) -> ArrayRef {
        let nulls = null_group.and_then(|at| {
            let mut buffer = NullBufferBuilder::new(values.len());
            buffer.append_n_non_nulls(at);
            buffer.append_null();
            buffer.append_n_non_nulls(values.len() - at - 1);
            buffer.finish()
        });
        Arc::new(PrimitiveArray::<T>::new(values.into(), nulls))
    }

    /// Hands the groups to DataFusion's table, which numbers them as they were.
    fn switch_to_hashed(&mut self) -> DfResult<()> {
        let mut hashed = new_group_values(Arc::clone(&self.schema), &GroupOrdering::None)?;
        let values = std::mem::take(&mut self.values);
        let count = values.len();
        let array = Self::array(values, self.null_group.take());
        let mut groups = Vec::with_capacity(count);
        hashed.intern(&[array], &mut groups)?;
        if groups.iter().enumerate().any(|(i, g)| i != *g) {
            return Err(DataFusionError::Internal(
                "DenseGroups: DataFusion's table numbered the groups differently".into(),
            ));
        }
        self.slots = Vec::new();
        self.hashed = Some(hashed);
        Ok(())
    }
}

/// A key as a signed 128-bit number.
fn key<N: ArrowNativeType>(v: N) -> i128 {
    // Every native integer type converts to i64 but u64 above i64::MAX.
    match v.to_i64() {
        Some(k) => i128::from(k),
        None => v.as_usize() as i128,
    }
}

impl<T: ArrowNumericType> GroupValues for DenseGroups<T> {
    fn intern(&mut self, cols: &[ArrayRef], groups: &mut Vec<usize>) -> DfResult<()> {
        if let Some(hashed) = &mut self.hashed {
            return hashed.intern(cols, groups);
        }
        let [column] = cols else {
            return Err(DataFusionError::Internal(format!(
                "DenseGroups: {} group columns, not one",
                cols.len()
            )));
        };
        let array = column.as_primitive_opt::<T>().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "DenseGroups: a group column of {}",
                column.data_type()
            ))
        })?;
        if let (Some(low), Some(high)) = (min(array), max(array))
            && !self.cover(key(low), key(high))
        {
            self.switch_to_hashed()?;
            return self.intern(cols, groups);
        }
        groups.clear();
        groups.reserve(array.len());
        let values = array.values();
        let nulls = array.nulls().filter(|n| n.null_count() > 0);
        for (i, v) in values.iter().enumerate() {
            if nulls.is_some_and(|n| n.is_null(i)) {
                let group = *self.null_group.get_or_insert_with(|| {
                    self.values.push(T::Native::default());
                    self.values.len() - 1
                });
                groups.push(group);
                continue;
            }
            let at = (key(*v) - self.base) as usize;
            let mut group = self.slots[at];
            if group == UNSEEN {
                group = self.values.len() as u32;
                self.values.push(*v);
                self.slots[at] = group;
            }
            groups.push(group as usize);
        }
        Ok(())
    }

    fn size(&self) -> usize {
        self.slots.capacity() * size_of::<u32>()
            + self.values.capacity() * size_of::<T::Native>()
            + self.hashed.as_ref().map_or(0, |h| h.size())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn len(&self) -> usize {
        match &self.hashed {
            Some(h) => h.len(),
            None => self.values.len(),
        }
    }

    fn emit(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        if let Some(hashed) = &mut self.hashed {
            return hashed.emit(emit_to);
        }
        let n = match emit_to {
            EmitTo::All => self.values.len(),
            EmitTo::First(n) => n.min(self.values.len()),
        };
        let rest = self.values.split_off(n);
        let first = std::mem::replace(&mut self.values, rest);
        let null_group = self.null_group.take();
        let (emitted_null, kept_null) = match null_group {
            Some(g) if g < n => (Some(g), None),
            Some(g) => (None, Some(g - n)),
            None => (None, None),
        };
        self.null_group = kept_null;
        // The groups kept are numbered from 0 again.
        self.slots.iter_mut().for_each(|s| {
            *s = match *s {
                UNSEEN => UNSEEN,
                g if (g as usize) < n => UNSEEN,
                g => g - n as u32,
            }
        });
        Ok(vec![Self::array(first, emitted_null)])
    }

    fn clear_shrink(&mut self, _num_rows: usize) {
        self.values = Vec::new();
        self.slots = Vec::new();
        self.null_group = None;
        self.hashed = None;
    }
}
