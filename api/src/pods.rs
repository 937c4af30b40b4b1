//! Where a job's worker pods may run: the scheduling fields of `spec.podTemplate`, passed to
//! every pod the job creates. Kask's own fields (the container, its security context, the
//! spill volume) are not among them, so pods stay within the `restricted` standard.

use k8s_openapi::api::core::v1::{Affinity, Toleration, TopologySpreadConstraint};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Scheduling of the job's worker pods, as in a pod spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplate {
    /// Labels a node must have for the pods to run on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Taints of nodes the pods may run on, and how long they stay on a node that turns
    /// unreachable or not ready (a short `tolerationSeconds` moves a lost node's tasks sooner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Node and pod affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// How the pods of one stage spread over the cluster. Default: over nodes
    /// (`kubernetes.io/hostname`) with a skew of at most one, as a preference (`ScheduleAnyway`),
    /// so that one node's loss costs a stage as little as possible. An empty list turns
    /// spreading off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}
