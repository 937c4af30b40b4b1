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
use datafusion::physical_expr::Partitioning;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::from_proto::parse_protobuf_partitioning;
use datafusion_proto::physical_plan::to_proto::serialize_partitioning;
use datafusion_proto::physical_plan::{
    AsExecutionPlan, DefaultPhysicalProtoConverter, PhysicalExtensionCodec,
    PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf;
use prost::Message;

use super::csv_guard::NoLineBreaks;
use super::exchange::{ReadMode, ShuffleReaderExec, ShuffleSource, SinkKind};
use kask_core::error::{Error, Result};

/// One of Kask's nodes. Its inputs travel beside it in DataFusion's own message.
#[derive(Clone, PartialEq, Message)]
struct KaskNode {
    #[prost(oneof = "Node", tags = "1, 2")]
    node: Option<Node>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Node {
    #[prost(message, tag = "1")]
    Reader(ReaderNode),
    #[prost(message, tag = "2")]
    NoLineBreaks(protobuf::EmptyMessage),
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
                let mode = if r.per_map {
                    ReadMode::Map
                } else {
                    ReadMode::Partition
                };
                Ok(Arc::new(ShuffleReaderExec::new(
                    stage,
                    mode,
                    schema,
                    partitioning,
                    Arc::clone(&self.source),
                )))
            }
            (Some(Node::NoLineBreaks(_)), [input]) => {
                Ok(Arc::new(NoLineBreaks::new(Arc::clone(input))))
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
            })
        } else if node.is::<NoLineBreaks>() {
            Node::NoLineBreaks(protobuf::EmptyMessage {})
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

/// A stage as it travels: its sub-plan, and for a hash exchange, the exchange's partitioning.
pub struct EncodedStage {
    pub plan: String,
    pub hash: Option<String>,
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
        SinkKind::Output | SinkKind::Single => None,
    };
    Ok(EncodedStage {
        plan: STANDARD.encode(node.encode_to_vec()),
        hash,
    })
}

fn cannot_travel(e: &DataFusionError) -> Error {
    Error::internal(format!(
        "a stage's plan cannot be encoded for its tasks: {}",
        kask_core::error::df_message(e)
    ))
}

/// Decodes a stage's sub-plan and its hash exchange (as [`encode`] made them) in `ctx`; its
/// shuffle readers read from `source`. `Err` holds what went wrong, for the caller to word.
pub fn decode(
    plan: &str,
    hash: Option<&str>,
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
    Ok((root, hash))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::physical_expr::expressions::Column;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::exchange::PlanningOnly;
    use crate::planner::plan_text;

    #[test]
    fn kask_nodes_and_a_hash_exchange_survive_the_trip() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let key: Arc<dyn datafusion::physical_expr::PhysicalExpr> = Arc::new(Column::new("k", 0));
        let reader: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReaderExec::new(
            3,
            ReadMode::Partition,
            Arc::clone(&schema),
            Partitioning::Hash(vec![Arc::clone(&key)], 4),
            Arc::new(PlanningOnly),
        ));
        let root: Arc<dyn ExecutionPlan> = Arc::new(NoLineBreaks::new(reader));
        let sink = SinkKind::Hash(vec![Arc::new(Column::new("s", 1))], 8);
        let encoded = encode(&root, &sink).expect("encodes");
        let ctx = SessionContext::new();
        let (back, hash) = decode(
            &encoded.plan,
            encoded.hash.as_deref(),
            &ctx.task_ctx(),
            Arc::new(PlanningOnly),
        )
        .expect("decodes");
        assert_eq!(plan_text(&back), plan_text(&root));
        assert!(back.is::<NoLineBreaks>());
        let [child] = back.children()[..] else {
            panic!("one input")
        };
        let r = child
            .downcast_ref::<ShuffleReaderExec>()
            .expect("a shuffle reader");
        assert_eq!((r.stage(), r.mode()), (3, ReadMode::Partition));
        assert_eq!(r.schema(), schema);
        match r.properties().output_partitioning() {
            Partitioning::Hash(exprs, 4) => assert_eq!(exprs[0].to_string(), "k@0"),
            other => panic!("{other:?}"),
        }
        match hash {
            Some(SinkKind::Hash(exprs, 8)) => assert_eq!(exprs[0].to_string(), "s@1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bytes_that_are_not_a_plan_are_refused() {
        let ctx = SessionContext::new();
        for plan in ["not base64!", "AAAA/w=="] {
            assert!(decode(plan, None, &ctx.task_ctx(), Arc::new(PlanningOnly)).is_err());
        }
    }
}
