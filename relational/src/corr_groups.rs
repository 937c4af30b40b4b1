//! `corr(x, y)` per group, for the partial aggregations Kask runs itself
//! ([`crate::radix_groups`], [`crate::dict_groups`]).
//!
//! db-benchmark's groupby q9 squares `corr(v1, v2)` by `id2, id4`. `perf record` of it at 1e7
//! rows put 30% of the samples in DataFusion's `CorrelationGroupsAccumulator::update_batch`:
//! it keeps a group's six sums in six vectors, so each row touches six cache lines and checks
//! six bounds, through a closure that reads each value from its array again. [`CorrGroups`]
//! keeps a group's sums side by side (one or two cache lines a row) and reads the two columns
//! as slices.
//!
//! Its partial states are DataFusion's, field for field and bit for bit (each group's sums are
//! added in the same order, with the same operations), so the final aggregation, DataFusion's
//! own, merges them as it would merge its own.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, NullBufferBuilder, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{Float64Type, UInt64Type};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::functions_aggregate::correlation::Correlation;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

/// Whether [`CorrGroups`] computes `aggregate`: DataFusion's `corr`, whose signature takes
/// two `Float64` arguments (others are cast to it).
pub fn computes(aggregate: &AggregateFunctionExpr) -> bool {
    aggregate.fun().inner().is::<Correlation>() && aggregate.expressions().len() == 2
}

/// One group's count and sums.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Moments {
    n: u64,
    x: f64,
    y: f64,
    xy: f64,
    xx: f64,
    yy: f64,
}

impl Moments {
    fn add(&mut self, x: f64, y: f64) {
        self.n += 1;
        self.x += x;
        self.y += y;
        self.xy += x * y;
        self.xx += x * x;
        self.yy += y * y;
    }

    /// Pearson's r, with DataFusion's rules for what has none: null for fewer than two pairs,
    /// a zero spread or one NaN sum; NaN when both sums are NaN.
    fn r(&self) -> Option<f64> {
        if self.x.is_nan() && self.y.is_nan() {
            return Some(f64::NAN);
        }
        if self.n < 2 || self.x.is_nan() || self.y.is_nan() {
            return None;
        }
        let mean_x = self.x / self.n as f64;
        let mean_y = self.y / self.n as f64;
        let numerator = self.xy - self.x * mean_y;
        let denominator = ((self.xx - self.x * mean_x) * (self.yy - self.y * mean_y)).sqrt();
        (denominator != 0.0).then(|| numerator / denominator)
    }
}

/// The group accumulator of `corr(x, y)`: each group's [`Moments`].
#[derive(Debug, Default)]
pub struct CorrGroups {
    groups: Vec<Moments>,
}

/// The rows of a batch that count: both values present and the filter true.
fn counted(
    x: &Float64Array,
    y: &Float64Array,
    filter: Option<&BooleanArray>,
) -> Option<NullBuffer> {
    let mut valid = NullBuffer::union(x.nulls(), y.nulls());
    if let Some(f) = filter {
        // A null filter value counts as false.
        let true_rows = match f.nulls() {
            Some(n) => f.values() & n.inner(),
            None => f.values().clone(),
        };
        valid = NullBuffer::union(valid.as_ref(), Some(&NullBuffer::new(true_rows)));
    }
    valid
}

fn float64<'a>(array: &'a ArrayRef, what: &str) -> DfResult<&'a Float64Array> {
    array.as_primitive_opt::<Float64Type>().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "CorrGroups: {what} is {}, not Float64",
            array.data_type()
        ))
    })
}

impl CorrGroups {
    fn take(&mut self, emit_to: EmitTo) -> Vec<Moments> {
        emit_to.take_needed(&mut self.groups)
    }
}

impl GroupsAccumulator for CorrGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        let [x, y] = values else {
            return Err(DataFusionError::Internal(format!(
                "CorrGroups: {} arguments, not 2",
                values.len()
            )));
        };
        let (x, y) = (float64(x, "x")?, float64(y, "y")?);
        if x.len() != group_indices.len() || y.len() != group_indices.len() {
            return Err(DataFusionError::Internal(
                "CorrGroups: arguments and group indices of different lengths".into(),
            ));
        }
        self.groups.resize(total_num_groups, Moments::default());
        let groups = &mut self.groups;
        let rows = group_indices.iter().zip(x.values()).zip(y.values());
        match counted(x, y, opt_filter) {
            None => {
                for ((&g, &x), &y) in rows {
                    groups[g].add(x, y);
                }
            }
            Some(valid) => {
                for (((&g, &x), &y), keep) in rows.zip(valid.iter()) {
                    if keep {
                        groups[g].add(x, y);
                    }
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let groups = self.take(emit_to);
        let mut nulls = NullBufferBuilder::new(groups.len());
        let values: Vec<f64> = groups
            .iter()
            .map(|m| match m.r() {
                Some(r) => {
                    nulls.append_non_null();
                    r
                }
                None => {
                    nulls.append_null();
                    0.0
                }
            })
            .collect();
        Ok(Arc::new(Float64Array::new(values.into(), nulls.finish())))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        Ok(states(&self.take(emit_to)))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        let [n, x, y, xy, xx, yy] = values else {
            return Err(DataFusionError::Internal(format!(
                "CorrGroups: {} state columns, not 6",
                values.len()
            )));
        };
        let n = n.as_primitive_opt::<UInt64Type>().ok_or_else(|| {
            DataFusionError::Internal(format!("CorrGroups: count state is {}", n.data_type()))
        })?;
        let sums = [x, y, xy, xx, yy]
            .into_iter()
            .map(|s| float64(s, "a sum state"))
            .collect::<DfResult<Vec<_>>>()?;
        if values
            .iter()
            .any(|v| v.null_count() > 0 || v.len() != group_indices.len())
        {
            return Err(DataFusionError::Internal(
                "CorrGroups: states with nulls (partial states have none) or not one a row".into(),
            ));
        }
        self.groups.resize(total_num_groups, Moments::default());
        for (row, &g) in group_indices.iter().enumerate() {
            let m = &mut self.groups[g];
            m.n += n.value(row);
            m.x += sums[0].value(row);
            m.y += sums[1].value(row);
            m.xy += sums[2].value(row);
            m.xx += sums[3].value(row);
            m.yy += sums[4].value(row);
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let [x, y] = values else {
            return Err(DataFusionError::Internal(format!(
                "CorrGroups: {} arguments, not 2",
                values.len()
            )));
        };
        let (x, y) = (float64(x, "x")?, float64(y, "y")?);
        let valid = counted(x, y, opt_filter);
        let rows: Vec<Moments> = (0..x.len())
            .map(|row| {
                let mut m = Moments::default();
                if valid.as_ref().is_none_or(|v| v.is_valid(row)) {
                    m.add(x.value(row), y.value(row));
                }
                m
            })
            .collect();
        Ok(states(&rows))
    }

    fn size(&self) -> usize {
        self.groups.capacity() * size_of::<Moments>()
    }
}

/// The state columns of `groups`, as DataFusion's accumulator gives them: the count, then
/// the sums of x, y, xy, xx and yy.
fn states(groups: &[Moments]) -> Vec<ArrayRef> {
    let column = |f: fn(&Moments) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(groups.iter().map(f).collect::<Vec<_>>()))
    };
    vec![
        Arc::new(UInt64Array::from(
            groups.iter().map(|m| m.n).collect::<Vec<_>>(),
        )),
        column(|m| m.x),
        column(|m| m.y),
        column(|m| m.xy),
        column(|m| m.xx),
        column(|m| m.yy),
    ]
}
