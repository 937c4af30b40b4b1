//! The db-benchmark join tables: `x` (N rows) and `small`, `medium`, `big` (N/1e6, N/1e3, N
//! rows). For each key cardinality n, keys are a random permutation of 1..=1.1n: 0.9n appear
//! on both sides, 0.1n only in x, 0.1n only on the right.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
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

/// x and big: the three integer ids, the same ids as `"id<n>"` strings, and a value.
fn three_ids(
    schema: &SchemaRef,
    a: &[i64],
    b: &[i64],
    c: &[i64],
    v: ArrayRef,
) -> Result<RecordBatch> {
    RecordBatch::try_new(
        schema.clone(),
        vec![
            int64s(a.iter().copied()),
            int64s(b.iter().copied()),
            int64s(c.iter().copied()),
            id_strings(a),
            id_strings(b),
            id_strings(c),
            v,
        ],
    )
    .map_err(|e| Error::internal(e.to_string()))
}

fn field(name: &str, dt: DataType) -> Field {
    Field::new(name, dt, false)
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
        let build = |e: datafusion::arrow::error::ArrowError| Error::internal(e.to_string());

        // x: every id sampled from the keys present in x.
        let x_schema = Arc::new(Schema::new(vec![
            field("id1", DataType::Int64),
            field("id2", DataType::Int64),
            field("id3", DataType::Int64),
            field("id4", DataType::Utf8),
            field("id5", DataType::Utf8),
            field("id6", DataType::Utf8),
            field("v1", DataType::Float64),
        ]));
        for (p, range) in row_ranges(self.rows, self.partitions)
            .into_iter()
            .enumerate()
        {
            let n = (range.end - range.start) as usize;
            let (a, b, c) = (
                sample(&mut rng, &k1.left, n),
                sample(&mut rng, &k2.left, n),
                sample(&mut rng, &k3.left, n),
            );
            let v = floats(&mut rng, n);
            let batch = three_ids(&x_schema, &a, &b, &c, v)?;
            write_file(&dir.join("x").join(part_name(p, fmt)), &batch, fmt)?;
        }

        // small: one row per right key of the smallest cardinality.
        let mut ids = k1.right.clone();
        ids.shuffle(&mut rng);
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                field("id1", DataType::Int64),
                field("id4", DataType::Utf8),
                field("v2", DataType::Float64),
            ])),
            vec![
                int64s(ids.iter().copied()),
                id_strings(&ids),
                floats(&mut rng, ids.len()),
            ],
        )
        .map_err(build)?;
        write_file(&dir.join("small").join(part_name(0, fmt)), &batch, fmt)?;

        // medium: one row per right key of the middle cardinality.
        let mut ids2 = k2.right.clone();
        ids2.shuffle(&mut rng);
        let ids1 = sample(&mut rng, &k1.right, ids2.len());
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                field("id1", DataType::Int64),
                field("id2", DataType::Int64),
                field("id4", DataType::Utf8),
                field("id5", DataType::Utf8),
                field("v2", DataType::Float64),
            ])),
            vec![
                int64s(ids1.iter().copied()),
                int64s(ids2.iter().copied()),
                id_strings(&ids1),
                id_strings(&ids2),
                floats(&mut rng, ids2.len()),
            ],
        )
        .map_err(build)?;
        write_file(&dir.join("medium").join(part_name(0, fmt)), &batch, fmt)?;

        // big: one row per right key of the largest cardinality.
        let mut ids3 = k3.right.clone();
        ids3.shuffle(&mut rng);
        let big_schema = Arc::new(Schema::new(vec![
            field("id1", DataType::Int64),
            field("id2", DataType::Int64),
            field("id3", DataType::Int64),
            field("id4", DataType::Utf8),
            field("id5", DataType::Utf8),
            field("id6", DataType::Utf8),
            field("v2", DataType::Float64),
        ]));
        for (p, range) in row_ranges(ids3.len() as u64, self.partitions)
            .into_iter()
            .enumerate()
        {
            let c = &ids3[range.start as usize..range.end as usize];
            let n = c.len();
            let (a, b) = (
                sample(&mut rng, &k1.right, n),
                sample(&mut rng, &k2.right, n),
            );
            let v = floats(&mut rng, n);
            let batch = three_ids(&big_schema, &a, &b, c, v)?;
            write_file(&dir.join("big").join(part_name(p, fmt)), &batch, fmt)?;
        }
        Ok(dir)
    }
}
