//! Stage plans as bytes. The plan pod records each stage's sub-plan as DataFusion's protobuf
//! (datafusion-proto), with Kask's own nodes — the shuffle reader and the CSV line-break
//! check — in messages of this codec; a task decodes its stage and runs it as cut, without
//! planning the job again. The bytes travel base64 inside the plan's JSON.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use datafusion::arrow::datatypes::Schema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::{CastExpr, Column};
use datafusion::physical_expr::{LexOrdering, Partitioning};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::from_proto::{
    parse_physical_exprs, parse_physical_sort_exprs, parse_protobuf_partitioning,
};
use datafusion_proto::physical_plan::to_proto::{
    serialize_partitioning, serialize_physical_exprs, serialize_physical_sort_exprs,
};
use datafusion_proto::physical_plan::{
    AsExecutionPlan, DefaultPhysicalProtoConverter, PhysicalExtensionCodec,
    PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf;
use prost::Message;

use super::csv_guard::NoLineBreaks;
use super::exchange::{ReadMode, ShuffleReaderExec, ShuffleSource, SinkKind};
use super::group_top_k::GroupTopKExec;
use super::key_filter::KeyFilterExec;
use super::shared_build::SharedBuildExec;
use super::shares::Side;
use super::skew::SharedJoin;
use kask_core::error::{Error, Result};

/// One of Kask's nodes. Its inputs travel beside it in DataFusion's own message.
#[derive(Clone, PartialEq, Message)]
struct KaskNode {
    #[prost(oneof = "Node", tags = "1, 2, 3, 4, 5")]
    node: Option<Node>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Node {
    #[prost(message, tag = "1")]
    Reader(ReaderNode),
    #[prost(message, tag = "2")]
    NoLineBreaks(protobuf::EmptyMessage),
    #[prost(message, tag = "3")]
    KeyFilter(KeyFilterNode),
    #[prost(message, tag = "4")]
    SharedBuild(SharedBuildNode),
    #[prost(message, tag = "5")]
    GroupTopK(GroupTopKNode),
}

/// A [`SharedBuildExec`].
#[derive(Clone, PartialEq, Message)]
struct SharedBuildNode {
    #[prost(uint64, tag = "1")]
    stage: u64,
    #[prost(uint64, tag = "2")]
    id: u64,
}

/// A [`GroupTopKExec`].
#[derive(Clone, PartialEq, prost::Message)]
struct GroupTopKNode {
    #[prost(message, repeated, tag = "1")]
    keys: Vec<protobuf::PhysicalExprNode>,
    #[prost(message, repeated, tag = "2")]
    order: Vec<protobuf::PhysicalSortExprNode>,
    #[prost(uint64, tag = "3")]
    n: u64,
}

/// A [`KeyFilterExec`].
#[derive(Clone, PartialEq, Message)]
struct KeyFilterNode {
    #[prost(uint64, tag = "1")]
    stage: u64,
    #[prost(message, repeated, tag = "2")]
    keys: Vec<protobuf::PhysicalExprNode>,
}

#[derive(Clone, PartialEq, Message)]
struct ReaderNode {
    #[prost(uint64, tag = "1")]
    stage: u64,
    /// [`ReadMode::Map`] when set, else [`ReadMode::Partition`].
    #[prost(bool, tag = "2")]
    per_map: bool,
    #[prost(message, optional, tag = "3")]
    schema: Option<protobuf::Schema>,
    #[prost(message, optional, tag = "4")]
    partitioning: Option<protobuf::Partitioning>,
    /// For a [`ReadMode::Range`] reader, the order it merges its runs in (none otherwise).
    #[prost(message, repeated, tag = "5")]
    ordering: Vec<protobuf::PhysicalSortExprNode>,
    #[prost(uint64, tag = "6")]
    min_range_rows: u64,
    /// For a side of a join whose tasks share out skewed partitions, the join.
    #[prost(message, optional, tag = "7")]
    shared: Option<SharedJoinNode>,
    /// For a reader of a stage whose tasks take small partitions together, the stages that
    /// stage's readers read (none otherwise).
    #[prost(uint64, repeated, tag = "8")]
    coalesced: Vec<u64>,
}

/// A [`SharedJoin`].
#[derive(Clone, PartialEq, Message)]
struct SharedJoinNode {
    #[prost(uint64, tag = "1")]
    left: u64,
    #[prost(uint64, tag = "2")]
    right: u64,
    #[prost(bool, tag = "3")]
    split_left: bool,
    #[prost(bool, tag = "4")]
    split_right: bool,
    /// The reader reads the right side (else the left).
    #[prost(bool, tag = "5")]
    reads_right: bool,
}

/// A stage's sorted runs ([`SinkKind::Ranges`]).
#[derive(Clone, PartialEq, Message)]
struct RangeSink {
    #[prost(message, repeated, tag = "1")]
    ordering: Vec<protobuf::PhysicalSortExprNode>,
    #[prost(uint64, tag = "2")]
    chunk_rows: u64,
}

/// Encodes and decodes Kask's nodes; a decoded shuffle reader reads from `source`.
#[derive(Debug)]
pub struct KaskCodec {
    pub source: Arc<dyn ShuffleSource>,
}

fn internal(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("{what}: {e}"))
}

impl PhysicalExtensionCodec for KaskCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let node = KaskNode::decode(buf).map_err(|e| internal("decoding a Kask node", e))?;
        match (node.node, inputs) {
            (Some(Node::Reader(r)), []) => {
                let schema = r
                    .schema
                    .as_ref()
                    .ok_or_else(|| internal("a shuffle reader", "no schema"))?;
                let schema =
                    Arc::new(Schema::try_from(schema).map_err(|e| internal("its schema", e))?);
                let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
                let partitioning = parse_protobuf_partitioning(
                    r.partitioning.as_ref(),
                    &decode_ctx,
                    &schema,
                    proto_converter,
                )?
                .ok_or_else(|| internal("a shuffle reader", "no partitioning"))?;
                let stage = usize::try_from(r.stage).map_err(|e| internal("its stage", e))?;
                if !r.ordering.is_empty() {
                    let ordering =
                        parse_ordering(&r.ordering, &decode_ctx, &schema, proto_converter)?;
                    return Ok(Arc::new(ShuffleReaderExec::ranges(
                        stage,
                        schema,
                        (ordering, r.min_range_rows),
                        partitioning.partition_count(),
                        Arc::clone(&self.source),
                    )));
                }
                let mode = if r.per_map {
                    ReadMode::Map
                } else {
                    ReadMode::Partition
                };
                let reader = ShuffleReaderExec::new(
                    stage,
                    mode,
                    schema,
                    partitioning,
                    Arc::clone(&self.source),
                );
                let reader = if r.coalesced.is_empty() {
                    reader
                } else {
                    let stages = r
                        .coalesced
                        .iter()
                        .map(|&s| usize::try_from(s).map_err(|e| internal("a read stage", e)))
                        .collect::<DfResult<Vec<_>>>()?;
                    reader.coalescing(&stages)
                };
                Ok(Arc::new(match r.shared {
                    Some(j) => {
                        let stage =
                            |s: u64| usize::try_from(s).map_err(|e| internal("a join's stage", e));
                        reader.sharing(SharedJoin {
                            left: stage(j.left)?,
                            right: stage(j.right)?,
                            split_left: j.split_left,
                            split_right: j.split_right,
                            side: if j.reads_right {
                                Side::Right
                            } else {
                                Side::Left
                            },
                        })
                    }
                    None => reader,
                }))
            }
            (Some(Node::NoLineBreaks(_)), [input]) => {
                Ok(Arc::new(NoLineBreaks::new(Arc::clone(input))))
            }
            (Some(Node::KeyFilter(k)), [input]) => {
                let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
                let keys =
                    parse_physical_exprs(&k.keys, &decode_ctx, &input.schema(), proto_converter)?;
                let stage = usize::try_from(k.stage).map_err(|e| internal("its stage", e))?;
                Ok(Arc::new(KeyFilterExec::new(
                    Arc::clone(input),
                    stage,
                    keys,
                    Arc::clone(&self.source),
                )))
            }
            (Some(Node::SharedBuild(b)), [input]) => {
                let number = |n: u64| usize::try_from(n).map_err(|e| internal("a build side", e));
                Ok(Arc::new(SharedBuildExec::new(
                    Arc::clone(input),
                    number(b.stage)?,
                    number(b.id)?,
                    Arc::clone(&self.source),
                )))
            }
            (Some(Node::GroupTopK(t)), [input]) => {
                let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
                let schema = input.schema();
                let keys = parse_physical_exprs(&t.keys, &decode_ctx, &schema, proto_converter)?;
                let order =
                    parse_physical_sort_exprs(&t.order, &decode_ctx, &schema, proto_converter)?;
                let n = usize::try_from(t.n).map_err(|e| internal("its n", e))?;
                Ok(Arc::new(GroupTopKExec::new(
                    Arc::clone(input),
                    keys,
                    order,
                    n,
                )))
            }
            (node, inputs) => Err(internal(
                "a Kask node that this kask does not know",
                format!("{node:?} over {} inputs", inputs.len()),
            )),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        let node = if let Some(r) = node.downcast_ref::<ShuffleReaderExec>() {
            Node::Reader(ReaderNode {
                stage: r.stage() as u64,
                per_map: r.mode() == ReadMode::Map,
                schema: Some(
                    protobuf::Schema::try_from(r.schema().as_ref())
                        .map_err(|e| internal("a shuffle reader's schema", e))?,
                ),
                partitioning: Some(serialize_partitioning(
                    r.properties().output_partitioning(),
                    self,
                    proto_converter,
                )?),
                ordering: match r.ordering() {
                    Some(o) => {
                        serialize_physical_sort_exprs(o.iter().cloned(), self, proto_converter)?
                    }
                    None => vec![],
                },
                min_range_rows: r.min_range_rows(),
                shared: r.shared().map(|j| SharedJoinNode {
                    left: j.left as u64,
                    right: j.right as u64,
                    split_left: j.split_left,
                    split_right: j.split_right,
                    reads_right: j.side == Side::Right,
                }),
                coalesced: r
                    .coalesced()
                    .unwrap_or_default()
                    .iter()
                    .map(|&s| s as u64)
                    .collect(),
            })
        } else if node.is::<NoLineBreaks>() {
            Node::NoLineBreaks(protobuf::EmptyMessage {})
        } else if let Some(b) = node.downcast_ref::<SharedBuildExec>() {
            Node::SharedBuild(SharedBuildNode {
                stage: b.stage() as u64,
                id: b.id() as u64,
            })
        } else if let Some(t) = node.downcast_ref::<GroupTopKExec>() {
            Node::GroupTopK(GroupTopKNode {
                keys: serialize_physical_exprs(t.keys(), self, proto_converter)?,
                order: serialize_physical_sort_exprs(
                    t.order().iter().cloned(),
                    self,
                    proto_converter,
                )?,
                n: t.n() as u64,
            })
        } else if let Some(k) = node.downcast_ref::<KeyFilterExec>() {
            Node::KeyFilter(KeyFilterNode {
                stage: k.stage() as u64,
                keys: serialize_physical_exprs(k.keys(), self, proto_converter)?,
            })
        } else {
            return Err(DataFusionError::NotImplemented(format!(
                "{} cannot travel to a task",
                node.name()
            )));
        };
        KaskNode { node: Some(node) }
            .encode(buf)
            .map_err(|e| internal("encoding a Kask node", e))
    }
}

fn parse_ordering(
    nodes: &[protobuf::PhysicalSortExprNode],
    ctx: &PhysicalPlanDecodeContext<'_>,
    schema: &Schema,
    proto_converter: &dyn PhysicalProtoConverterExtension,
) -> DfResult<LexOrdering> {
    let exprs = parse_physical_sort_exprs(nodes, ctx, schema, proto_converter)?;
    LexOrdering::new(exprs).ok_or_else(|| internal("a sorted shuffle", "an empty order"))
}

/// A stage as it travels: its sub-plan, and for a hash exchange, the exchange's partitioning;
/// for sorted runs, their order and chunk size.
pub struct EncodedStage {
    pub plan: String,
    pub hash: Option<String>,
    pub range: Option<String>,
}

/// Encodes a cut stage's sub-plan and sink.
pub fn encode(root: &Arc<dyn ExecutionPlan>, sink: &SinkKind) -> Result<EncodedStage> {
    let codec = KaskCodec {
        source: Arc::new(super::exchange::PlanningOnly),
    };
    let converter = DefaultPhysicalProtoConverter {};
    let node = converter
        .execution_plan_to_proto(root, &codec)
        .map_err(|e| cannot_travel(&e))?;
    let hash = match sink {
        SinkKind::Hash(exprs, n) => {
            let p = Partitioning::Hash(exprs.clone(), *n);
            let proto =
                serialize_partitioning(&p, &codec, &converter).map_err(|e| cannot_travel(&e))?;
            Some(STANDARD.encode(proto.encode_to_vec()))
        }
        SinkKind::Output | SinkKind::Single | SinkKind::Ranges(..) => None,
    };
    let range = match sink {
        SinkKind::Ranges(ordering, chunk_rows) => {
            let ordering =
                serialize_physical_sort_exprs(ordering.iter().cloned(), &codec, &converter)
                    .map_err(|e| cannot_travel(&e))?;
            let proto = RangeSink {
                ordering,
                chunk_rows: *chunk_rows,
            };
            Some(STANDARD.encode(proto.encode_to_vec()))
        }
        _ => None,
    };
    Ok(EncodedStage {
        plan: STANDARD.encode(node.encode_to_vec()),
        hash,
        range,
    })
}

fn cannot_travel(e: &DataFusionError) -> Error {
    Error::internal(format!(
        "a stage's plan cannot be encoded for its tasks: {}",
        kask_core::error::df_message(e)
    ))
}

/// Decodes a stage's sub-plan and its hash exchange or sorted runs (as [`encode`] made them)
/// in `ctx`; its shuffle readers read from `source`. `Err` holds what went wrong, for the
/// caller to word.
pub fn decode(
    plan: &str,
    (hash, range): (Option<&str>, Option<&str>),
    ctx: &TaskContext,
    source: Arc<dyn ShuffleSource>,
) -> std::result::Result<(Arc<dyn ExecutionPlan>, Option<SinkKind>), String> {
    let codec = KaskCodec { source };
    let converter = DefaultPhysicalProtoConverter {};
    let bytes = STANDARD.decode(plan).map_err(|e| e.to_string())?;
    let node = protobuf::PhysicalPlanNode::try_decode(&bytes).map_err(|e| e.to_string())?;
    let decode_ctx = PhysicalPlanDecodeContext::new(ctx, &codec);
    let root = converter
        .proto_to_execution_plan(&node, &decode_ctx)
        .map_err(|e| e.to_string())?;
    let hash = match hash {
        None => None,
        Some(text) => {
            let bytes = STANDARD.decode(text).map_err(|e| e.to_string())?;
            let proto =
                protobuf::Partitioning::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
            match parse_protobuf_partitioning(Some(&proto), &decode_ctx, &root.schema(), &converter)
                .map_err(|e| e.to_string())?
            {
                Some(Partitioning::Hash(exprs, n)) => Some(SinkKind::Hash(exprs, n)),
                other => return Err(format!("a hash exchange decoded as {other:?}")),
            }
        }
    };
    let range = match range {
        None => None,
        Some(text) => {
            let bytes = STANDARD.decode(text).map_err(|e| e.to_string())?;
            let proto = RangeSink::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
            let ordering = parse_ordering(&proto.ordering, &decode_ctx, &root.schema(), &converter)
                .map_err(|e| e.to_string())?;
            Some(SinkKind::Ranges(ordering, proto.chunk_rows))
        }
    };
    Ok((root, hash.or(range)))
}

/// Whether a decoded stage plan is the plan its text records (see [`without_union_casts`]).
pub fn reads_as(decoded: &Arc<dyn ExecutionPlan>, text: &str) -> bool {
    use super::planner::plan_text;
    plan_text(decoded) == text
        || without_union_casts(Arc::clone(decoded)).is_ok_and(|d| plan_text(&d) == text)
}

/// `plan` without the projections that a union (or interleave) puts over an input whose
/// columns differ from its own only in nullability: each column passed on, or cast to its
/// own type, in place. Decoding a stage builds its unions anew, and a scan decoded from
/// protobuf may say a column of an expression is never null where the planner's said it may
/// be, so such a projection appears; it changes no value.
fn without_union_casts(plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::execution_plan::{
        ChildrenPropertiesMode, ReplaceChildrenOptions,
    };
    use datafusion::physical_plan::projection::ProjectionExec;
    use datafusion::physical_plan::union::{InterleaveExec, UnionExec};

    fn is_pass_through(child: &Arc<dyn ExecutionPlan>, union: &Schema) -> bool {
        let Some(p) = child.downcast_ref::<ProjectionExec>() else {
            return false;
        };
        let input = p.input().schema();
        p.expr().len() == input.fields().len()
            && p.expr().iter().enumerate().all(|(i, e)| {
                let mut inner = &e.expr;
                if let Some(cast) = inner.downcast_ref::<CastExpr>() {
                    if Some(cast.cast_type()) != input.fields().get(i).map(|f| f.data_type()) {
                        return false;
                    }
                    inner = cast.expr();
                }
                inner
                    .downcast_ref::<Column>()
                    .is_some_and(|c| c.index() == i)
                    && union.fields().get(i).is_some_and(|f| f.name() == &e.alias)
            })
    }

    plan.transform_up(|node| {
        if !(node.is::<UnionExec>() || node.is::<InterleaveExec>()) {
            return Ok(Transformed::no(node));
        }
        let schema = node.schema();
        let children: Vec<Arc<dyn ExecutionPlan>> = node
            .children()
            .into_iter()
            .map(|c| {
                if is_pass_through(c, &schema) {
                    Arc::clone(c.children()[0])
                } else {
                    Arc::clone(c)
                }
            })
            .collect();
        if children
            .iter()
            .zip(node.children())
            .all(|(a, b)| Arc::ptr_eq(a, b))
        {
            return Ok(Transformed::no(node));
        }
        node.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
        )
        .map(Transformed::yes)
    })
    .map(|t| t.data)
}
