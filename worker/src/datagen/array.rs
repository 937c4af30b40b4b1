//! `kask gen array`: a Zarr v3 array of random values, for examples, tests and benchmarks.
//! Every chunk is seeded from the seed and its index, so the same arguments give the same
//! array whatever order the chunks are written in.

use std::path::Path;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::array::block::Block;
use crate::array::expr::DType;
use crate::array::zarr;
use crate::error::{Error, Result};
use crate::store::Store;

/// What to generate.
#[derive(Clone, Debug)]
pub struct ArrayGen {
    /// Shape.
    pub shape: Vec<u64>,
    /// Chunk shape.
    pub chunks: Vec<u64>,
    /// Element type.
    pub dtype: DType,
    /// Seed.
    pub seed: u64,
    /// Whether chunks are zstd-compressed (or stored raw).
    pub compress: bool,
}

fn chunk_values(dtype: DType, shape: &[usize], seed: u64) -> Block {
    let mut rng = StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let s = IxDyn(shape);
    fn from<T>(s: &IxDyn, v: Vec<T>) -> std::result::Result<ArrayD<T>, ndarray::ShapeError> {
        ArrayD::from_shape_vec(s.clone(), v)
    }
    let block = match dtype {
        DType::Bool => from(&s, (0..n).map(|_| rng.random::<bool>()).collect()).map(Block::Bool),
        DType::I32 => {
            from(&s, (0..n).map(|_| rng.random_range(-100..100)).collect()).map(Block::I32)
        }
        DType::I64 => {
            from(&s, (0..n).map(|_| rng.random_range(-1000..1000)).collect()).map(Block::I64)
        }
        DType::F32 => from(&s, (0..n).map(|_| rng.random::<f32>()).collect()).map(Block::F32),
        DType::F64 => from(&s, (0..n).map(|_| rng.random::<f64>()).collect()).map(Block::F64),
    };
    block.unwrap_or_else(|_| Block::zeros(dtype, shape))
}

impl ArrayGen {
    /// Writes the array into directory `out` (created if missing).
    pub async fn write(&self, out: &Path) -> Result<u64> {
        if self.chunks.len() != self.shape.len() || self.chunks.contains(&0) {
            return Err(Error::spec(
                "--chunks",
                format!("needs {} lengths of at least 1", self.shape.len()),
            ));
        }
        std::fs::create_dir_all(out).map_err(|e| Error::Output {
            path: out.display().to_string(),
            message: e.to_string(),
        })?;
        let store = Store::local_dir(out)?;
        let array = Arc::new(zarr::new_array_with(
            zarr::storage_at(&store, ""),
            &self.shape,
            &self.chunks,
            self.dtype,
            self.compress,
        )?);
        store
            .put(
                "zarr.json",
                bytes::Bytes::from(zarr::metadata_json(&array)?),
            )
            .await?;
        let grid: Vec<u64> = self
            .shape
            .iter()
            .zip(&self.chunks)
            .map(|(s, c)| s.div_ceil(*c))
            .collect();
        let mut indices = Vec::new();
        zarr::for_each_index(&grid, |i| indices.push(i.to_vec()));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk: Vec<usize> = self.chunks.iter().map(|&c| c as usize).collect();
        let mut running = tokio::task::JoinSet::new();
        let count = indices.len() as u64;
        for (n, idx) in indices.into_iter().enumerate() {
            if running.len() >= cores
                && let Some(r) = running.join_next().await
            {
                r.map_err(|e| Error::internal(e.to_string()))??;
            }
            let (array, chunk, dtype) = (Arc::clone(&array), chunk.clone(), self.dtype);
            let seed = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n as u64;
            running.spawn(async move {
                let values = chunk_values(dtype, &chunk, seed);
                zarr::write_chunk(&array, &idx, values).await
            });
        }
        while let Some(r) = running.join_next().await {
            r.map_err(|e| Error::internal(e.to_string()))??;
        }
        Ok(count)
    }
}
