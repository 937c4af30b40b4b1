//! Chunk shapes and task blocks.
//!
//! Without an explicit `chunks`, the output's chunk shape is derived from the inputs' as
//! dask.array derives it, kept regular because Zarr's chunk grid is: elementwise operations
//! take, per axis, the smallest chunk length among the operands that are not broadcast along
//! it; reductions drop the reduced axes (or keep them as length 1 with `keepdims`); `a @ b`
//! takes `a`'s row chunks and `b`'s column chunks; `.T` reverses; slices keep the sliced
//! array's chunk lengths, and integer indices drop the axis. Every length is then clamped to
//! `1..=extent`.

use std::ops::Range;

use super::expr::{AxisIndex, Expr, Kind};
use super::zarr::ArrayMeta;
use std::collections::BTreeMap;

/// The derived chunk shape of a node.
pub fn derived(e: &Expr, inputs: &BTreeMap<String, ArrayMeta>) -> Vec<u64> {
    let raw = match &e.kind {
        Kind::Input(name) => inputs
            .get(name)
            .map(|m| m.chunks.clone())
            .unwrap_or_else(|| e.shape.clone()),
        Kind::Scalar(_) => vec![],
        Kind::Cast(a) | Kind::Unary(_, a) => derived(a, inputs),
        Kind::Binary(_, a, b) => elementwise(&e.shape, &[a, b], inputs),
        Kind::Where(c, a, b) => elementwise(&e.shape, &[c, a, b], inputs),
        Kind::Reduce {
            arg,
            axes,
            keepdims,
            ..
        } => derived(arg, inputs)
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| match (axes.contains(&i), *keepdims) {
                (false, _) => Some(c),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect(),
        Kind::MatMul(a, b) => {
            let (ca, cb) = (derived(a, inputs), derived(b, inputs));
            match (a.shape.len(), b.shape.len()) {
                (2, 2) => vec![ca[0], cb[1]],
                (2, 1) => vec![ca[0]],
                (1, 2) => vec![cb[1]],
                _ => vec![],
            }
        }
        Kind::Transpose(a) => {
            let mut c = derived(a, inputs);
            c.reverse();
            c
        }
        Kind::Slice(a, idx) => derived(a, inputs)
            .into_iter()
            .zip(idx)
            .filter_map(|(c, i)| match i {
                AxisIndex::Range { .. } => Some(c),
                AxisIndex::Index(_) => None,
            })
            .collect(),
    };
    clamp(&raw, &e.shape)
}

fn elementwise(
    shape: &[u64],
    operands: &[&Expr],
    inputs: &BTreeMap<String, ArrayMeta>,
) -> Vec<u64> {
    let n = shape.len();
    (0..n)
        .map(|axis| {
            operands
                .iter()
                .filter_map(|o| {
                    let d = o.shape.len();
                    let i = (axis + d).checked_sub(n)?;
                    (o.shape[i] == shape[axis]).then(|| derived(o, inputs).get(i).copied())?
                })
                .min()
                .unwrap_or(shape[axis])
        })
        .collect()
}

/// Chunk lengths clamped to `1..=extent` (an empty axis keeps length 1).
pub fn clamp(chunks: &[u64], shape: &[u64]) -> Vec<u64> {
    shape
        .iter()
        .enumerate()
        .map(|(i, &s)| chunks.get(i).copied().unwrap_or(s).min(s).max(1))
        .collect()
}

/// Grows a block from `chunks` by whole multiples, axis by axis in `order`, doubling while
/// the block stays under `target` elements and inside the shape.
pub fn grow(chunks: &[u64], shape: &[u64], order: &[usize], target: u64) -> Vec<u64> {
    let mut block = chunks.to_vec();
    let size = |b: &[u64]| b.iter().product::<u64>();
    for &axis in order {
        while block[axis] < shape[axis] && size(&block) * 2 <= target {
            block[axis] = (block[axis] * 2).min(shape[axis].div_ceil(chunks[axis]) * chunks[axis]);
        }
    }
    block
}

/// Blocks per axis.
pub fn grid(shape: &[u64], block: &[u64]) -> Vec<u64> {
    shape
        .iter()
        .zip(block)
        .map(|(s, b)| s.div_ceil(*b))
        .collect()
}

/// The block index of task `t` (row-major).
pub fn block_index(grid: &[u64], t: usize) -> Vec<u64> {
    let mut rest = t as u64;
    let mut idx = vec![0; grid.len()];
    for axis in (0..grid.len()).rev() {
        idx[axis] = rest % grid[axis].max(1);
        rest /= grid[axis].max(1);
    }
    idx
}

/// The task of a block index (row-major).
pub fn task_of(grid: &[u64], idx: &[u64]) -> usize {
    let mut t = 0u64;
    for (g, i) in grid.iter().zip(idx) {
        t = t * g + i;
    }
    t as usize
}

/// The region block `idx` covers, cut at the shape's end.
pub fn region(shape: &[u64], block: &[u64], idx: &[u64]) -> Vec<Range<u64>> {
    shape
        .iter()
        .zip(block)
        .zip(idx)
        .map(|((s, b), i)| (i * b).min(*s)..((i + 1) * b).min(*s))
        .collect()
}

/// Number of tasks a grid makes (1 for a 0-d grid; 0 when an axis is empty).
pub fn tasks(grid: &[u64]) -> usize {
    grid.iter().product::<u64>() as usize
}
