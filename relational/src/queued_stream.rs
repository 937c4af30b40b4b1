//! A stream that feeds its input's batches into a state which queues the batches to hand on:
//! the shape shared by Kask's nodes that gather or aggregate batch by batch.

use std::collections::VecDeque;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result as DfResult;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// What such a node does with its input.
pub trait Queue: Send + 'static {
    /// Takes in one input batch, queuing any batches it completes.
    fn push(&mut self, batch: RecordBatch) -> DfResult<()>;
    /// The input is done: queues what is left.
    fn finish(&mut self) -> DfResult<()>;
    /// Its queue, handed on in order.
    fn ready(&mut self) -> &mut VecDeque<RecordBatch>;
}

/// Queues `batch` onto `ready` in slices of at most `batch_size` rows.
pub fn queue_sliced(ready: &mut VecDeque<RecordBatch>, batch: &RecordBatch, batch_size: usize) {
    let rows = batch.num_rows();
    let mut at = 0;
    while at < rows {
        let len = batch_size.min(rows - at);
        ready.push_back(batch.slice(at, len));
        at += len;
    }
}

/// The batches `queue` hands on from `input`, as a stream of `schema`. The first error ends it.
pub fn queued(
    input: SendableRecordBatchStream,
    queue: impl Queue,
    schema: SchemaRef,
) -> SendableRecordBatchStream {
    let batches = futures::stream::unfold(
        (input, queue, false),
        |(mut input, mut queue, mut done)| async move {
            loop {
                if let Some(b) = queue.ready().pop_front() {
                    return Some((Ok(b), (input, queue, done)));
                }
                if done {
                    return None;
                }
                let step = match input.next().await {
                    Some(Ok(b)) => queue.push(b),
                    Some(Err(e)) => return Some((Err(e), (input, queue, true))),
                    None => {
                        done = true;
                        queue.finish()
                    }
                };
                if let Err(e) = step {
                    return Some((Err(e), (input, queue, true)));
                }
            }
        },
    );
    Box::pin(RecordBatchStreamAdapter::new(schema, batches))
}
