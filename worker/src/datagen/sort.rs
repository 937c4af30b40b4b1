//! Records for a sort benchmark, after the Sort Benchmark's GraySort: 100 bytes each, a 10-byte
//! key of random bytes and a 90-byte payload, here as two fixed-size binary columns of Parquet.
//!
//! The payload is, as `gensort`'s, mostly ASCII that compresses: the record's number in 32 hex
//! digits (so a sorted output can be checked to hold every record once), two spaces, then 52
//! letters in blocks of four that follow the record's number, `\r\n` and two spaces.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, FixedSizeBinaryBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::{GenFormat, joined, part_name, row_ranges};
use crate::error::{Error, Result};

/// Bytes of one record.
pub const RECORD: u64 = 100;
/// Bytes of a record's key.
pub const KEY: usize = 10;
/// Bytes of a record's payload.
pub const PAYLOAD: usize = 90;

/// Records per row group and per batch written: 100 MB of records.
const BATCH: u64 = 1 << 20;

/// Parameters of `kask gen sort`.
#[derive(Clone, Debug)]
pub struct SortGen {
    /// Records (`--bytes` / 100).
    pub records: u64,
    /// Random seed.
    pub seed: u64,
    /// Files.
    pub partitions: usize,
}

impl SortGen {
    /// The data set's name, its number of records: `sort_100000000` for 10 GB.
    pub fn table_name(&self) -> String {
        format!("sort_{}", self.records)
    }

    /// Writes the records under `out/<table name>/`, one file per partition, as many files at
    /// once as the machine has cores; returns that directory.
    pub fn write(&self, out: &Path) -> Result<PathBuf> {
        if self.records == 0 {
            return Err(Error::spec(
                "--bytes",
                "needs at least one record (100 bytes)",
            ));
        }
        let dir = out.join(self.table_name());
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let ranges = row_ranges(self.records, self.partitions);
        let threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .min(ranges.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (ranges, next, dir) = (&ranges, &next, &dir);
                    scope.spawn(move || -> Result<()> {
                        loop {
                            let p = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(range) = ranges.get(p) else {
                                return Ok(());
                            };
                            let seed = self.seed.wrapping_mul(1_000_003).wrapping_add(p as u64);
                            let path = dir.join(part_name(p, GenFormat::Parquet));
                            write_part(&path, range.clone(), seed)?;
                        }
                    })
                })
                .collect();
            joined(handles)
        })?;
        Ok(dir)
    }
}

/// The records' schema: `key` and `payload`, fixed-size binary, never null.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::FixedSizeBinary(KEY as i32), false),
        Field::new("payload", DataType::FixedSizeBinary(PAYLOAD as i32), false),
    ]))
}

/// Writes records `rows` (their numbers) with keys from a generator seeded with `seed`.
fn write_part(path: &Path, rows: std::ops::Range<u64>, seed: u64) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    // Random keys do not repeat: dictionaries would only cost time.
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(BATCH as usize))
        .build();
    let mut w = ArrowWriter::try_new(file, schema(), Some(props)).map_err(|e| io_err(path, e))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut at = rows.start;
    while at < rows.end {
        let end = (at + BATCH).min(rows.end);
        let batch = records(&mut rng, at..end)?;
        w.write(&batch).map_err(|e| io_err(path, e))?;
        at = end;
    }
    w.close().map_err(|e| io_err(path, e))?;
    Ok(())
}

/// Records `rows` (their numbers), keys drawn from `rng`.
pub fn records(rng: &mut StdRng, rows: std::ops::Range<u64>) -> Result<RecordBatch> {
    let n = (rows.end - rows.start) as usize;
    let mut keys = FixedSizeBinaryBuilder::with_capacity(n, KEY as i32);
    let mut payloads = FixedSizeBinaryBuilder::with_capacity(n, PAYLOAD as i32);
    let mut key = [0u8; KEY];
    for row in rows {
        rng.fill_bytes(&mut key);
        keys.append_value(key).map_err(internal)?;
        payloads.append_value(payload(row)).map_err(internal)?;
    }
    let columns: Vec<ArrayRef> = vec![Arc::new(keys.finish()), Arc::new(payloads.finish())];
    RecordBatch::try_new(schema(), columns).map_err(internal)
}

/// Record `row`'s payload: its number in 32 hex digits, two spaces, 13 blocks of four letters,
/// `\r\n`, two spaces.
pub fn payload(row: u64) -> [u8; PAYLOAD] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut p = [0u8; PAYLOAD];
    let number = u128::from(row);
    for (i, b) in p[..32].iter_mut().enumerate() {
        *b = HEX[((number >> (4 * (31 - i))) & 0xF) as usize];
    }
    p[32] = b' ';
    p[33] = b' ';
    for block in 0..13 {
        let letter = b'A' + ((row + block as u64) % 26) as u8;
        p[34 + 4 * block..38 + 4 * block].fill(letter);
    }
    p[86] = b'\r';
    p[87] = b'\n';
    p[88] = b' ';
    p[89] = b' ';
    p
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(e.to_string())
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}
