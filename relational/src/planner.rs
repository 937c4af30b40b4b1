//! From a relational job's spec and listing to its stages (an SQL job's queries, or a
//! dataframe job's pipelines), in the plan pod (or `kask run`): each stage is recorded with
//! its sub-plan as protobuf, which its tasks decode and run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::{ExecutionPlanProperties, displayable};
use datafusion::prelude::{DataFrame, SessionContext};
use tracing::info;

use super::common_subplans::{common_subplans, reading_common};
use super::ctes::{SharedCtes, shared_ctes};
use super::cut::{CutStage, Shape, cut_into};
use super::errors::query_error;
use super::exchange::{PlanningOnly, ShuffleSource, SinkKind};
use super::graph::{StageTable, shared_views};
use super::pipeline;
use super::session::{register_tables, session};
use super::set_semi_joins::set_semi_joins_as_inner;
use super::whole_groups::aggregate_whole_groups;
use super::{SqlPlan, SqlStage};
use kask_api::DaskJobSpec;
use kask_core::error::{Error, Result};
use kask_core::kind::JobIds;
use kask_core::plan::listing::Listing;
use kask_core::plan::tasks::{cut_input, dns_safe, input_plan, reduce_partitions};
use kask_core::plan::{
    OutputStage, PLAN_VERSION, Plan, PlanSchema, Sink, Stage, StageSource, to_detail,
};
use kask_core::store::Store;

/// Lists a relational job's tables and plans it, under the id `ids` gives for what it reads.
pub async fn list_and_plan(store: &Store, spec: &DaskJobSpec, ids: &dyn JobIds) -> Result<Plan> {
    let tables = match (&spec.dataframe, &spec.sql) {
        (Some(df), _) => &df.inputs,
        (None, Some(sql)) => &sql.tables,
        (None, None) => {
            return Err(Error::internal(
                "a relational plan for a job of another kind",
            ));
        }
    };
    let listing = super::hive_listing::listed_by_folders(store, spec, tables).await?;
    let files: usize = listing.inputs.values().map(|i| i.files.len()).sum();
    info!(files, "listed the inputs");
    // What identifies the inputs' contents: names, and each file's path, size and version.
    let mut fingerprint = Vec::new();
    for (name, input) in &listing.inputs {
        fingerprint.push(name.clone());
        for f in &input.files {
            fingerprint.push(format!("{}:{}:{}", f.path, f.size, f.version));
        }
    }
    let id = ids.id(store, &fingerprint).await?;
    plan_relational(store, &id, spec, &listing).await
}

/// The plan of a relational job without its stages: its tables cut into tasks.
pub(crate) fn draft(
    store: &Store,
    job_id: &str,
    spec: &DaskJobSpec,
    listing: &Listing,
) -> Result<Plan> {
    let names: Vec<&String> = match (&spec.sql, &spec.dataframe) {
        (Some(sql), _) => sql.tables.keys().collect(),
        (None, Some(df)) => df.inputs.keys().collect(),
        (None, None) => {
            return Err(Error::internal(
                "plan_relational on a job without sql or dataframe",
            ));
        }
    };
    let target = spec.target_task_bytes();
    let tables: BTreeMap<String, Vec<Vec<kask_core::plan::Fragment>>> = names
        .into_iter()
        .map(|name| {
            let listed = listing
                .inputs
                .get(name)
                .ok_or_else(|| Error::internal(format!("table {name:?} was not listed")))?;
            Ok((name.clone(), cut_input(listed, target)))
        })
        .collect::<Result<_>>()?;
    let widest = tables.values().map(Vec::len).max().unwrap_or(1);
    // A job whose every table is one task runs whole in that task: a shuffle would only move
    // its rows around.
    let partitions = if widest <= 1 {
        1
    } else {
        let bytes = listing
            .inputs
            .values()
            .flat_map(|l| &l.files)
            .map(|f| f.size)
            .sum();
        reduce_partitions(
            spec.shuffle_partitions,
            widest,
            spec.workers() as usize,
            bytes,
            kask_core::memory::pool_limit(&store.runtime),
        )
    };
    Ok(Plan {
        version: PLAN_VERSION,
        job_id: job_id.to_string(),
        job_name: String::new(),
        spec: spec.clone(),
        inputs: listing
            .inputs
            .iter()
            .map(|(name, l)| (name.clone(), input_plan(l)))
            .collect(),
        stages: vec![],
        kind: "relational".into(),
        detail: to_detail(&SqlPlan { partitions, tables })?,
        output_stages: vec![],
    })
}

/// Plans an SQL job or a dataframe pipeline: its tables cut into tasks, its queries or its
/// pipeline into stages.
pub async fn plan_relational(
    store: &Store,
    job_id: &str,
    spec: &DaskJobSpec,
    listing: &Listing,
) -> Result<Plan> {
    let mut plan = draft(store, job_id, spec, listing)?;
    let source: Arc<dyn ShuffleSource> = Arc::new(PlanningOnly);
    let mut cut = match stages_of(store, &plan, &source).await {
        Ok(cut) => cut,
        // The first file's columns may lack some that the query names: with every file
        // opened, the plan's errors are its own.
        Err(_) if listing.sampled() => {
            info!("planning again with every file of the sampled inputs opened");
            let opened = super::hive_listing::open_kept(store, listing, |_, _| true).await?;
            return Box::pin(plan_relational(store, job_id, spec, &opened)).await;
        }
        Err(e) => return Err(e),
    };
    if let Some(pruned) = super::hive_listing::without_unread_folders(store, listing, &cut).await? {
        info!("planning again without the folders the filters skip");
        return Box::pin(plan_relational(store, job_id, spec, &pruned)).await;
    }
    // Partitions the spec names are the user's to choose; others may be taken together.
    if spec.shuffle_partitions.is_none() {
        for s in &mut cut.stages {
            s.root = super::coalesce::coalesce_readers(Arc::clone(&s.root))?;
        }
    }
    let feeds = feeds(&cut);
    let task_ctx = cut.ctx.task_ctx();
    plan.stages = cut
        .stages
        .iter()
        .enumerate()
        .map(|(id, c)| {
            let view = cut.views.iter().find(|(_, s)| *s == id).map(|(v, _)| v);
            stage(id, c, &plan, view, feeds[id].clone(), &task_ctx)
        })
        .collect::<Result<_>>()?;
    plan.output_stages = cut.targets;
    Ok(plan)
}

/// The fewest rows of a sorted result worth a task and a part of their own: a task's worth of
/// bytes (`targetTaskBytes`) at a guessed 64 bytes a row. A count of rows, not of bytes, as
/// every task that reads the sort must come to the same number of parts, and a sorted run's
/// rows are the same on every run of its task while its bytes need not be.
fn min_range_rows(spec: &kask_api::DaskJobSpec) -> u64 {
    (spec.target_task_bytes() / 64).max(1)
}

/// Plans the job's views and queries and cuts them, with `source` behind their shuffle
/// readers: the shared views' stages first, then each output's.
pub async fn stages_of(store: &Store, plan: &Plan, source: &Arc<dyn ShuffleSource>) -> Result<Cut> {
    let partitions = SqlPlan::of(plan)?.partitions;
    let shape = Shape {
        partitions,
        min_range_rows: min_range_rows(&plan.spec),
        read_whole_bytes: crate::session::read_whole_bytes(&plan.spec, store),
    };
    super::cut::key_filters_enabled()?;
    let Some(sql) = plan.spec.sql.as_ref() else {
        return pipeline_stages(store, plan, source, shape).await;
    };
    let ctx = session(store, &plan.spec, partitions);
    register_tables(&ctx, store, plan)?;
    let only_queries = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let shared = shared_views(&ctx, sql)?;
    let mut stages = Vec::new();
    let mut views = Vec::new();
    for (name, query) in &sql.views {
        let at = format!("spec.sql.views.{name}");
        let view = ctx
            .sql_with_options(query, only_queries)
            .await
            .map_err(|e| query_error(&ctx, &at, &e))?;
        let table: Arc<dyn TableProvider> = if shared.contains(&name.to_ascii_lowercase()) {
            let physical = view
                .create_physical_plan()
                .await
                .map_err(|e| query_error(&ctx, &at, &e))?;
            let physical = aggregate_whole_groups(physical, store).await?;
            Arc::new(kept_as_table(
                (&mut stages, &mut views),
                name,
                physical,
                source,
                shape,
            )?)
        } else {
            Arc::new(ViewTable::new(
                view.into_unoptimized_plan(),
                Some(query.clone()),
            ))
        };
        ctx.register_table(name.as_str(), table)
            .map_err(|e| query_error(&ctx, &at, &e))?;
    }
    let queries: Vec<(String, String, &str)> = match &sql.query {
        Some(q) => vec![("output".into(), "spec.sql.query".into(), q.as_str())],
        None => sql
            .outputs
            .iter()
            .map(|(n, o)| {
                (
                    n.clone(),
                    format!("spec.sql.outputs.{n}.query"),
                    o.query.as_str(),
                )
            })
            .collect(),
    };
    let mut targets = Vec::new();
    for (name, at, query) in queries {
        // Planned as written first, so that an error points into the query as written.
        let df = ctx
            .sql_with_options(query, only_queries)
            .await
            .map_err(|e| query_error(&ctx, &at, &e))?;
        let taken = |n: &str| ctx.table_exist(TableReference::bare(n)).unwrap_or(true);
        let physical = match shared_ctes(&ctx, query, &taken) {
            Some(shared) => {
                let mark = (stages.len(), views.len());
                let planned = plan_with_shared_ctes(
                    (&ctx, store),
                    &shared,
                    (&mut stages, &mut views),
                    source,
                    shape,
                )
                .await;
                for (cte, _) in &shared.ctes {
                    let _ = ctx.deregister_table(TableReference::bare(cte.as_str()));
                }
                match planned {
                    Ok(physical) => physical,
                    Err(e) => {
                        tracing::warn!(query = %at, error = %e, "its shared CTEs could not be planned on their own: inlined");
                        stages.truncate(mark.0);
                        views.truncate(mark.1);
                        df.create_physical_plan()
                            .await
                            .map_err(|e| query_error(&ctx, &at, &e))?
                    }
                }
            }
            None => {
                plan_sharing_subplans((&ctx, store), &df, (&mut stages, &mut views), source, shape)
                    .await
                    .map_err(|e| query_error(&ctx, &at, &e))?
            }
        };
        let physical = aggregate_whole_groups(physical, store).await?;
        let last = cut_into(&mut stages, physical, source, shape, SinkKind::Output)?;
        in_folders(&mut stages[last], &plan.spec, &name)?;
        targets.push(OutputStage { name, stage: last });
    }
    Ok(Cut {
        ctx,
        stages,
        targets,
        views,
    })
}

/// The last stage of output `name`, sorted by its folder keys when it is written in folders
/// by column.
fn in_folders(stage: &mut CutStage, spec: &DaskJobSpec, name: &str) -> Result<()> {
    let Some(out) = spec.outputs().into_iter().find(|o| o.name == name) else {
        return Ok(());
    };
    stage.root = super::folder_sort::sorted_for_folders(
        Arc::clone(&stage.root),
        &out.output.partition_by,
        &out.field,
    )?;
    Ok(())
}

/// The stages of a query's CTEs computed once ([`crate::ctes`]), each registered under its
/// name for what follows, and the physical plan of the rest of the query.
async fn plan_with_shared_ctes(
    (ctx, store): (&SessionContext, &Store),
    shared: &SharedCtes,
    (stages, views): (&mut Vec<CutStage>, &mut Vec<(String, usize)>),
    source: &Arc<dyn ShuffleSource>,
    shape: Shape,
) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    for (name, query) in &shared.ctes {
        let physical = ctx.sql(query).await?.create_physical_plan().await?;
        let physical = aggregate_whole_groups(physical, store)
            .await
            .map_err(external)?;
        let table =
            kept_as_table((stages, views), name, physical, source, shape).map_err(external)?;
        ctx.register_table(TableReference::bare(name.as_str()), Arc::new(table))?;
    }
    ctx.sql(&shared.rest).await?.create_physical_plan().await
}

/// The physical plan of query `df` with its sub-plans used more than once computed once
/// ([`crate::common_subplans`]): each is cut into stages of its own whose last keeps its rows
/// for every use to read. A query whose shared sub-plans cannot be planned so is planned as
/// it is.
async fn plan_sharing_subplans(
    (ctx, store): (&SessionContext, &Store),
    df: &DataFrame,
    (stages, views): (&mut Vec<CutStage>, &mut Vec<(String, usize)>),
    source: &Arc<dyn ShuffleSource>,
    shape: Shape,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    let state = ctx.state();
    let optimized = state.optimize(df.logical_plan())?;
    tracing::debug!(plan = %optimized.display_indent(), "the optimised logical plan");
    let planner = Arc::clone(state.query_planner());
    let broadcast = state
        .config()
        .options()
        .optimizer
        .hash_join_single_partition_threshold;
    let mark = (stages.len(), views.len());
    let mut plan = optimized.clone();
    let shared = async {
        plan = set_semi_joins_as_inner(plan, broadcast)?;
        // Each round shares the largest sub-plan left; the others' places change with it.
        for _ in 0..MAX_COMMON_SUBPLANS {
            let Some(common) = common_subplans(&plan, broadcast)?.into_iter().next() else {
                break;
            };
            let name = format!("subplan-{}", views.len());
            info!(uses = common.uses(), name = %name, "a sub-plan the query uses more than once is computed once");
            let physical = planner.create_physical_plan(&common.plan, &state).await?;
            let physical = aggregate_whole_groups(physical, store)
                .await
                .map_err(external)?;
            let table = kept_as_table((&mut *stages, &mut *views), &name, physical, source, shape)
                .map_err(external)?;
            plan = reading_common(plan, &common, &name, provider_as_source(Arc::new(table)))?;
        }
        planner.create_physical_plan(&plan, &state).await
    };
    match shared.await {
        Ok(physical) => Ok(physical),
        Err(e) => {
            tracing::warn!(error = %e, "the sub-plans the query uses twice could not be computed once: planned as written");
            stages.truncate(mark.0);
            views.truncate(mark.1);
            planner.create_physical_plan(&optimized, &state).await
        }
    }
}

/// How many sub-plans of one query are computed once at most.
const MAX_COMMON_SUBPLANS: usize = 8;

fn external(e: Error) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

/// Cuts `physical`, the plan of a result computed once for the plans that use it (a shared
/// view, pipeline or CTE named `name`), into stages whose last keeps its rows, one partition
/// per task; returns the table that reads them.
fn kept_as_table(
    (stages, views): (&mut Vec<CutStage>, &mut Vec<(String, usize)>),
    name: &str,
    physical: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    source: &Arc<dyn ShuffleSource>,
    shape: Shape,
) -> Result<StageTable> {
    let last = cut_into(stages, physical, source, shape, SinkKind::Single)?;
    views.push((name.to_string(), last));
    let root = &stages[last].root;
    Ok(StageTable::new(
        last,
        root.output_partitioning().partition_count(),
        root.schema(),
        Arc::clone(source),
    ))
}

/// A dataframe job's pipelines, each planned as one logical plan and cut like a query: the
/// shared ones (see [`pipeline::shared`]) into stages that keep their rows for the later
/// pipelines to read, the others inlined into the pipelines that use them.
async fn pipeline_stages(
    store: &Store,
    plan: &Plan,
    source: &Arc<dyn ShuffleSource>,
    shape: Shape,
) -> Result<Cut> {
    let partitions = shape.partitions;
    let df = plan
        .spec
        .dataframe
        .as_ref()
        .ok_or_else(|| Error::internal("a plan of neither SQL nor a dataframe pipeline"))?;
    let ctx = session(store, &plan.spec, partitions);
    let shared = pipeline::shared(df);
    let mut before: HashMap<String, LogicalPlan> = HashMap::new();
    let (mut stages, mut targets, mut views) = (Vec::new(), Vec::new(), Vec::new());
    for p in df.pipelines() {
        let lp = pipeline::logical(&ctx, store, plan, &p, &before)?;
        let lp = if shared.contains(&p.name) {
            let physical = physical_of((&ctx, store), &lp, &p.field).await?;
            let table = kept_as_table((&mut stages, &mut views), &p.name, physical, source, shape)?;
            let scan = LogicalPlanBuilder::scan(
                TableReference::bare(p.name.as_str()),
                provider_as_source(Arc::new(table)),
                None,
            )
            .and_then(LogicalPlanBuilder::build)
            .map_err(|e| pipeline_error(&p.field, &e))?;
            before.insert(p.name.clone(), scan.clone());
            scan
        } else {
            lp
        };
        if p.is_output {
            let physical = physical_of((&ctx, store), &lp, &p.field).await?;
            let last = cut_into(&mut stages, physical, source, shape, SinkKind::Output)?;
            in_folders(&mut stages[last], &plan.spec, &p.name)?;
            targets.push(OutputStage {
                name: p.name.clone(),
                stage: last,
            });
        } else {
            before.entry(p.name.clone()).or_insert(lp);
        }
    }
    Ok(Cut {
        ctx,
        stages,
        targets,
        views,
    })
}

async fn physical_of(
    (ctx, store): (&SessionContext, &Store),
    lp: &LogicalPlan,
    field: &str,
) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    let physical = ctx
        .state()
        .create_physical_plan(lp)
        .await
        .map_err(|e| pipeline_error(field, &e))?;
    aggregate_whole_groups(physical, store).await
}

/// An error that the pipeline's steps did not catch while they were built: a type that the
/// optimizer's coercion finds wrong, for one.
fn pipeline_error(field: &str, e: &datafusion::error::DataFusionError) -> Error {
    Error::spec(field, kask_core::error::df_message(e))
}

/// A job's plan cut into stages, and the session that planned it (a task runs its stage in it).
pub struct Cut {
    pub ctx: SessionContext,
    pub stages: Vec<CutStage>,
    /// The stage that writes each output, in the spec's order.
    pub targets: Vec<OutputStage>,
    /// The shared views, each with the stage that keeps its rows.
    pub views: Vec<(String, usize)>,
}

/// The text a task compares its own sub-plan with.
pub fn plan_text(root: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> String {
    displayable(root.as_ref()).indent(true).to_string()
}

/// The outputs each stage feeds: those whose last stage reads it, through any number of
/// stages (a shared view's stages feed several).
fn feeds(cut: &Cut) -> Vec<Vec<String>> {
    let mut feeds = vec![Vec::new(); cut.stages.len()];
    for t in &cut.targets {
        let mut todo = vec![t.stage];
        let mut seen = BTreeSet::new();
        while let Some(s) = todo.pop() {
            if seen.insert(s) {
                feeds[s].push(t.name.clone());
                todo.extend(cut.stages[s].reads.iter().copied());
            }
        }
    }
    feeds
}

fn stage(
    id: usize,
    c: &CutStage,
    plan: &Plan,
    view: Option<&String>,
    feeds: Vec<String>,
    task_ctx: &datafusion::execution::TaskContext,
) -> Result<Stage> {
    let sink = match &c.sink {
        SinkKind::Output => Sink::Output,
        SinkKind::Hash(exprs, n) => Sink::Shuffle {
            partitions: *n,
            keys: exprs.iter().map(|e| e.to_string()).collect(),
            partial: kask_core::plan::Partial::None,
        },
        SinkKind::Single => Sink::Shuffle {
            partitions: 1,
            keys: vec![],
            partial: kask_core::plan::Partial::None,
        },
        SinkKind::Ranges(ordering, chunk_rows) => Sink::Ranges {
            keys: ordering.iter().map(|e| e.to_string()).collect(),
            chunk_rows: *chunk_rows,
        },
    };
    let encoded = super::codec::encode(&c.root, &c.sink)?;
    let text = plan_text(&c.root);
    // A node that protobuf would carry only in part fails the job here, once, rather than
    // in every task.
    match super::codec::decode(
        &encoded.plan,
        (encoded.hash.as_deref(), encoded.range.as_deref()),
        task_ctx,
        Arc::new(PlanningOnly),
    ) {
        Ok((decoded, _)) if super::codec::reads_as(&decoded, &text) => {}
        Ok((decoded, _)) => {
            return Err(Error::internal(format!(
                "stage s{id}'s plan changes on its way to its tasks:\n{text}\nbecomes\n{}",
                plan_text(&decoded)
            )));
        }
        Err(why) => {
            return Err(Error::internal(format!(
                "stage s{id}'s plan cannot be decoded as its tasks would: {why}"
            )));
        }
    }
    let filtered_by = c.filtered_by();
    let sql = SqlStage {
        plan: text,
        proto: encoded.plan,
        hash: encoded.hash,
        range: encoded.range,
        key_hashes: c.key_hashes,
        filtered_by: filtered_by.clone(),
    };
    // A stage that reads one table and no other stage's shuffle is named after the table,
    // whatever it does before its shuffle (`s0-scan-orders`); a shared view's last stage,
    // after the view.
    let reads_shuffles = c.reads.iter().any(|r| !filtered_by.contains(r));
    let what = match (view, kind(&c.root), sql.scanned_tables(plan).as_slice()) {
        (Some(view), _, _) => format!("view-{}", dns_safe(view)),
        (None, _, [table]) if !reads_shuffles => format!("scan-{}", dns_safe(table)),
        (None, kind, _) if plan.spec.dataframe.is_some() => pipeline_word(kind, &c.root, plan),
        (None, kind, _) => kind.to_string(),
    };
    Ok(Stage {
        id,
        name: format!("s{id}-{what}"),
        source: StageSource::Sql {
            reads: c.reads.clone(),
        },
        ops: vec![],
        sink,
        tasks: c.root.output_partitioning().partition_count().max(1),
        fragments: vec![],
        task_bytes: vec![],
        output_schema: PlanSchema(c.root.schema()),
        detail: to_detail(&sql)?,
        feeds,
    })
}

/// A word for what a stage mostly does, for its name.
fn kind(root: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> &'static str {
    let mut names = Vec::new();
    collect_names(root, &mut names);
    let has = |n: &str| names.iter().any(|x| x.contains(n));
    let merges_ranges = root
        .downcast_ref::<super::exchange::ShuffleReaderExec>()
        .is_some_and(|r| r.mode() == super::exchange::ReadMode::Range);
    if has("Join") {
        "join"
    } else if has("Window") {
        "window"
    } else if has("Aggregate") {
        "aggregate"
    } else if has("Sort") || merges_ranges {
        "sort"
    } else if has("DataSourceExec") {
        "scan"
    } else {
        "select"
    }
}

/// The pipeline step a stage of a dataframe job mostly does, in the pipeline's words.
fn pipeline_word(
    kind: &str,
    root: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    plan: &Plan,
) -> String {
    let has_step = |f: fn(&kask_api::StepRef<'_>) -> bool| {
        plan.spec
            .dataframe
            .iter()
            .flat_map(|d| d.pipelines())
            .flat_map(|p| p.steps)
            .filter_map(|s| s.as_ref())
            .any(|s| f(&s))
    };
    match kind {
        "join" => "merge".into(),
        "aggregate" if !has_step(|s| matches!(s, kask_api::StepRef::GroupBy(_))) => {
            "distinct".into()
        }
        "aggregate" => "groupby".into(),
        "select" => {
            let mut names = Vec::new();
            collect_names(root, &mut names);
            if names.iter().any(|n| n.contains("Limit")) {
                "head".into()
            } else {
                "select".into()
            }
        }
        other => other.into(),
    }
}

fn collect_names(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>, out: &mut Vec<String>) {
    out.push(plan.name().to_string());
    for c in plan.children() {
        collect_names(c, out);
    }
}
