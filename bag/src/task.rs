//! One task of a bag stage: records stream from its byte ranges (or its shuffle partition)
//! through the stage's steps into the output file or the shuffle.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::read::Reader;
use super::steps::{self, Row, RowOp};
use super::wide::{Wide, shuffle_schema};
use datafusion::arrow::datatypes::SchemaRef;
use kask_api::{BagJob, Format};
use kask_core::error::{Error, Result};
use kask_core::lineage::Recover;
use kask_core::marker::{TaskFile, TaskMarker};
use kask_core::plan::{Op, Partial, Plan, Sink, StageSource};
use kask_core::shuffle::{Partitioner, fold_partitions};
use kask_core::store::Store;
use kask_core::store::upload::Upload;

/// Where a stage's records end up.
enum Out {
    /// JSON lines (or records kept for a Parquet file), and how many.
    Output {
        lines: Vec<u8>,
        records: Vec<Value>,
        count: u64,
        parquet: bool,
    },
    /// A wide step's state, for the shuffle.
    Shuffle(Wide),
}

impl Out {
    fn push(&mut self, v: Value) -> Result<()> {
        match self {
            Out::Output {
                lines,
                records,
                count,
                parquet,
            } => {
                *count += 1;
                if *parquet {
                    records.push(v);
                } else {
                    serde_json::to_writer(&mut *lines, &v)
                        .map_err(|e| Error::internal(format!("writing a record: {e}")))?;
                    lines.push(b'\n');
                }
            }
            Out::Shuffle(w) => w.push(v),
        }
        Ok(())
    }
}

/// Lines buffered before they are handed to the upload.
const SEND_BYTES: usize = 1 << 20;

impl Out {
    /// Hands the JSON lines buffered so far to `upload` (started on first use).
    async fn send(&mut self, store: &Store, path: &str, upload: &mut Option<Upload>) -> Result<()> {
        let Out::Output {
            lines,
            parquet: false,
            ..
        } = self
        else {
            return Ok(());
        };
        if lines.len() < SEND_BYTES {
            return Ok(());
        }
        let up = upload.get_or_insert_with(|| Upload::new(store, path));
        up.put(Bytes::from(std::mem::take(lines)))
            .await
            .map_err(|e| store.err(format!("writing {path}"), e))
    }
}

/// The stage's steps, compiled, and their states.
struct Pipeline<'a> {
    ops: &'a [Op],
    rows: Vec<Option<Row>>,
    states: Vec<Option<Wide>>,
    out: Out,
}

fn push(
    ops: &[Op],
    rows: &[Option<Row>],
    states: &mut [Option<Wide>],
    out: &mut Out,
    at: usize,
    item: Value,
) -> Result<()> {
    let Some(op) = ops.get(at) else {
        return out.push(item);
    };
    match op {
        Op::BagRow { .. } => {
            let row = rows[at]
                .as_ref()
                .ok_or_else(|| Error::internal("an uncompiled bag step"))?;
            // A split straight into a wide step (the word count) folds the words in as they
            // are cut, without a JSON value per word.
            if let (RowOp::Split(sep), Value::String(text)) = (&row.op, &item)
                && let Some(wide) = wide_at(ops, states, out, at + 1)
            {
                for w in steps::words(text, sep.as_deref()) {
                    wide.push_str(w);
                }
                return Ok(());
            }
            row.apply(item, &mut |v| push(ops, rows, states, out, at + 1, v))
        }
        Op::BagWide { .. } | Op::BagFinal { .. } => {
            let state = states[at]
                .as_mut()
                .ok_or_else(|| Error::internal("a wide bag step without its state"))?;
            state.push(item);
            Ok(())
        }
    }
}

/// The wide state that records reaching step `at` go into, if they go into one directly.
fn wide_at<'s>(
    ops: &[Op],
    states: &'s mut [Option<Wide>],
    out: &'s mut Out,
    at: usize,
) -> Option<&'s mut Wide> {
    match ops.get(at) {
        Some(Op::BagWide { .. } | Op::BagFinal { .. }) => states[at].as_mut(),
        Some(_) => None,
        None => match out {
            Out::Shuffle(w) => Some(w),
            Out::Output { .. } => None,
        },
    }
}

impl<'a> Pipeline<'a> {
    fn new(job: &BagJob, ops: &'a [Op], out: Out) -> Result<Self> {
        let mut rows = Vec::with_capacity(ops.len());
        let mut states = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::BagRow { step } => {
                    rows.push(Some(steps::compile(job, *step)?));
                    states.push(None);
                }
                Op::BagWide { step } | Op::BagFinal { step } => {
                    rows.push(None);
                    states.push(Some(Wide::new(job, *step)?));
                }
            }
        }
        Ok(Pipeline {
            ops,
            rows,
            states,
            out,
        })
    }

    fn push(&mut self, at: usize, item: Value) -> Result<()> {
        push(
            self.ops,
            &self.rows,
            &mut self.states,
            &mut self.out,
            at,
            item,
        )
    }

    /// Ends the input: each wide step in turn emits its results into the steps after it.
    fn finish(mut self) -> Result<Out> {
        for at in 0..self.ops.len() {
            if let Some(state) = self.states[at].take() {
                let (ops, rows, states, out) =
                    (self.ops, &self.rows, &mut self.states, &mut self.out);
                state.emit(&mut |v| push(ops, rows, states, out, at + 1, v))?;
            }
        }
        Ok(self.out)
    }
}

/// Runs task `task` of bag stage `stage`, writing under `dir`.
pub async fn execute(
    store: &Store,
    plan: &Plan,
    stage: usize,
    task: usize,
    dir: &str,
    lineage: &dyn Recover,
) -> Result<TaskMarker> {
    let job = plan
        .spec
        .bag
        .as_ref()
        .ok_or_else(|| Error::internal("a bag task of a job without spec.bag"))?;
    let st = &plan.stages[stage];
    let format = plan.spec.output_format();
    let out = match &st.sink {
        Sink::Output => Out::Output {
            lines: Vec::new(),
            records: Vec::new(),
            count: 0,
            parquet: format == Format::Parquet,
        },
        Sink::Shuffle {
            partial: Partial::Bag { step },
            ..
        } => Out::Shuffle(Wide::new(job, *step)?),
        other => return Err(Error::internal(format!("a bag stage writing {other:?}"))),
    };
    // JSON lines go out as pieces of the input are read, not held to the task's end.
    let lines_path = format!("{dir}/part.jsonl");
    let mut upload: Option<Upload> = None;
    // A map task's keyed state goes to the shuffle whenever it passes a quarter of the pool
    // (the reducers merge what several flushes send), so that a range with millions of
    // distinct values does not hold them all.
    let mut shuffle = match &st.sink {
        Sink::Shuffle {
            partitions, keys, ..
        } => Some(Partitioner::new(shuffle_schema(), keys, *partitions)?.within(&store.runtime)),
        _ => None,
    };
    let flush_at = kask_core::memory::pool_limit(&store.runtime)
        .map_or(usize::MAX, |p| usize::try_from(p / 4).unwrap_or(usize::MAX));
    let mut shuffled_rows = 0u64;
    let mut marker = TaskMarker {
        stage,
        task,
        ..TaskMarker::default()
    };
    let out = match &st.source {
        StageSource::Input { input } => {
            let mut pipeline = Pipeline::new(job, &st.ops, out)?;
            let spec_input = job
                .inputs
                .get(input)
                .ok_or_else(|| Error::internal(format!("no bag input {input}")))?;
            let reader = Reader {
                store,
                input,
                format: spec_input.format(),
                on_bad: job.on_bad_record,
            };
            let mut records = 0u64;
            for frag in st
                .fragments
                .get(task)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let mut pieces = reader.pieces(frag)?;
                while let Some(piece) = pieces.next().await? {
                    let stats = reader
                        .records(&pieces, &piece, &mut |v| {
                            records += 1;
                            pipeline.push(0, v)
                        })
                        .await?;
                    marker.skipped += stats.skipped;
                    pipeline.out.send(store, &lines_path, &mut upload).await?;
                    if let (Out::Shuffle(state), Some(p)) = (&mut pipeline.out, shuffle.as_mut())
                        && state.keyed()
                        && state.held_bytes() > flush_at
                    {
                        let full = std::mem::replace(state, state.emptied());
                        let rows = full.into_rows()?;
                        shuffled_rows += rows.num_rows() as u64;
                        p.push(rows)?;
                    }
                }
                marker.bytes_in += pieces.fetched;
            }
            marker.rows_in = records;
            pipeline.finish()?
        }
        StageSource::Shuffle { stage: from } => {
            let Some(Op::BagFinal { .. }) = st.ops.first() else {
                return Err(Error::internal(
                    "a bag reduce stage that does not start by merging",
                ));
            };
            let mut pipeline = Pipeline::new(job, &st.ops, out)?;
            let Some(Some(state)) = pipeline.states.first_mut() else {
                return Err(Error::internal("a bag reduce stage without its state"));
            };
            let run = reduce_run(store, plan, *from, st.tasks, task).await?;
            let mut rows_in = 0u64;
            marker.bytes_in = fold_partitions(store, plan, *from, run, lineage, &mut |b| {
                rows_in += b.num_rows() as u64;
                state.push_rows(&b)
            })
            .await?;
            marker.rows_in = rows_in;
            pipeline.finish()?
        }
        other => return Err(Error::internal(format!("a bag stage reading {other:?}"))),
    };
    marker.files = match out {
        Out::Output {
            lines,
            records,
            count,
            parquet,
        } => {
            marker.rows_out = count;
            if count == 0 {
                vec![]
            } else if parquet {
                let (file, schema) = write_parquet(store, dir, records).await?;
                marker.schema = Some(schema.into());
                vec![file]
            } else {
                let up = upload.get_or_insert_with(|| Upload::new(store, &lines_path));
                up.put(Bytes::from(lines))
                    .await
                    .map_err(|e| store.err(format!("writing {lines_path}"), e))?;
                up.finish()
                    .await
                    .map_err(|e| store.err(format!("writing {lines_path}"), e))?;
                vec![TaskFile {
                    path: lines_path,
                    rows: count,
                    bytes: up.bytes(),
                    crc32c: Some(up.crc32c()),
                    partitions: vec![],
                    window: 0,
                    samples: vec![],
                }]
            }
        }
        Out::Shuffle(state) => {
            let (Sink::Shuffle { partitions, .. }, Some(mut p)) = (&st.sink, shuffle) else {
                return Err(Error::internal("a bag shuffle without its sink"));
            };
            let batch = state.into_rows()?;
            marker.rows_out = shuffled_rows + batch.num_rows() as u64;
            p.push(batch)?;
            marker.spilled_bytes = p.spilled_bytes();
            vec![kask_core::shuffle::write(store, dir, p, *partitions).await?]
        }
    };
    marker.bytes_out = marker.files.iter().map(|f| f.bytes).sum();
    Ok(marker)
}

/// Flat records as one Parquet file, the columns inferred from the records; a record holding
/// a list or an object cannot be a row.
async fn write_parquet(
    store: &Store,
    dir: &str,
    records: Vec<Value>,
) -> Result<(TaskFile, SchemaRef)> {
    use datafusion::arrow::json::ReaderBuilder;
    use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
    let rows: Vec<Value> = records
        .into_iter()
        .map(|v| match v {
            Value::Object(m) => Value::Object(m),
            other => Value::Object(serde_json::Map::from_iter([("value".to_string(), other)])),
        })
        .collect();
    for r in &rows {
        if let Value::Object(m) = r
            && let Some((k, _)) = m.iter().find(|(_, v)| v.is_array() || v.is_object())
        {
            return Err(Error::Output {
                path: dir.to_string(),
                message: format!(
                    "records are not flat (field {k:?} holds a list or an object), so they cannot be Parquet rows; use output.format: json"
                ),
            });
        }
    }
    let schema = infer_json_schema_from_iterator(rows.iter().map(Ok))
        .map_err(|e| Error::internal(format!("inferring the records' columns: {e}")))?;
    // A field that is a number in one record and a string in another is a string column.
    let mut decoder = ReaderBuilder::new(Arc::new(schema))
        .with_coerce_primitive(true)
        .build_decoder()
        .map_err(|e| Error::internal(e.to_string()))?;
    decoder
        .serialize(&rows)
        .map_err(|e| Error::internal(format!("records to columns: {e}")))?;
    let batch = decoder
        .flush()
        .map_err(|e| Error::internal(e.to_string()))?
        .ok_or_else(|| Error::internal("no rows"))?;
    let schema = batch.schema();
    let stream = Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            futures::stream::iter(vec![Ok(batch)]),
        ),
    );
    let files = kask_core::output::write_output(store, dir, Format::Parquet, stream, &|e| {
        Error::internal(e.to_string())
    })
    .await?;
    let file = files
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("no Parquet file written"))?;
    Ok((file, schema))
}

/// The partitions task `task` of a reduce stage of `partitions` tasks reads from stage `from`:
/// its own, when the spec names `shufflePartitions`; else a run of adjacent small ones taken
/// together, as every task of the stage agreed (a task given none reads nothing and writes an
/// empty result), so that a small result is one task's and one file.
async fn reduce_run(
    store: &Store,
    plan: &Plan,
    from: usize,
    partitions: usize,
    task: usize,
) -> Result<std::ops::Range<usize>> {
    if plan.spec.shuffle_partitions.is_some() || partitions < 2 {
        return Ok(task..task + 1);
    }
    let stages = [from];
    let path = plan.decision_path(&kask_core::decision::runs_name(&stages));
    let fits = |runs: &kask_core::shuffle::runs::Runs| {
        kask_core::decision::check_tasks(&path, runs.tasks.len(), partitions)
    };
    let (runs, here) = kask_core::decision::agree(store, &path, fits, || {
        kask_core::decision::runs_from_markers(store, plan, &stages, partitions)
    })
    .await?;
    if here && runs.busy() < partitions {
        tracing::info!(
            stage = from + 1,
            "small partitions taken together: {partitions} partitions in {} tasks",
            runs.busy()
        );
    }
    Ok(runs.of(task))
}
