//! The db-benchmark join tables: `x` (N rows) and `small`, `medium`, `big` (N/1e6, N/1e3, N
//! rows). For each key cardinality n, keys are a random permutation of 1..=1.1n: 0.9n appear
//! on both sides, 0.1n only in x, 0.1n only on the right.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::{GenFormat, id_strings, int64s, part_name, round6, row_ranges, sci, write_file};
use crate::error::{Error, Result};

/// Parameters of `kask gen join`.
#[derive(Clone, Debug)]
pub struct JoinGen {
    /// Rows of x and big.
    pub rows: u64,
    /// Random seed.
    pub seed: u64,
    /// Files for x and big.
    pub partitions: usize,
    /// Format.
    pub format: GenFormat,
}

/// The keys of one cardinality.
struct Keys {
    /// Keys present in x.
    left: Vec<i64>,
    /// Keys present on the right side.
    right: Vec<i64>,
}

fn keys(n: u64, rng: &mut StdRng) -> Keys {
    let n = n.max(1);
    let total = (n as f64 * 1.1).round().max(2.0) as i64;
    let mut all: Vec<i64> = (1..=total).collect();
    all.shuffle(rng);
    let both = ((n as f64) * 0.9).round().max(1.0) as usize;
    let only = ((total as usize).saturating_sub(both)) / 2;
    let left: Vec<i64> = all[..both + only].to_vec();
    let mut right: Vec<i64> = all[..both].to_vec();
    right.extend_from_slice(&all[both + only..]);
    Keys { left, right }
}

fn sample(rng: &mut StdRng, from: &[i64], n: usize) -> Vec<i64> {
    (0..n)
        .map(|_| from[rng.random_range(0..from.len())])
        .collect()
}

fn floats(rng: &mut StdRng, n: usize) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(
        (0..n).map(|_| round6(rng.random::<f64>() * 100.0)),
    ))
}

/// A join table: integer id columns named `int_names`, the same ids as `"id<n>"` strings in
/// columns named `str_names`, and a float value column.
fn id_table(
    int_names: &[&str],
    str_names: &[&str],
    value: &str,
    ids: &[&[i64]],
    v: ArrayRef,
) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (name, col) in int_names.iter().zip(ids) {
        fields.push(Field::new(*name, DataType::Int64, false));
        columns.push(int64s(col.iter().copied()));
    }
    for (name, col) in str_names.iter().zip(ids) {
        fields.push(Field::new(*name, DataType::Utf8, false));
        columns.push(id_strings(col));
    }
    fields.push(Field::new(value, DataType::Float64, false));
    columns.push(v);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::internal(e.to_string()))
}

impl JoinGen {
    /// The data set's name, e.g. `J1_1e7`.
    pub fn name(&self) -> String {
        format!("J1_{}", sci(self.rows))
    }

    /// Writes `out/J1_<rows>/{x,small,medium,big}/part-*.parquet` and returns the directory.
    pub fn write(&self, out: &Path) -> Result<PathBuf> {
        if self.rows < 1000 {
            return Err(Error::spec(
                "--rows",
                "the join data set needs at least 1000 rows",
            ));
        }
        let dir = out.join(self.name());
        let mut rng = StdRng::seed_from_u64(self.seed);
        let k1 = keys((self.rows / 1_000_000).max(1), &mut rng);
        let k2 = keys((self.rows / 1_000).max(1), &mut rng);
        let k3 = keys(self.rows, &mut rng);
        let fmt = self.format;

        // x: every id sampled from the keys present in x.
        for (p, range) in row_ranges(self.rows, self.partitions)
            .into_iter()
            .enumerate()
        {
            let n = (range.end - range.start) as usize;
            let a = sample(&mut rng, &k1.left, n);
            let b = sample(&mut rng, &k2.left, n);
            let c = sample(&mut rng, &k3.left, n);
            let v = floats(&mut rng, n);
            let batch = id_table(
                &["id1", "id2", "id3"],
                &["id4", "id5", "id6"],
                "v1",
                &[&a, &b, &c],
                v,
            )?;
            write_file(&dir.join("x").join(part_name(p, fmt)), &batch, fmt)?;
        }

        // small: one row per right key of the smallest cardinality.
        let mut ids = k1.right.clone();
        ids.shuffle(&mut rng);
        let v = floats(&mut rng, ids.len());
        let batch = id_table(&["id1"], &["id4"], "v2", &[&ids], v)?;
        write_file(&dir.join("small").join(part_name(0, fmt)), &batch, fmt)?;

        // medium: one row per right key of the middle cardinality.
        let mut ids2 = k2.right.clone();
        ids2.shuffle(&mut rng);
        let ids1 = sample(&mut rng, &k1.right, ids2.len());
        let v = floats(&mut rng, ids2.len());
        let batch = id_table(&["id1", "id2"], &["id4", "id5"], "v2", &[&ids1, &ids2], v)?;
        write_file(&dir.join("medium").join(part_name(0, fmt)), &batch, fmt)?;

        // big: one row per right key of the largest cardinality.
        let mut ids3 = k3.right.clone();
        ids3.shuffle(&mut rng);
        for (p, range) in row_ranges(ids3.len() as u64, self.partitions)
            .into_iter()
            .enumerate()
        {
            let c = &ids3[range.start as usize..range.end as usize];
            let a = sample(&mut rng, &k1.right, c.len());
            let b = sample(&mut rng, &k2.right, c.len());
            let v = floats(&mut rng, c.len());
            let batch = id_table(
                &["id1", "id2", "id3"],
                &["id4", "id5", "id6"],
                "v2",
                &[&a, &b, c],
                v,
            )?;
            write_file(&dir.join("big").join(part_name(p, fmt)), &batch, fmt)?;
        }
        Ok(dir)
    }
}
