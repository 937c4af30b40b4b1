//! Zarr arrays on the job's object store, through zarrs: opening inputs (v3, or v2), checking
//! that every chunk is there, reading regions as [`Block`]s, and writing output chunks.

use std::ops::Range;
use std::sync::Arc;

use ndarray::ArrayD;
use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
use serde::{Deserialize, Serialize};
use zarrs::array::{Array, ArrayBuilder, ArraySubset, data_type};
use zarrs::storage::StorageError;
use zarrs_object_store::AsyncObjectStore;

use super::block::Block;
use super::expr::DType;
use kask_api::MissingChunks;
use kask_core::error::{Error, Result};
use kask_core::store::Store;

/// The object store's failure beneath a zarrs error (or any error), if that is what it is:
/// [`kask_core::error::store_failure`], looking through zarrs' errors as well.
pub fn store_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(why) = zarr_storage_failure(err) {
            return Some(why);
        }
        cur = err.source();
    }
    kask_core::error::store_failure(e)
}

/// zarrs wraps the store's failures transparently (its errors' `source` skips them), so its
/// errors are matched by variant: a storage error, or one inside a codec error.
fn zarr_storage_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use zarrs::array::{ArrayCreateError, ArrayError, CodecError};
    use zarrs::storage::StorageError;
    let storage = if let Some(e) = err.downcast_ref::<ArrayError>() {
        match e {
            ArrayError::StorageError(s) | ArrayError::CodecError(CodecError::StorageError(s)) => s,
            ArrayError::CodecError(CodecError::IOError(io)) => return Some(io.to_string()),
            _ => return None,
        }
    } else if let Some(ArrayCreateError::StorageError(s)) = err.downcast_ref::<ArrayCreateError>() {
        s
    } else {
        err.downcast_ref::<StorageError>()?
    };
    // Other is how zarrs_object_store passes on object_store's errors.
    matches!(storage, StorageError::Other(_) | StorageError::IOError(_))
        .then(|| storage.to_string())
}

/// zarrs' view of a directory of the job's store.
pub type ZarrStore = AsyncObjectStore<PrefixStore<Arc<dyn ObjectStore>>>;
/// An array in a directory of the job's store.
pub type ZarrArray = Array<ZarrStore>;

/// What the plan records of an array: enough to check and plan without opening it again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArrayMeta {
    /// The array's directory, relative to the store root.
    pub path: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// The regular chunk grid's chunk shape.
    pub chunks: Vec<u64>,
    /// The NumPy dtype name (`float64`, ...).
    pub dtype: String,
    /// What a missing chunk means.
    #[serde(default)]
    pub missing_chunks: MissingChunks,
}

impl ArrayMeta {
    /// The dtype.
    pub fn dtype(&self) -> Result<DType> {
        dtype_from_name(&self.dtype)
            .ok_or_else(|| Error::internal(format!("the plan names dtype {:?}", self.dtype)))
    }
}

/// The dtype of a NumPy name.
pub fn dtype_from_name(name: &str) -> Option<DType> {
    [DType::Bool, DType::I32, DType::I64, DType::F32, DType::F64]
        .into_iter()
        .find(|d| d.name() == name)
}

/// The zarrs storage for directory `dir` (relative to the store root).
pub fn storage_at(store: &Store, dir: &str) -> Arc<ZarrStore> {
    storage_over(Arc::clone(&store.inner), store, dir)
}

/// The zarrs storage for directory `dir` of `store`, reading and writing through `inner` (the
/// store itself, or a wrapper around it).
pub fn storage_over(
    inner: Arc<dyn object_store::ObjectStore>,
    store: &Store,
    dir: &str,
) -> Arc<ZarrStore> {
    Arc::new(AsyncObjectStore::new(PrefixStore::new(
        inner,
        store.path(dir),
    )))
}

fn storage_error(store: &Store, what: &str, e: &StorageError) -> Error {
    Error::Storage {
        url: store.url.clone(),
        message: format!("{what}: {e}"),
    }
}

/// Opens input `name` at `path` and describes it, refusing dtypes and chunk grids kask does
/// not compute with.
pub async fn open_input(
    store: &Store,
    name: &str,
    path: &str,
    missing: MissingChunks,
) -> Result<(ZarrArray, ArrayMeta)> {
    let array = Array::async_open(storage_at(store, path), "/")
        .await
        .map_err(|e| match e {
            zarrs::array::ArrayCreateError::StorageError(s) if store_failure(&s).is_some() => {
                storage_error(store, &format!("opening Zarr array {path}"), &s)
            }
            zarrs::array::ArrayCreateError::MissingMetadata => Error::input(
                name,
                format!("{path} is not a Zarr array: it has no zarr.json (v3) or .zarray (v2)"),
            ),
            other => Error::input(name, format!("{path}: {other}")),
        })?;
    let dtype = dtype_of(&array).ok_or_else(|| {
        Error::input(
            name,
            format!(
                "{path} holds {}; kask computes with bool, int32, int64, float32 and float64",
                data_type_text(&array)
            ),
        )
    })?;
    let shape = array.shape().to_vec();
    let zeros = vec![0; shape.len()];
    let chunks: Vec<u64> = array
        .chunk_shape(&zeros)
        .map_err(|e| Error::input(name, format!("{path}: {e}")))?
        .iter()
        .map(|n| n.get())
        .collect();
    let regular = shape
        .iter()
        .zip(&chunks)
        .map(|(s, c)| s.div_ceil(*c))
        .eq(array.chunk_grid_shape().iter().copied());
    if !regular {
        return Err(Error::input(
            name,
            format!("{path} has an irregular chunk grid; kask reads regular chunk grids"),
        ));
    }
    Ok((
        array,
        ArrayMeta {
            path: path.trim_matches('/').to_string(),
            shape,
            chunks,
            dtype: dtype.name().to_string(),
            missing_chunks: missing,
        },
    ))
}

fn dtype_of(array: &ZarrArray) -> Option<DType> {
    let t = array.data_type();
    [
        (data_type::bool(), DType::Bool),
        (data_type::int32(), DType::I32),
        (data_type::int64(), DType::I64),
        (data_type::float32(), DType::F32),
        (data_type::float64(), DType::F64),
    ]
    .into_iter()
    .find(|(d, _)| d == t)
    .map(|(_, k)| k)
}

fn data_type_text(array: &ZarrArray) -> String {
    serde_json::to_value(array.metadata())
        .ok()
        .and_then(|m| m.get("data_type").or_else(|| m.get("dtype")).cloned())
        .map(|v| v.to_string())
        .unwrap_or_else(|| "a data type".into())
}

/// Fails when a chunk of the array is not in storage (unless missing chunks are the fill
/// value): a lost chunk would otherwise read as zeros.
pub async fn check_chunks(
    store: &Store,
    name: &str,
    array: &ZarrArray,
    meta: &ArrayMeta,
) -> Result<()> {
    if meta.missing_chunks == MissingChunks::Fill {
        return Ok(());
    }
    let present: std::collections::HashSet<String> = store
        .list(&meta.path)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let grid = array.chunk_grid_shape().to_vec();
    let total: u64 = grid.iter().product();
    let mut missing = Vec::new();
    let mut count = 0u64;
    for_each_index(&grid, |idx| {
        let key = array.chunk_key(idx);
        let path = format!("{}/{}", meta.path, key.as_str());
        if !present.contains(&path) {
            count += 1;
            if missing.len() < 3 {
                missing.push(format!("{} (chunk {idx:?})", key.as_str()));
            }
        }
    });
    if count > 0 {
        return Err(Error::input(
            name,
            format!(
                "{} of the {total} chunks of {} are missing, e.g. {}; if the writer skipped chunks that equal the fill value, set spec.array.inputs.{name}.missingChunks: fill",
                count,
                meta.path,
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Calls `f` with every index of a grid, in row-major order.
pub fn for_each_index(grid: &[u64], mut f: impl FnMut(&[u64])) {
    if grid.contains(&0) {
        return;
    }
    let mut idx = vec![0u64; grid.len()];
    loop {
        f(&idx);
        let mut axis = grid.len();
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            idx[axis] += 1;
            if idx[axis] < grid[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
}

/// Reads a region of an array as a block of its dtype; `name` is the input's name and `path`
/// the array's, for messages.
pub async fn read(
    array: &ZarrArray,
    name: &str,
    path: &str,
    region: &[Range<u64>],
    dtype: DType,
) -> Result<Block> {
    let subset = ArraySubset::new_with_ranges(region);
    let fail = |e: zarrs::array::ArrayError| match store_failure(&e) {
        Some(why) => Error::Storage {
            url: format!("array {path}"),
            message: format!("reading {region:?}: {why}"),
        },
        None => Error::input(name, format!("{path}: reading {region:?}: {e}")),
    };
    Ok(match dtype {
        DType::Bool => Block::Bool(
            array
                .async_retrieve_array_subset::<ArrayD<bool>>(&subset)
                .await
                .map_err(fail)?,
        ),
        DType::I32 => Block::I32(
            array
                .async_retrieve_array_subset::<ArrayD<i32>>(&subset)
                .await
                .map_err(fail)?,
        ),
        DType::I64 => Block::I64(
            array
                .async_retrieve_array_subset::<ArrayD<i64>>(&subset)
                .await
                .map_err(fail)?,
        ),
        DType::F32 => Block::F32(
            array
                .async_retrieve_array_subset::<ArrayD<f32>>(&subset)
                .await
                .map_err(fail)?,
        ),
        DType::F64 => Block::F64(
            array
                .async_retrieve_array_subset::<ArrayD<f64>>(&subset)
                .await
                .map_err(fail)?,
        ),
    })
}

/// An array kask writes (the output, or an intermediate result in scratch): Zarr v3, regular
/// chunks, zstd level 1, fill value zero.
pub fn new_array(
    storage: Arc<ZarrStore>,
    shape: &[u64],
    chunks: &[u64],
    dtype: DType,
) -> Result<ZarrArray> {
    new_array_with(storage, shape, chunks, dtype, true)
}

/// As [`new_array`], with chunks stored raw when `compress` is false (`kask gen array
/// --codec none`: random floats hardly compress, and raw chunks take decoding out of a
/// benchmark).
pub fn new_array_with(
    storage: Arc<ZarrStore>,
    shape: &[u64],
    chunks: &[u64],
    dtype: DType,
    compress: bool,
) -> Result<ZarrArray> {
    let (data_type, fill) = match dtype {
        DType::Bool => (data_type::bool(), zarrs::array::FillValue::from(false)),
        DType::I32 => (data_type::int32(), zarrs::array::FillValue::from(0i32)),
        DType::I64 => (data_type::int64(), zarrs::array::FillValue::from(0i64)),
        DType::F32 => (data_type::float32(), zarrs::array::FillValue::from(0f32)),
        DType::F64 => (data_type::float64(), zarrs::array::FillValue::from(0f64)),
    };
    let mut builder = ArrayBuilder::new(shape.to_vec(), chunks.to_vec(), data_type, fill);
    if compress {
        builder.bytes_to_bytes_codecs(vec![Arc::new(zarrs::array::codec::ZstdCodec::new(
            1, false,
        ))]);
    }
    builder
        .build(storage, "/")
        .map_err(|e| Error::internal(format!("building the Zarr metadata: {e}")))
}

/// The chunk key of chunk `indices`, relative to the array's directory.
pub fn chunk_key(array: &ZarrArray, indices: &[u64]) -> String {
    array.chunk_key(indices).as_str().to_string()
}

/// Writes one whole chunk, even when it equals the fill value (so that every chunk of a kask
/// array exists, and a missing one means a lost one).
pub async fn write_chunk(array: &ZarrArray, indices: &[u64], block: Block) -> Result<()> {
    let options = zarrs::array::CodecOptions::default().with_store_empty_chunks(true);
    let fail = |e: zarrs::array::ArrayError| match e {
        zarrs::array::ArrayError::StorageError(s) => Error::Storage {
            url: "the output array".into(),
            message: s.to_string(),
        },
        other => Error::internal(format!("writing chunk {indices:?}: {other}")),
    };
    match block {
        Block::Bool(a) => array.async_store_chunk_opt(indices, a, &options).await,
        Block::I32(a) => array.async_store_chunk_opt(indices, a, &options).await,
        Block::I64(a) => array.async_store_chunk_opt(indices, a, &options).await,
        Block::F32(a) => array.async_store_chunk_opt(indices, a, &options).await,
        Block::F64(a) => array.async_store_chunk_opt(indices, a, &options).await,
    }
    .map_err(fail)
}

/// The metadata document (`zarr.json`) of an array kask writes.
pub fn metadata_json(array: &ZarrArray) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(array.metadata())
        .map_err(|e| Error::internal(format!("serializing zarr.json: {e}")))
}
