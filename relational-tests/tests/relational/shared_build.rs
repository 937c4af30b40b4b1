use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::prelude::SessionContext;

use crate::test_plans::{Counted, Named};
use datafusion::arrow::array::RecordBatch;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::common::collect;
use kask_relational::exchange::ShuffleSource;
use kask_relational::shared_build::*;
use std::sync::Arc;

#[tokio::test]
async fn tasks_that_run_together_compute_a_build_side_once() {
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from_iter_values(0..1000))],
    )
    .expect("a batch");
    let runs = Arc::new(AtomicUsize::new(0));
    let counted: Arc<dyn ExecutionPlan> = Arc::new(Counted::new(
        MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None).expect("rows"),
        Arc::clone(&runs),
    ));
    let source: Arc<dyn ShuffleSource> = Arc::new(Named("shared-build-test"));
    // Each task decodes its own plan: two instances of the same build side.
    let task_plan = || SharedBuildExec::new(Arc::clone(&counted), 3, 0, Arc::clone(&source));
    let ctx = SessionContext::new().task_ctx();
    let rows = |plan: &SharedBuildExec| {
        let stream = plan.execute(0, Arc::clone(&ctx)).expect("runs");
        async move { collect(stream).await.expect("rows") }
    };
    let (first, second) = (task_plan(), task_plan());
    let (a, b) = (rows(&first).await, rows(&second).await);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "run once for both tasks");
    assert_eq!(a, b);
    assert_eq!(a.iter().map(RecordBatch::num_rows).sum::<usize>(), 1000);
    drop((first, second));
    let later = task_plan();
    assert_eq!(rows(&later).await, a);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "run again once no task held it"
    );

    // Rows large next to a small pool are not kept: each task computes its own.
    drop(later);
    let small = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_limit(64 << 10, 1.0)
        .build_arc()
        .expect("a runtime");
    let ctx = SessionContext::new_with_config_rt(Default::default(), small).task_ctx();
    let (first, second) = (task_plan(), task_plan());
    for plan in [&first, &second] {
        let got = collect(plan.execute(0, Arc::clone(&ctx)).expect("runs"))
            .await
            .expect("rows");
        assert_eq!(got, a);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        4,
        "8 KB is more than a sixteenth of 64 KiB"
    );
}
