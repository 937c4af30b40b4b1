//! Evaluates the checked expression over one region of a node's index space: each node asks
//! its operands for exactly the region it needs (broadcast axes shrink to length 1, slices map
//! back to their source, `.T` reverses), and leaves read that region from Zarr. Reductions are
//! never evaluated here: earlier stages have written their results, which are leaves too.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use futures::future::BoxFuture;
use ndarray::{Slice, SliceInfoElem};
use tokio::sync::Mutex;

use super::block::{Block, each};
use super::block_cache::BlockCache;
use super::expr::{AxisIndex, Expr, Kind};
use super::zarr::{self, ZarrArray};
use super::{ArrayPlan, intermediate_dir, matmul};
use kask_core::error::{Error, Result};
use kask_core::store::Store;

/// The input blocks of matrix products, shared by the tasks of this process.
static OPERANDS: LazyLock<BlockCache> = LazyLock::new(BlockCache::default);

/// The cache's budget without a memory limit: a quarter of the operators' pool otherwise.
const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// The expression of one task, with its opened arrays.
pub struct Evaluator<'a> {
    store: &'a Store,
    array: &'a ArrayPlan,
    scratch: String,
    order: Vec<&'a Expr>,
    opened: Mutex<HashMap<String, Arc<ZarrArray>>>,
    read: AtomicU64,
    /// Threads for one matrix product (see [`product_threads`]).
    threads: usize,
}

/// Threads for one task's matrix products: a stage of fewer tasks than cores gives each task
/// the idle cores' share, so that a product of a single tile runs on every core.
pub fn product_threads(tasks: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / tasks.clamp(1, cores)).max(1)
}

/// The nodes of an expression in pre-order; a node's index is its id in the plan.
pub fn preorder(e: &Expr) -> Vec<&Expr> {
    fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
        out.push(e);
        for c in children(e) {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    walk(e, &mut out);
    out
}

/// A node's operands, in order.
pub fn children(e: &Expr) -> Vec<&Expr> {
    match &e.kind {
        Kind::Input(_) | Kind::Scalar(_) => vec![],
        Kind::Unary(_, a) | Kind::Cast(a) | Kind::Transpose(a) | Kind::Slice(a, _) => vec![a],
        Kind::Reduce { arg, .. } => vec![arg],
        Kind::Binary(_, a, b) | Kind::MatMul(a, b) => vec![a, b],
        Kind::Where(c, a, b) => vec![c, a, b],
    }
}

fn usize_shape(region: &[Range<u64>]) -> Vec<usize> {
    region.iter().map(|r| (r.end - r.start) as usize).collect()
}

/// The region of an operand that a broadcasting operation needs for `region` of its output.
fn operand_region(operand: &[u64], out: &[u64], region: &[Range<u64>]) -> Vec<Range<u64>> {
    let shift = out.len() - operand.len();
    operand
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            if len == 1 && out[i + shift] != 1 {
                0..1
            } else {
                region[i + shift].clone()
            }
        })
        .collect()
}

impl<'a> Evaluator<'a> {
    /// An evaluator of `root` for a task of the plan.
    pub fn new(store: &'a Store, array: &'a ArrayPlan, scratch: String, root: &'a Expr) -> Self {
        Evaluator {
            store,
            array,
            scratch,
            order: preorder(root),
            opened: Mutex::new(HashMap::new()),
            read: AtomicU64::new(0),
            threads: 1,
        }
    }

    /// The evaluator with `threads` threads for each matrix product.
    pub fn with_threads(self, threads: usize) -> Self {
        Evaluator {
            threads: threads.max(1),
            ..self
        }
    }

    /// Elements read from arrays so far.
    pub fn elements_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    async fn read_leaf(
        &self,
        array: &ZarrArray,
        name: &str,
        path: &str,
        region: &[Range<u64>],
        dtype: super::expr::DType,
    ) -> Result<Block> {
        let block = zarr::read(array, name, path, region, dtype).await?;
        self.read.fetch_add(block.len() as u64, Ordering::Relaxed);
        Ok(block)
    }

    /// A node's pre-order id.
    pub fn id(&self, e: &Expr) -> Result<usize> {
        self.order
            .iter()
            .position(|n| std::ptr::eq(*n, e))
            .ok_or_else(|| Error::internal("a node outside the expression"))
    }

    /// The node with pre-order id `id`.
    pub fn node(&self, id: usize) -> Result<&'a Expr> {
        self.order.get(id).copied().ok_or_else(|| {
            Error::internal(format!(
                "the plan names node {id}, which the expression lacks"
            ))
        })
    }

    async fn open(&self, key: &str, dir: &str) -> Result<Arc<ZarrArray>> {
        let mut opened = self.opened.lock().await;
        if let Some(a) = opened.get(key) {
            return Ok(Arc::clone(a));
        }
        let array = ZarrArray::async_open(zarr::storage_at(self.store, dir), "/")
            .await
            .map_err(|e| match super::zarr::store_failure(&e) {
                Some(why) => self.store.err_text(format!("opening {dir}"), why),
                None => Error::input(key, format!("opening {dir}: {e}")),
            })?;
        let array = Arc::new(array);
        opened.insert(key.to_string(), Arc::clone(&array));
        Ok(array)
    }

    /// Evaluates node `e` over `region` of its own index space.
    pub fn eval<'b>(&'b self, e: &'b Expr, region: Vec<Range<u64>>) -> BoxFuture<'b, Result<Block>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            match &e.kind {
                Kind::Input(name) => {
                    let meta = self
                        .array
                        .inputs
                        .get(name)
                        .ok_or_else(|| Error::internal(format!("no input {name}")))?;
                    let array = self.open(name, &meta.path).await?;
                    self.read_leaf(&array, name, &meta.path, &region, meta.dtype()?)
                        .await
                }
                Kind::Reduce { .. } => {
                    let id = self.id(e)?;
                    let dir = intermediate_dir(&self.scratch, id);
                    let array = self.open(&format!("n{id}"), &dir).await?;
                    self.read_leaf(&array, &format!("reduction n{id}"), &dir, &region, e.dtype)
                        .await
                }
                Kind::Scalar(v) => Ok(Block::scalar(*v, e.dtype)),
                Kind::Cast(a) => Ok(self.eval(a, region).await?.cast(e.dtype)),
                Kind::Unary(op, a) => self.eval(a, region).await?.unary(*op),
                Kind::Binary(op, a, b) => {
                    let x = self
                        .eval(a, operand_region(&a.shape, &e.shape, &region))
                        .await?;
                    let y = self
                        .eval(b, operand_region(&b.shape, &e.shape, &region))
                        .await?;
                    Block::binary(*op, &x, &y)
                }
                Kind::Where(c, a, b) => {
                    let c = self
                        .eval(c, operand_region(&c.shape, &e.shape, &region))
                        .await?;
                    let x = self
                        .eval(a, operand_region(&a.shape, &e.shape, &region))
                        .await?;
                    let y = self
                        .eval(b, operand_region(&b.shape, &e.shape, &region))
                        .await?;
                    Block::select(&c, &x, &y)
                }
                Kind::Transpose(a) => {
                    let mut r = region;
                    r.reverse();
                    Ok(self.eval(a, r).await?.transpose())
                }
                Kind::Slice(a, index) => self.slice(a, index, &region).await,
                Kind::MatMul(a, b) => self.matmul(e, a, b, &region).await,
            }
        })
    }

    async fn slice(&self, a: &Expr, index: &[AxisIndex], region: &[Range<u64>]) -> Result<Block> {
        let mut out_axis = 0;
        let mut source = Vec::with_capacity(index.len());
        let mut steps = Vec::with_capacity(index.len());
        for ix in index {
            match *ix {
                AxisIndex::Range { start, step, .. } => {
                    let r = &region[out_axis];
                    out_axis += 1;
                    if r.is_empty() {
                        source.push(start..start);
                    } else {
                        source.push(start + r.start * step..start + (r.end - 1) * step + 1);
                    }
                    steps.push(step as isize);
                }
                AxisIndex::Index(i) => {
                    source.push(i..i + 1);
                    steps.push(1);
                }
            }
        }
        let block = self.eval(a, source).await?;
        let block = if steps.iter().any(|&s| s != 1) {
            let info: Vec<SliceInfoElem> = steps
                .iter()
                .map(|&s| SliceInfoElem::from(Slice::new(0, None, s)))
                .collect();
            each!(block, x => x.slice(info.as_slice()).to_owned().into())
        } else {
            block
        };
        block.reshape(&usize_shape(region))
    }

    async fn matmul(&self, e: &Expr, a: &Expr, b: &Expr, region: &[Range<u64>]) -> Result<Block> {
        let k = a.shape.last().copied().unwrap_or(0);
        let step = self.k_step(a, k);
        let mut tile = matmul::zeros(e.dtype, &usize_shape(region));
        let mut k0 = 0;
        while k0 < k {
            let kr = k0..(k0 + step).min(k);
            let (ra, rb) = match (a.shape.len(), b.shape.len()) {
                (2, 2) => (
                    vec![region[0].clone(), kr.clone()],
                    vec![kr.clone(), region[1].clone()],
                ),
                (2, 1) => (vec![region[0].clone(), kr.clone()], vec![kr.clone()]),
                (1, 2) => (vec![kr.clone()], vec![kr.clone(), region[0].clone()]),
                _ => (vec![kr.clone()], vec![kr.clone()]),
            };
            let x = self.operand(a, ra).await?;
            let y = self.operand(b, rb).await?;
            matmul::accumulate(&mut tile, &x, &y, self.threads)?;
            k0 = kr.end;
        }
        Ok(matmul::finish(tile, e.dtype))
    }

    /// A block of a product's operand: an input's blocks through the process's cache, as the
    /// other tiles of the same row or column read them too; anything else evaluated here.
    async fn operand(&self, e: &Expr, region: Vec<Range<u64>>) -> Result<Arc<Block>> {
        let Kind::Input(name) = &e.kind else {
            return Ok(Arc::new(self.eval(e, region).await?));
        };
        // The job's scratch prefix names the job, whose id changes with its inputs' files.
        let key = format!("{}|{name}|{region:?}", self.scratch);
        let budget = kask_core::memory::pool_limit(&self.store.runtime)
            .map_or(DEFAULT_CACHE_BYTES, |pool| pool / 4);
        let block = OPERANDS
            .get_or_read(&key, budget, || self.eval(e, region.clone()))
            .await?;
        Ok(block)
    }

    /// How much of k one step of a product reads: whole chunks of the left operand, at least
    /// 512 wide so that the GEMM kernel runs long.
    fn k_step(&self, a: &Expr, k: u64) -> u64 {
        let chunk = super::chunks::derived(a, &self.array.inputs)
            .last()
            .copied()
            .unwrap_or(k)
            .max(1);
        let mut step = chunk;
        while step < 512 && step < k {
            step += chunk;
        }
        step.max(1)
    }
}
