//! Key filters across stages. A partitioned join's two sides are shuffled by its keys in
//! separate stages; when the join drops the rows of its right side whose keys its left side
//! lacks (an inner join, a semi or anti join of the left side…), the right side's stage need
//! not shuffle those rows at all. So the left side's stage records the distinct hashes of its
//! keys beside its shuffle ([`KeyHashes`]), the right side's stage runs after it, and a
//! [`KeyFilterExec`] at the top of its sub-plan drops the rows whose key hash is not among
//! them (a Bloom filter, [`KeyBloom`]: a false positive only keeps a row the join then
//! drops). TPC-H q21 shuffles `lineitem` to meet the orders of 734,523 late `lineitem` rows:
//! filtered, only those orders' rows cross the store. Spark's runtime Bloom filters and
//! DataFusion's dynamic join filters do the same within one process.
//!
//! A left side that scans a whole table without a filter gets none: it has every key of its
//! table, and the right side would wait for it to keep about every row.
//!
//! A filter is an optimisation only: a source task with too many keys records none, and a
//! stage whose tasks' hashes cannot all be read runs unfiltered.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

use super::exchange::ShuffleSource;
use super::process_cache::{Cell, ProcessCache};
use crate::one_input::only_input;

/// Seeds the key hashes. Both sides hash with it; it is not the hash partitioning's, whose
/// value within one partition is fixed modulo the partition count.
const KEY_SEED: u64 = 0x6b61_736b_6b65_7973;

/// The most distinct keys a source task records; a task with more records none (the filter
/// would keep most rows anyway, and the hashes would take memory the task needs).
pub const MAX_TASK_KEYS: usize = 4 << 20;

/// The keys a task may record with `pool` bytes of memory pool: its hashes (up to twice
/// that many before they are deduplicated, 8 bytes each) are held beside what the pool
/// counts, so at most a sixteenth of it.
pub fn task_keys(pool: Option<usize>) -> usize {
    match pool {
        Some(bytes) => (bytes / 16 / 16).clamp(1 << 10, MAX_TASK_KEYS),
        None => MAX_TASK_KEYS,
    }
}

/// The most keys of a whole source stage a filter is built from (its Bloom filter then
/// takes 32 MiB in each process that runs tasks of the filtered stage).
pub const MAX_FILTER_KEYS: u64 = 16 << 20;

/// Rows a filter sees before it judges whether it is worth its probes.
const JUDGE_AFTER_ROWS: u64 = 1 << 20;

/// A filter that keeps more than this share of the rows it has seen stops filtering.
const WORTH_KEEPING: f64 = 0.9;

/// Each row's hash of `keys` evaluated over `batch`, into `out`.
pub fn hash_keys(
    keys: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
    out: &mut Vec<u64>,
) -> DfResult<()> {
    let arrays = keys
        .iter()
        .map(|k| k.evaluate(batch)?.into_array(batch.num_rows()))
        .collect::<DfResult<Vec<ArrayRef>>>()?;
    out.clear();
    // Null keys leave their row's hash as it starts: zero on both sides.
    out.resize(batch.num_rows(), 0);
    create_hashes(&arrays, &RandomState::with_seed(KEY_SEED), out)?;
    Ok(())
}

/// A source task's distinct key hashes, gathered as its rows go to the shuffle.
pub struct KeyHashes {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    most: usize,
    hashes: Vec<u64>,
    row: Vec<u64>,
    too_many: bool,
}

impl KeyHashes {
    /// Gathers the hashes of `keys`, the expressions the task's shuffle is partitioned by, up
    /// to `most` distinct ones ([`task_keys`]).
    pub fn new(keys: Vec<Arc<dyn PhysicalExpr>>, most: usize) -> KeyHashes {
        KeyHashes {
            keys,
            most,
            hashes: Vec::new(),
            row: Vec::new(),
            too_many: false,
        }
    }

    /// Adds the keys of `batch`.
    pub fn push(&mut self, batch: &RecordBatch) -> DfResult<()> {
        if self.too_many {
            return Ok(());
        }
        hash_keys(&self.keys, batch, &mut self.row)?;
        self.hashes.extend_from_slice(&self.row);
        if self.hashes.len() > 2 * self.most {
            self.dedup();
        }
        Ok(())
    }

    fn dedup(&mut self) {
        self.hashes.sort_unstable();
        self.hashes.dedup();
        if self.hashes.len() > self.most {
            self.too_many = true;
            self.hashes = Vec::new();
        }
    }

    /// The distinct hashes, sorted, as little-endian bytes, and how many; `None` when there
    /// were too many.
    pub fn finish(mut self) -> Option<(Bytes, u64)> {
        self.dedup();
        if self.too_many {
            return None;
        }
        let bytes: Vec<u8> = self.hashes.iter().flat_map(|h| h.to_le_bytes()).collect();
        Some((Bytes::from(bytes), self.hashes.len() as u64))
    }
}

/// A blocked Bloom filter of key hashes: each key sets three bits of one 64-bit word, so a
/// probe touches one cache line.
#[derive(Debug)]
pub struct KeyBloom {
    words: Vec<u64>,
    /// 64 minus log2 of the number of words: a mixed hash's top bits pick the word.
    shift: u32,
}

/// A hash's bits spread evenly (the finalizer of splitmix64): keys of one shuffle partition
/// share their hash modulo the partition count.
fn mix(h: u64) -> u64 {
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl KeyBloom {
    /// An empty filter for about `keys` keys, at 16 bits a key (about 1% false positives)
    /// up to 32 MiB.
    pub fn with_capacity(keys: u64) -> KeyBloom {
        let words = (keys / 4).clamp(1 << 10, 1 << 22).next_power_of_two();
        KeyBloom {
            words: vec![0; words as usize],
            shift: 64 - words.trailing_zeros(),
        }
    }

    fn at(&self, h: u64) -> (usize, u64) {
        let x = mix(h);
        let word = (x >> self.shift) as usize;
        let mask = (1u64 << (x & 63)) | (1u64 << ((x >> 6) & 63)) | (1u64 << ((x >> 12) & 63));
        (word, mask)
    }

    /// Adds a key hash.
    pub fn insert(&mut self, h: u64) {
        let (word, mask) = self.at(h);
        self.words[word] |= mask;
    }

    /// Whether a key of hash `h` may have been added (never false for one that was).
    pub fn may_contain(&self, h: u64) -> bool {
        let (word, mask) = self.at(h);
        self.words[word] & mask == mask
    }

    /// Adds the hashes of a source task's file (as [`KeyHashes::finish`] wrote them).
    pub fn insert_file(&mut self, bytes: &[u8]) {
        for h in bytes.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(h);
            self.insert(u64::from_le_bytes(b));
        }
    }

    /// The bytes it holds.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// A stage's key filter, once built.
pub type FilterCell = Cell<Option<Arc<KeyBloom>>>;

/// The key filters of the stages being filtered in this process, by store and stage.
static SHARED: ProcessCache<Option<Arc<KeyBloom>>> = ProcessCache::new();

/// The filter of `key` (the source stage's markers, with their store) shared with the
/// other tasks of this process: the tasks of a stage build it once instead of each reading
/// every hash.
pub fn shared_cell(key: String) -> Arc<FilterCell> {
    SHARED.cell(key)
}

/// Passes on the rows of its input whose keys stage `stage`'s tasks recorded (see the
/// module's text).
#[derive(Debug)]
pub struct KeyFilterExec {
    input: Arc<dyn ExecutionPlan>,
    stage: usize,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    source: Arc<dyn ShuffleSource>,
    metrics: ExecutionPlanMetricsSet,
}

impl KeyFilterExec {
    /// Filters `input` by the hashes of `keys` that stage `stage` recorded, read from
    /// `source`.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        stage: usize,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        source: Arc<dyn ShuffleSource>,
    ) -> KeyFilterExec {
        KeyFilterExec {
            input,
            stage,
            keys,
            source,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The stage whose key hashes it filters by.
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// The expressions it hashes.
    pub fn keys(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.keys
    }

    /// Its input.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for KeyFilterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        write!(
            f,
            "KeyFilterExec: keys=[{}] among those of stage {}",
            keys.join(", "),
            self.stage
        )
    }
}

/// How a running filter does.
struct Filtering {
    bloom: Option<Arc<KeyBloom>>,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    hashes: Vec<u64>,
    seen: u64,
    kept: u64,
    removed: Count,
}

impl Filtering {
    fn batch(&mut self, batch: RecordBatch) -> DfResult<RecordBatch> {
        let Some(bloom) = self.bloom.as_ref() else {
            return Ok(batch);
        };
        hash_keys(&self.keys, &batch, &mut self.hashes)?;
        let hashes = &self.hashes;
        let keep = BooleanArray::new(
            BooleanBuffer::collect_bool(hashes.len(), |i| bloom.may_contain(hashes[i])),
            None,
        );
        let kept = filter_record_batch(&batch, &keep)?;
        self.seen += batch.num_rows() as u64;
        self.kept += kept.num_rows() as u64;
        self.removed.add(batch.num_rows() - kept.num_rows());
        if self.seen >= JUDGE_AFTER_ROWS && self.kept as f64 > WORTH_KEEPING * self.seen as f64 {
            // Nearly every row passes: the probes cost more than the rows they remove.
            self.bloom = None;
        }
        Ok(kept)
    }
}

impl ExecutionPlan for KeyFilterExec {
    fn name(&self) -> &str {
        "KeyFilterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        let mut r = TreeNodeRecursion::Continue;
        for k in &self.keys {
            r = f(k)?;
            if r == TreeNodeRecursion::Stop {
                break;
            }
        }
        Ok(r)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(KeyFilterExec::new(
            only_input(children, "KeyFilterExec")?,
            self.stage,
            self.keys.clone(),
            Arc::clone(&self.source),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let source = Arc::clone(&self.source);
        let stage = self.stage;
        let mut filtering = Filtering {
            bloom: None,
            keys: self.keys.clone(),
            hashes: Vec::new(),
            seen: 0,
            kept: 0,
            removed: MetricBuilder::new(&self.metrics).counter("rows_removed", partition),
        };
        let stream = futures::stream::once(async move {
            filtering.bloom = source
                .key_filter(stage)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            Ok::<_, DataFusionError>(input.map(move |b| b.and_then(|b| filtering.batch(b))))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
