//! `kask gen`: the db-benchmark data sets (see `shared/bench/dbbench.md`), written as Parquet
//! or CSV files of contiguous rows.

pub mod array;
pub mod groupby;
pub mod join;
pub mod sort;
pub mod text;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use rand::Rng;
use rand::rngs::StdRng;

use crate::error::{Error, Result};

/// File format of generated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenFormat {
    /// Parquet (default).
    Parquet,
    /// CSV with a header.
    Csv,
}

/// `1e7` for 10000000, `2.5e6` for 2500000, as db-benchmark names its tables.
pub fn sci(n: u64) -> String {
    if n == 0 {
        return "0".into();
    }
    let exp = (n as f64).log10().floor() as i32;
    let mantissa = n as f64 / 10f64.powi(exp);
    let m = format!("{mantissa:.3}");
    let m = m.trim_end_matches('0').trim_end_matches('.');
    format!("{m}e{exp}")
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes one batch as one file.
pub fn write_file(path: &Path, batch: &RecordBatch, format: GenFormat) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    match format {
        GenFormat::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))
                .map_err(|e| io_err(path, e))?;
            w.write(batch).map_err(|e| io_err(path, e))?;
            w.close().map_err(|e| io_err(path, e))?;
        }
        GenFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(std::io::BufWriter::new(file));
            w.write(batch).map_err(|e| io_err(path, e))?;
        }
    }
    Ok(())
}

/// Waits for every generator thread; the first error (or panic) among them, if any.
pub(crate) fn joined(handles: Vec<std::thread::ScopedJoinHandle<'_, Result<()>>>) -> Result<()> {
    let results: Vec<Result<()>> = handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::internal("a generator thread panicked")))
        })
        .collect();
    results.into_iter().collect()
}

/// The file name of part `i`.
pub fn part_name(i: usize, format: GenFormat) -> String {
    match format {
        GenFormat::Parquet => format!("part-{i:05}.parquet"),
        GenFormat::Csv => format!("part-{i:05}.csv"),
    }
}

/// Row ranges of `rows` cut into `parts` contiguous pieces.
pub fn row_ranges(rows: u64, parts: usize) -> Vec<std::ops::Range<u64>> {
    let parts = parts.max(1) as u64;
    (0..parts)
        .map(|p| (rows * p / parts)..(rows * (p + 1) / parts))
        .collect()
}

/// Column builders that put a null in `nas` percent of rows.
pub struct Nulls {
    /// Percentage of nulls.
    pub pct: f64,
}

impl Nulls {
    fn null(&self, rng: &mut StdRng) -> bool {
        self.pct > 0.0 && rng.random::<f64>() * 100.0 < self.pct
    }

    /// Strings chosen from `values` uniformly.
    pub fn strings(&self, rng: &mut StdRng, n: usize, values: &[String]) -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * values.first().map_or(4, |v| v.len()));
        for _ in 0..n {
            if self.null(rng) {
                b.append_null();
            } else {
                b.append_value(&values[rng.random_range(0..values.len())]);
            }
        }
        Arc::new(b.finish())
    }

    /// Integers uniform in `[lo, hi]`.
    pub fn ints(&self, rng: &mut StdRng, n: usize, lo: i32, hi: i32) -> ArrayRef {
        let mut b = Int32Builder::with_capacity(n);
        for _ in 0..n {
            if self.null(rng) {
                b.append_null();
            } else {
                b.append_value(rng.random_range(lo..=hi));
            }
        }
        Arc::new(b.finish())
    }

    /// Floats uniform in `[0, 100)`, rounded to 6 decimals.
    pub fn floats(&self, rng: &mut StdRng, n: usize) -> ArrayRef {
        let mut b = Float64Builder::with_capacity(n);
        for _ in 0..n {
            if self.null(rng) {
                b.append_null();
            } else {
                b.append_value(round6(rng.random::<f64>() * 100.0));
            }
        }
        Arc::new(b.finish())
    }
}

/// Rounds to 6 decimals.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// An int64 column from values.
pub fn int64s(values: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = Int64Builder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

/// A string column `"id<value>"`.
pub fn id_strings(values: &[i64]) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(values.len(), values.len() * 10);
    let mut s = String::new();
    for v in values {
        use std::fmt::Write;
        s.clear();
        let _ = write!(s, "id{v}");
        b.append_value(&s);
    }
    Arc::new(b.finish())
}
