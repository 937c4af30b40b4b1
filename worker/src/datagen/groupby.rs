//! The db-benchmark groupby table `G1_<rows>_<groups>_<nas>_0`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{GenFormat, Nulls, joined, part_name, row_ranges, sci, write_file};
use crate::error::{Error, Result};

/// Parameters of `kask gen groupby`.
#[derive(Clone, Debug)]
pub struct GroupbyGen {
    /// Rows.
    pub rows: u64,
    /// Groups of the large-group keys (id1, id2, id4, id5).
    pub groups: u64,
    /// Percentage of nulls in every column.
    pub nas: u32,
    /// Random seed.
    pub seed: u64,
    /// Files.
    pub partitions: usize,
    /// Format.
    pub format: GenFormat,
}

impl GroupbyGen {
    /// The table's name, e.g. `G1_1e7_1e2_0_0`.
    pub fn table_name(&self) -> String {
        format!("G1_{}_{}_{}_0", sci(self.rows), sci(self.groups), self.nas)
    }

    /// Writes the table under `out/<table name>/` and returns that directory.
    pub fn write(&self, out: &Path) -> Result<PathBuf> {
        if self.groups == 0 || self.rows == 0 || self.groups > self.rows {
            return Err(Error::spec(
                "--groups",
                format!(
                    "needs 1 <= groups <= rows (got groups {}, rows {})",
                    self.groups, self.rows
                ),
            ));
        }
        let dir = out.join(self.table_name());
        let k = self.groups as i32;
        let small = (self.rows / self.groups).max(1) as i32;
        let large_ids: Vec<String> = (1..=k).map(|i| format!("id{i:03}")).collect();
        let small_ids: Vec<String> = (1..=small).map(|i| format!("id{i:010}")).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id1", DataType::Utf8, true),
            Field::new("id2", DataType::Utf8, true),
            Field::new("id3", DataType::Utf8, true),
            Field::new("id4", DataType::Int32, true),
            Field::new("id5", DataType::Int32, true),
            Field::new("id6", DataType::Int32, true),
            Field::new("v1", DataType::Int32, true),
            Field::new("v2", DataType::Int32, true),
            Field::new("v3", DataType::Float64, true),
        ]));
        let nulls = Nulls {
            pct: f64::from(self.nas),
        };
        let ranges = row_ranges(self.rows, self.partitions);
        std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .iter()
                .enumerate()
                .map(|(p, range)| {
                    let (schema, nulls, dir) = (schema.clone(), &nulls, &dir);
                    let (large_ids, small_ids) = (&large_ids, &small_ids);
                    let seed = self.seed.wrapping_mul(1_000_003).wrapping_add(p as u64);
                    let format = self.format;
                    let n = (range.end - range.start) as usize;
                    scope.spawn(move || {
                        let mut rng = StdRng::seed_from_u64(seed);
                        let columns = vec![
                            nulls.strings(&mut rng, n, large_ids),
                            nulls.strings(&mut rng, n, large_ids),
                            nulls.strings(&mut rng, n, small_ids),
                            nulls.ints(&mut rng, n, 1, k),
                            nulls.ints(&mut rng, n, 1, k),
                            nulls.ints(&mut rng, n, 1, small),
                            nulls.ints(&mut rng, n, 1, 5),
                            nulls.ints(&mut rng, n, 1, 5),
                            nulls.floats(&mut rng, n),
                        ];
                        let batch = RecordBatch::try_new(schema, columns)
                            .map_err(|e| Error::internal(e.to_string()))?;
                        write_file(&dir.join(part_name(p, format)), &batch, format)
                    })
                })
                .collect();
            joined(handles)
        })?;
        Ok(dir)
    }
}
