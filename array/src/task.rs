//! One task of an array stage: evaluate its block, and write partial states or chunks under
//! the attempt's own prefix (or, for a reduction's intermediate result, straight into the
//! scratch array: its chunks are the same whichever attempt writes them).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use ndarray::{IxDyn, SliceInfoElem};

use super::block::{Block, each};
use super::chunks::{block_index, region, task_of};
use super::eval::{Evaluator, product_threads};
use super::expr::Kind;
use super::planner::{check_expr, kept_axes, result_axis};
use super::{ArrayPlan, ArrayStage, intermediate_dir, partial, zarr};
use kask_core::error::{Error, Result};
use kask_core::lineage::{Fetch, Recover, read_checked, with_recovery};
use kask_core::marker::{TaskFile, TaskMarker, latest_marker};
use kask_core::output::put_file;
use kask_core::plan::Plan;
use kask_core::store::Store;
use kask_core::store::checksum::Recorder;
use object_store::ObjectStore;

fn elements(region: &[Range<u64>]) -> u64 {
    region.iter().map(|r| r.end - r.start).product()
}

/// Runs task `task` of array stage `stage`, writing under `dir`.
pub async fn execute(
    store: &Store,
    plan: &Plan,
    stage: usize,
    task: usize,
    dir: &str,
    lineage: &dyn Recover,
) -> Result<TaskMarker> {
    let ap = &ArrayPlan::of(plan)?;
    let st = &ArrayStage::of(&plan.stages[stage])?;
    let job = plan
        .spec
        .array
        .as_ref()
        .ok_or_else(|| Error::internal("an array task of a job without spec.array"))?;
    let root = check_expr(job, &ap.inputs)?;
    let ev = Evaluator::new(store, ap, plan.scratch(), &root)
        .with_threads(product_threads(plan.stages[stage].tasks));
    let mut marker = TaskMarker {
        stage,
        task,
        ..TaskMarker::default()
    };
    match st {
        ArrayStage::Partials { node, block, grid } => {
            let e = ev.node(*node)?;
            let Kind::Reduce { op, arg, axes, .. } = &e.kind else {
                return Err(Error::internal(format!("node {node} is not a reduction")));
            };
            let r = region(&arg.shape, block, &block_index(grid, task));
            let values = ev.eval(arg, r.clone()).await?;
            let state = partial::of_block(*op, values, axes)?;
            let body = partial::encode(&state);
            let file = put_file(store, format!("{dir}/partial.bin"), 0, Bytes::from(body)).await?;
            marker.bytes_out = file.bytes;
            marker.files = vec![file];
        }
        ArrayStage::Combine {
            node,
            partials,
            block,
            grid,
            chunks,
            output,
        } => {
            let e = ev.node(*node)?;
            let Kind::Reduce {
                op,
                arg,
                axes,
                keepdims,
                ddof,
            } = &e.kind
            else {
                return Err(Error::internal(format!("node {node} is not a reduction")));
            };
            let idx = block_index(grid, task);
            let r = region(&e.shape, block, &idx);
            let Ok(ArrayStage::Partials { grid: pgrid, .. }) =
                ArrayStage::of(&plan.stages[*partials])
            else {
                return Err(Error::internal(
                    "a combine stage without its partials stage",
                ));
            };
            let mut state = None;
            let mut read = 0;
            for t in partial_tasks(&pgrid, &idx, axes, *keepdims, arg.shape.len()) {
                let m = latest_marker(store, plan, *partials, t)
                    .await?
                    .ok_or_else(|| {
                        Error::internal(format!("partials task {t} has not committed"))
                    })?;
                let states = with_recovery(lineage, m, |m| async move {
                    let mut out = Vec::new();
                    for f in &m.files {
                        let body = read_checked(store, &f.path, None, f.bytes, f.crc32c).await?;
                        let s = partial::decode(&body)
                            .map_err(|e| Fetch::Lost(format!("{}: {e}", f.path)))?;
                        out.push((f.bytes, s));
                    }
                    Ok(out)
                })
                .await?;
                for (bytes, s) in states {
                    read += bytes;
                    marker.rows_in += s.len() as u64;
                    state = Some(match state {
                        None => s,
                        Some(prev) => partial::merge(*op, prev, s)?,
                    });
                }
            }
            let state = state.ok_or_else(|| Error::internal("a combine task without partials"))?;
            let values = partial::finish(*op, state, *ddof)?.cast(e.dtype);
            let shape: Vec<usize> = r.iter().map(|x| (x.end - x.start) as usize).collect();
            let values = values.reshape(&shape)?;
            marker.bytes_in = read;
            marker.rows_out = elements(&r);
            if *output {
                marker.files = write_chunks(store, dir, &e.shape, chunks, &r, values).await?;
            } else {
                let to = intermediate_dir(&plan.scratch(), *node);
                let array =
                    zarr::new_array(zarr::storage_at(store, &to), &e.shape, chunks, e.dtype)?;
                let meta = zarr::metadata_json(&array)?;
                store
                    .put(&format!("{to}/zarr.json"), Bytes::from(meta))
                    .await?;
                write_region(&array, chunks, &r, values).await?;
            }
        }
        ArrayStage::Blocks { block, grid } => {
            let r = region(&root.shape, block, &block_index(grid, task));
            let values = ev.eval(&root, r.clone()).await?;
            marker.rows_out = elements(&r);
            marker.files = write_chunks(store, dir, &ap.shape, &ap.chunks, &r, values).await?;
        }
    }
    marker.rows_in = marker.rows_in.max(ev.elements_read());
    marker.bytes_out = marker.files.iter().map(|f| f.bytes).sum();
    Ok(marker)
}

/// The partials tasks whose blocks project onto combine block `idx`: every block index along
/// the reduced axes, with the kept axes fixed by `idx`.
fn partial_tasks(
    pgrid: &[u64],
    idx: &[u64],
    axes: &[usize],
    keepdims: bool,
    ndim: usize,
) -> Vec<usize> {
    let mut fixed = vec![0u64; ndim];
    for i in kept_axes(ndim, axes) {
        fixed[i] = idx[result_axis(i, axes, keepdims)];
    }
    let reduced_grid: Vec<u64> = axes.iter().map(|&a| pgrid[a]).collect();
    let mut out = Vec::new();
    zarr::for_each_index(&reduced_grid, |r| {
        let mut full = fixed.clone();
        for (k, &a) in axes.iter().enumerate() {
            full[a] = r[k];
        }
        out.push(task_of(pgrid, &full));
    });
    out
}

/// Writes the chunks of an output region under the attempt's prefix and names the files.
async fn write_chunks(
    store: &Store,
    dir: &str,
    shape: &[u64],
    chunks: &[u64],
    r: &[Range<u64>],
    values: Block,
) -> Result<Vec<TaskFile>> {
    let dtype = values.dtype();
    let recorder = Arc::new(Recorder::new(Arc::clone(&store.inner)));
    let storage = zarr::storage_over(Arc::clone(&recorder) as Arc<dyn ObjectStore>, store, dir);
    let array = zarr::new_array(storage, shape, chunks, dtype)?;
    let written = write_region(&array, chunks, r, values).await?;
    written
        .into_iter()
        .map(|(key, rows)| {
            let path = format!("{dir}/{key}");
            let (bytes, crc) = recorder.written(&store.path(&path)).ok_or_else(|| {
                Error::internal(format!(
                    "chunk {path} was written but not through the recorder"
                ))
            })?;
            Ok(TaskFile {
                path,
                rows,
                bytes,
                crc32c: Some(crc),
                partitions: vec![],
                window: 0,
                samples: vec![],
            })
        })
        .collect()
}

/// Writes every chunk of region `r` (which is a union of whole chunks, cut at the array's
/// end); returns each chunk's key and element count.
async fn write_region(
    array: &zarr::ZarrArray,
    chunks: &[u64],
    r: &[Range<u64>],
    values: Block,
) -> Result<Vec<(String, u64)>> {
    let first: Vec<u64> = r.iter().zip(chunks).map(|(x, c)| x.start / c).collect();
    let counts: Vec<u64> = r
        .iter()
        .zip(chunks)
        .map(|(x, c)| x.end.div_ceil(*c) - x.start / c)
        .collect();
    let mut jobs = Vec::new();
    zarr::for_each_index(&counts, |rel| {
        jobs.push(
            rel.iter()
                .zip(&first)
                .map(|(a, b)| a + b)
                .collect::<Vec<u64>>(),
        );
    });
    let mut written = Vec::with_capacity(jobs.len());
    for idx in jobs {
        let local: Vec<SliceInfoElem> = idx
            .iter()
            .zip(chunks)
            .zip(r)
            .map(|((i, c), x)| {
                let lo = (i * c).max(x.start) - x.start;
                let hi = ((i + 1) * c).min(x.end) - x.start;
                SliceInfoElem::from(lo as usize..hi as usize)
            })
            .collect();
        let full: Vec<usize> = chunks.iter().map(|&c| c as usize).collect();
        let piece = each!(&values, a => pad(a.slice(local.as_slice()).to_owned(), &full).into());
        let count = piece_elements(&local);
        zarr::write_chunk(array, &idx, piece).await?;
        written.push((zarr::chunk_key(array, &idx), count));
    }
    Ok(written)
}

fn piece_elements(local: &[SliceInfoElem]) -> u64 {
    local
        .iter()
        .map(|s| match s {
            SliceInfoElem::Slice { start, end, .. } => {
                (end.unwrap_or(*start) - start).unsigned_abs() as u64
            }
            _ => 1,
        })
        .product()
}

/// A chunk at the array's edge, padded with zeros (the fill value) to the full chunk shape
/// that Zarr stores.
fn pad<T: Clone + Default>(a: ndarray::ArrayD<T>, full: &[usize]) -> ndarray::ArrayD<T> {
    if a.shape() == full {
        return a;
    }
    let mut out = ndarray::ArrayD::from_elem(IxDyn(full), T::default());
    let info: Vec<SliceInfoElem> = a
        .shape()
        .iter()
        .map(|&n| SliceInfoElem::from(0..n))
        .collect();
    out.slice_mut(info.as_slice()).assign(&a);
    out
}
