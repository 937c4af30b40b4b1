//! How a job's worker pods are shaped: `spec.podTemplate`, passed to every pod the job creates,
//! over the defaults the operator is given (the chart's `worker.podTemplate`). Kask's own
//! fields (the container, its security context, the spill volume, its labels and variables)
//! are not among them, so pods stay within the `restricted` standard and Kask finds its pods.

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, Toleration, TopologySpreadConstraint,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Variables of the worker container that `podTemplate.env` may set although Kask sets them
/// too: the log filter and format.
pub const ENV_USERS_MAY_SET: &[&str] = &["KASK_LOG", "KASK_LOG_FORMAT"];

/// Label and annotation keys under this prefix are Kask's.
pub const KASK_PREFIX: &str = "kask.dev/";

/// The job's worker pods, as in a pod spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplate {
    /// Labels of the pods, besides Kask's own (`kask.dev/...`, which cannot be set here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations of the pods, e.g. `sidecar.istio.io/inject: "false"` to keep a service
    /// mesh's sidecar out of them (a Job's pod with a sidecar never ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Variables of the worker container, e.g. `KASK_LOG: debug` for a more detailed log, or
    /// `AWS_ROLE_ARN` with a service account's web identity. Names starting with `KASK_` are
    /// Kask's own, except `KASK_LOG` and `KASK_LOG_FORMAT`. A variable also named in the
    /// storage Secret's allow-list takes this value instead of the Secret's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,

    /// The pods' priority class: which pods the scheduler evicts first when a cluster is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Secrets (in the job's namespace) for pulling the worker image from a private registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,

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

impl PodTemplate {
    /// This template over `defaults`: each field this one sets replaces the default, except
    /// labels, annotations and variables, which are merged key by key (this one's value
    /// wins), so that a platform's annotation stays when a job adds its own.
    pub fn over(&self, defaults: &PodTemplate) -> PodTemplate {
        fn merged(
            mine: &Option<BTreeMap<String, String>>,
            theirs: &Option<BTreeMap<String, String>>,
        ) -> Option<BTreeMap<String, String>> {
            match (mine, theirs) {
                (Some(m), Some(t)) => {
                    let mut all = t.clone();
                    all.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Some(all)
                }
                _ => mine.clone().or_else(|| theirs.clone()),
            }
        }
        let env = match (&self.env, &defaults.env) {
            (Some(mine), Some(theirs)) => {
                let mut all: Vec<EnvVar> = theirs
                    .iter()
                    .filter(|t| !mine.iter().any(|m| m.name == t.name))
                    .cloned()
                    .collect();
                all.extend(mine.iter().cloned());
                Some(all)
            }
            (mine, theirs) => mine.clone().or_else(|| theirs.clone()),
        };
        PodTemplate {
            labels: merged(&self.labels, &defaults.labels),
            annotations: merged(&self.annotations, &defaults.annotations),
            env,
            priority_class_name: self
                .priority_class_name
                .clone()
                .or_else(|| defaults.priority_class_name.clone()),
            image_pull_secrets: self
                .image_pull_secrets
                .clone()
                .or_else(|| defaults.image_pull_secrets.clone()),
            node_selector: self
                .node_selector
                .clone()
                .or_else(|| defaults.node_selector.clone()),
            tolerations: self
                .tolerations
                .clone()
                .or_else(|| defaults.tolerations.clone()),
            affinity: self.affinity.clone().or_else(|| defaults.affinity.clone()),
            topology_spread_constraints: self
                .topology_spread_constraints
                .clone()
                .or_else(|| defaults.topology_spread_constraints.clone()),
        }
    }

    /// What is wrong with this template, as (field under `podTemplate`, message): keys and
    /// names that are Kask's own.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (field, map) in [("labels", &self.labels), ("annotations", &self.annotations)] {
            for key in map.iter().flat_map(|m| m.keys()) {
                if key.starts_with(KASK_PREFIX) {
                    out.push((
                        format!("{field}.{key}"),
                        format!("keys under {KASK_PREFIX} are Kask's own; choose another key"),
                    ));
                }
            }
        }
        for (i, var) in self.env.iter().flatten().enumerate() {
            let name = var.name.as_str();
            if (name.starts_with("KASK_") && !ENV_USERS_MAY_SET.contains(&name))
                || name == "POD_NAMESPACE"
            {
                out.push((
                    format!("env[{i}].name"),
                    format!(
                        "{name} is set by Kask; of its variables only {} may be set here",
                        ENV_USERS_MAY_SET.join(" and ")
                    ),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(yaml: &str) -> PodTemplate {
        serde_yaml::from_str(yaml).expect("a pod template")
    }

    #[test]
    fn a_jobs_template_replaces_defaults_field_by_field_and_merges_maps_by_key() {
        let defaults = template(
            "annotations: {sidecar.istio.io/inject: \"false\", team: data}\n\
             env: [{name: KASK_LOG, value: info}, {name: AWS_REGION, value: eu-west-1}]\n\
             priorityClassName: batch-low\nnodeSelector: {pool: batch}\n",
        );
        let job = template(
            "annotations: {team: risk}\nenv: [{name: KASK_LOG, value: debug}]\n\
             priorityClassName: batch-high\n",
        );
        let t = job.over(&defaults);
        let annotations = t.annotations.expect("merged");
        assert_eq!(annotations["sidecar.istio.io/inject"], "false");
        assert_eq!(annotations["team"], "risk");
        let env: Vec<(String, Option<String>)> = t
            .env
            .expect("merged")
            .into_iter()
            .map(|v| (v.name, v.value))
            .collect();
        assert_eq!(
            env,
            [
                ("AWS_REGION".to_string(), Some("eu-west-1".to_string())),
                ("KASK_LOG".to_string(), Some("debug".to_string())),
            ]
        );
        assert_eq!(t.priority_class_name.as_deref(), Some("batch-high"));
        assert_eq!(
            t.node_selector.expect("the default")["pool"],
            "batch".to_string()
        );
        assert_eq!(PodTemplate::default().over(&defaults), defaults);
    }

    #[test]
    fn kasks_own_keys_and_variables_are_refused_by_name() {
        let t = template(
            "labels: {kask.dev/stage: x, app: y}\n\
             env: [{name: KASK_JOB_SPEC, value: \"{}\"}, {name: KASK_LOG, value: debug}, {name: POD_NAMESPACE, value: z}]\n",
        );
        let fields: Vec<String> = t.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            ["labels.kask.dev/stage", "env[0].name", "env[2].name"]
        );
    }
}
