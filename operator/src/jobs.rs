//! The batch/v1 Jobs a DaskJob runs as: plan, one Indexed Job per stage, commit, and the
//! cleanup of a deleted job. Their pods run `kask worker ...` with the job's spec in the
//! environment, the storage Secret's allow-listed keys, and a `restricted` security context.

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::error::{Error, Result};
use crate::names;
use kask_api::report::exit;
use kask_api::{DaskJob, PodTemplate, SECRET_KEYS};
use std::collections::BTreeMap;

/// The worker container's name.
const CONTAINER: &str = "kask";

/// The user worker containers run as (the image's `kask` user).
const WORKER_UID: i64 = 65532;

/// What every child Job of one DaskJob shares.
pub struct JobFactory<'a> {
    dj: &'a DaskJob,
    /// The job's worker image, fixed in its status when it started.
    base: String,
    image: String,
    resources: Option<ResourceRequirements>,
    spill_size: Option<Quantity>,
    /// The job's pod template over the operator's.
    template: PodTemplate,
    service_account: Option<String>,
}

/// One step to run.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// List the inputs and write the plan.
    Plan,
    /// Stage `index` named `name`, in `groups` task groups.
    Stage {
        /// Index in the plan.
        index: usize,
        /// The stage's name.
        name: String,
        /// Task groups (completions).
        groups: u32,
        /// Pods at once (parallelism): its share of `spec.workers`.
        pods: u32,
        /// The plan's URL.
        plan: String,
    },
    /// Name the output files and write the manifest.
    Commit {
        /// The plan's URL.
        plan: String,
    },
    /// Remove the scratch prefix of a deleted job.
    Cleanup,
}

/// What worker pods get when their DaskJob does not say: the operator's `--worker-image` and
/// `--worker-resources`, set by the Helm chart's `worker` values.
#[derive(Clone, Debug, Default)]
pub struct WorkerDefaults {
    /// The worker image.
    pub image: String,
    /// Requests and limits of a worker container.
    pub resources: Option<ResourceRequirements>,
    /// The size limit of a worker's `/tmp` volume, where its operators spill.
    pub spill_size: Option<Quantity>,
    /// What a job's `spec.podTemplate` is laid over.
    pub pod_template: PodTemplate,
    /// The service account of jobs without `spec.serviceAccountName`.
    pub service_account: Option<String>,
}

impl<'a> JobFactory<'a> {
    /// The factory for `dj`'s children, whose pods run `image`; `defaults` fill what its
    /// spec leaves out.
    pub fn new(dj: &'a DaskJob, image: &str, defaults: &WorkerDefaults) -> Result<JobFactory<'a>> {
        let uid = dj
            .uid()
            .ok_or_else(|| Error::Invariant("a DaskJob without a UID".into()))?;
        Ok(JobFactory {
            base: names::base(&dj.name_any(), &uid),
            image: image.to_string(),
            resources: dj
                .spec
                .resources
                .clone()
                .or_else(|| defaults.resources.clone()),
            spill_size: defaults.spill_size.clone(),
            template: dj
                .spec
                .pod_template
                .clone()
                .unwrap_or_default()
                .over(&defaults.pod_template),
            service_account: dj
                .spec
                .service_account_name
                .clone()
                .or_else(|| defaults.service_account.clone()),
            dj,
        })
    }

    /// The Job that runs `step`.
    pub fn job(&self, step: &Step, suspend: bool) -> Result<Job> {
        let spec = &self.dj.spec;
        let retries = i32::try_from(spec.retries()).unwrap_or(i32::MAX);
        let (name, stage, args, completions) = match step {
            Step::Plan => (
                names::plan_job(&self.base),
                "plan".to_string(),
                vec!["worker".into(), "plan".into()],
                1,
            ),
            Step::Stage {
                index,
                name,
                groups,
                plan,
                ..
            } => (
                names::stage_job(&self.base, *index),
                names::label_value(name),
                vec![
                    "worker".into(),
                    "run".into(),
                    "--plan".into(),
                    plan.clone(),
                    "--stage".into(),
                    name.clone(),
                ],
                i32::try_from(*groups).unwrap_or(i32::MAX).max(1),
            ),
            Step::Commit { plan } => (
                names::commit_job(&self.base),
                "commit".to_string(),
                vec![
                    "worker".into(),
                    "commit".into(),
                    "--plan".into(),
                    plan.clone(),
                ],
                1,
            ),
            Step::Cleanup => (
                names::cleanup_job(&self.base),
                "cleanup".to_string(),
                vec!["worker".into(), "cleanup".into()],
                1,
            ),
        };
        let uid = self.dj.uid().unwrap_or_default();
        let labels = names::labels(&self.base, &uid, &stage);
        let indexed = matches!(step, Step::Stage { .. });
        let workers = match step {
            Step::Stage { pods, .. } => *pods,
            _ => spec.workers(),
        };
        let workers = i32::try_from(workers).unwrap_or(i32::MAX).max(1);
        let owner = self
            .dj
            .controller_owner_ref(&())
            .ok_or_else(|| Error::Invariant("a DaskJob without a name or UID".into()))?;
        // Queued jobs: Kueue admits the plan, each stage and the commit as Jobs of its own
        // queue and priority. The cleanup of a deleted job never waits in a queue.
        let mut job_labels = labels.clone();
        if !matches!(step, Step::Cleanup) {
            for key in [names::LABEL_QUEUE, names::LABEL_PRIORITY] {
                if let Some(v) = self.dj.labels().get(key) {
                    job_labels.insert(key.to_string(), v.clone());
                }
            }
        }
        Ok(Job {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: self.dj.namespace(),
                labels: Some(job_labels),
                owner_references: Some(vec![OwnerReference {
                    block_owner_deletion: Some(true),
                    ..owner
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(JobSpec {
                completions: Some(completions),
                parallelism: Some(completions.min(workers)),
                completion_mode: Some(if indexed { "Indexed" } else { "NonIndexed" }.into()),
                // Indexed: each task group has its own retries, and one group out of them
                // fails the stage at once instead of letting the others run on.
                backoff_limit_per_index: indexed.then_some(retries),
                max_failed_indexes: indexed.then_some(0),
                backoff_limit: (!indexed).then_some(retries),
                suspend: Some(suspend),
                pod_failure_policy: Some(pod_failure_policy()),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(under(&self.template.labels, labels)),
                        // Pods are owned by their Job; this leads a pod event to its DaskJob.
                        annotations: Some(under(
                            &self.template.annotations,
                            [(names::ANNOTATION_JOB.to_string(), self.dj.name_any())].into(),
                        )),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(self.pod(args, matches!(step, Step::Cleanup), &stage)?),
                },
                ..JobSpec::default()
            }),
            status: None,
        })
    }

    fn pod(&self, args: Vec<String>, cleanup: bool, stage: &str) -> Result<PodSpec> {
        let spec_json = serde_json::to_string(&self.dj.spec)
            .map_err(|e| Error::Invariant(format!("serializing the spec: {e}")))?;
        let plain = |name: &str, value: String| EnvVar {
            name: name.into(),
            value: Some(value),
            value_from: None,
        };
        let mut env = vec![
            plain("KASK_JOB_SPEC", spec_json),
            plain("KASK_JOB_ID", self.dj.uid().unwrap_or_default()),
            plain(
                "KASK_JOB_NAME",
                format!(
                    "{}/{}",
                    self.dj.namespace().unwrap_or_default(),
                    self.dj.name_any()
                ),
            ),
            plain("KASK_LOG", "info".into()),
            plain("KASK_LOG_FORMAT", "json".into()),
            EnvVar {
                name: "POD_NAMESPACE".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.namespace".into(),
                        api_version: None,
                    }),
                    ..EnvVarSource::default()
                }),
            },
        ];
        // The worker keeps its spilling inside the volume's limit, so that a task that needs
        // more fails saying so instead of its pod being evicted.
        if let Some(size) = &self.spill_size {
            env.push(plain("KASK_SPILL_LIMIT", size.0.clone()));
        }
        // The cleanup pod of a failed job writes why it failed into the job's history.
        if cleanup
            && let Some(status) = &self.dj.status
            && status.phase == Some(kask_api::Phase::Failed)
            && let Some(msg) = &status.message
        {
            env.push(plain("KASK_JOB_FAILURE", msg.clone()));
        }
        // Fault tests kill a pod at an exact step (see the worker's failpoints).
        if let Some(point) = self.dj.annotations().get(names::ANNOTATION_FAILPOINT) {
            env.push(plain("KASK_FAILPOINT", point.clone()));
        }
        // Resolved by the kubelet in the pod's (the DaskJob's) namespace: a job can only use
        // its own namespace's Secrets, and the operator never reads them.
        if let Some(secret) = self
            .dj
            .spec
            .storage
            .as_ref()
            .and_then(|s| s.secret_ref.as_ref())
        {
            env.extend(SECRET_KEYS.iter().map(|key| EnvVar {
                name: key.to_string(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.name.clone(),
                        key: key.to_string(),
                        optional: Some(true),
                    }),
                    ..EnvVarSource::default()
                }),
            }));
        }
        // The template's variables replace Kask's of the same name (validation let through
        // only the log's and the Secret's).
        if let Some(extra) = &self.template.env {
            env.retain(|var| !extra.iter().any(|e| e.name == var.name));
            env.extend(extra.iter().cloned());
        }
        let scheduling = self.template.clone();
        Ok(PodSpec {
            priority_class_name: scheduling.priority_class_name,
            image_pull_secrets: scheduling.image_pull_secrets,
            // A chosen service account's token is mounted: web identity (IRSA, Workload
            // Identity) reads it. Otherwise workers talk to object storage, never to the API
            // server, and have no token.
            automount_service_account_token: Some(self.service_account.is_some()),
            service_account_name: self.service_account.clone(),
            node_selector: scheduling.node_selector,
            tolerations: scheduling.tolerations,
            affinity: scheduling.affinity,
            topology_spread_constraints: Some(
                scheduling
                    .topology_spread_constraints
                    .unwrap_or_else(|| spread_over_nodes(self.dj.uid().unwrap_or_default(), stage)),
            )
            .filter(|c| !c.is_empty()),
            restart_policy: Some("Never".into()),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(WORKER_UID),
                run_as_group: Some(WORKER_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some(self.image.clone()),
                image_pull_policy: Some("IfNotPresent".into()),
                args: Some(args),
                env: Some(env),
                resources: self.resources.clone(),
                termination_message_policy: Some("FallbackToLogsOnError".into()),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    run_as_non_root: Some(true),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        add: None,
                    }),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".into(),
                        localhost_profile: None,
                    }),
                    ..SecurityContext::default()
                }),
                volume_mounts: Some(vec![VolumeMount {
                    name: "tmp".into(),
                    mount_path: "/tmp".into(),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: self.spill_size.clone(),
                    ..EmptyDirVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        })
    }
}

/// `own` (Kask's labels or annotations) over the template's `extra`: Kask's keys win, and
/// validation refused the template's under `kask.dev/`.
fn under(
    extra: &Option<BTreeMap<String, String>>,
    own: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = extra.clone().unwrap_or_default();
    all.extend(own);
    all
}

/// A stage's pods spread over nodes as a preference: a lost node then takes few of its tasks
/// with it, and its tasks share more machines. Never a requirement: a stage on a one-node
/// cluster, or on nodes a selector narrowed, schedules as before.
fn spread_over_nodes(uid: String, stage: &str) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(
                [
                    (names::LABEL_JOB_UID.to_string(), uid),
                    (names::LABEL_STAGE.to_string(), stage.to_string()),
                ]
                .into(),
            ),
            match_expressions: None,
        }),
        ..TopologySpreadConstraint::default()
    }]
}

/// One retry layer, and only where a retry can help: a worker's exit code for the user's
/// errors or lasting ones fails the Job at once; a pod stopped from outside (preemption,
/// eviction, a drained node) does not use up a retry.
fn pod_failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(CONTAINER.into()),
                    operator: "In".into(),
                    values: vec![exit::USER, exit::LASTING],
                }),
                on_pod_conditions: None,
            },
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_exit_codes: None,
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: "True".into(),
                }]),
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: revenue, namespace: team-a, uid: 0b6c-44d1}
spec:
  workers: 3
  retries: 2
  storage: {url: "s3://lake/x", secretRef: {name: lake}}
  dataframe:
    inputs: {orders: {path: "orders/*.csv", format: csv}}
    pipeline: [{source: orders}]
  output: {path: out}
"#;

    fn job(extra: &str) -> DaskJob {
        let text = format!("{JOB}{extra}");
        kask_api::load::parse_job("job.yaml", &text).expect("the test job parses")
    }

    fn defaults() -> WorkerDefaults {
        WorkerDefaults {
            image: "registry.example/kask:1".into(),
            resources: Some(ResourceRequirements {
                requests: Some([("cpu".to_string(), Quantity("500m".into()))].into()),
                ..ResourceRequirements::default()
            }),
            spill_size: Some(Quantity("10Gi".into())),
            pod_template: PodTemplate::default(),
            service_account: None,
        }
    }

    fn plan_job(dj: &DaskJob) -> Job {
        let image = crate::decide::worker_image(dj, "registry.example/kask:1");
        JobFactory::new(dj, &image, &defaults())
            .expect("a factory for a valid DaskJob")
            .job(&Step::Plan, false)
            .expect("the plan Job builds")
    }

    fn pod_spec(j: &Job) -> &PodSpec {
        j.spec
            .as_ref()
            .expect("set by the factory")
            .template
            .spec
            .as_ref()
            .expect("set by the factory")
    }

    fn container(job: &Job) -> &Container {
        &pod_spec(job).containers[0]
    }

    #[test]
    fn a_stage_is_an_indexed_job_with_retries_per_index_and_at_most_workers_pods() {
        let dj = job("");
        let f = JobFactory::new(&dj, "registry.example/kask:1", &defaults())
            .expect("a factory for a valid DaskJob");
        let step = Step::Stage {
            index: 1,
            name: "shuffle".into(),
            groups: 8,
            pods: 3,
            plan: "s3://lake/x/_kask/plan.json".into(),
        };
        let j = f.job(&step, false).expect("the stage Job builds");
        assert_eq!(j.metadata.name.as_deref(), Some("revenue-s1"));
        assert_eq!(j.metadata.namespace.as_deref(), Some("team-a"));
        let spec = j.spec.as_ref().expect("set by the factory");
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(8), Some(3)));
        assert_eq!(spec.backoff_limit_per_index, Some(2));
        assert_eq!(spec.max_failed_indexes, Some(0));
        let labels = j.metadata.labels.as_ref().expect("set by the factory");
        assert_eq!(labels["kask.dev/stage"], "shuffle");
        assert_eq!(labels["kask.dev/job-uid"], "0b6c-44d1");
        let owner = &j
            .metadata
            .owner_references
            .as_ref()
            .expect("set by the factory")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("DaskJob", Some(true))
        );
        let args = container(&j).args.clone().expect("set by the factory");
        assert_eq!(args[..2], ["worker".to_string(), "run".to_string()]);
    }

    fn stage_job(dj: &DaskJob) -> Job {
        let step = Step::Stage {
            index: 0,
            name: "s0-scan".into(),
            groups: 4,
            pods: 2,
            plan: "s3://lake/x/_kask/plan.json".into(),
        };
        JobFactory::new(dj, "registry.example/kask:1", &defaults())
            .expect("a factory for a valid DaskJob")
            .job(&step, false)
            .expect("the stage Job builds")
    }

    #[test]
    fn a_stages_pods_prefer_to_spread_over_nodes_and_select_only_their_stage() {
        let j = stage_job(&job(""));
        let pod = pod_spec(&j);
        let spread = pod
            .topology_spread_constraints
            .as_ref()
            .expect("spread by default");
        assert_eq!(spread.len(), 1);
        let c = &spread[0];
        assert_eq!(
            (
                c.topology_key.as_str(),
                c.max_skew,
                c.when_unsatisfiable.as_str()
            ),
            ("kubernetes.io/hostname", 1, "ScheduleAnyway")
        );
        let selector = c
            .label_selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .expect("a label selector");
        // Exactly the stage's pods: the selector is a subset of the pods' own labels.
        let pod_labels = j
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.as_ref())
            .expect("pod labels");
        assert_eq!(selector.len(), 2, "{selector:?}");
        for (k, v) in selector {
            assert_eq!(pod_labels.get(k), Some(v), "{k}");
        }
        assert_eq!(selector["kask.dev/stage"], "s0-scan");
        assert_eq!(selector["kask.dev/job-uid"], "0b6c-44d1");
        assert!(pod.node_selector.is_none() && pod.tolerations.is_none() && pod.affinity.is_none());
    }

    #[test]
    fn the_pod_templates_scheduling_fields_reach_every_pod() {
        let dj = job(
            "  podTemplate:\n    nodeSelector: {pool: batch}\n    tolerations:\n    \
             - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}\n    \
             affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n          \
             nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]\n    \
             topologySpreadConstraints: []\n",
        );
        for j in [stage_job(&dj), plan_job(&dj)] {
            let pod = pod_spec(&j);
            assert_eq!(
                pod.node_selector.as_ref().map(|s| s["pool"].as_str()),
                Some("batch")
            );
            let t = &pod.tolerations.as_ref().expect("passed through")[0];
            assert_eq!(
                (t.key.as_deref(), t.toleration_seconds),
                (Some("node.kubernetes.io/unreachable"), Some(5))
            );
            let terms = &pod
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|n| {
                    n.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .expect("passed through")
                .node_selector_terms;
            assert_eq!(terms.len(), 1);
            // An empty list turns the default spreading off.
            assert!(pod.topology_spread_constraints.is_none());
            // Kask's own fields stay.
            assert_eq!(pod.automount_service_account_token, Some(false));
        }
    }

    #[test]
    fn the_pod_templates_metadata_variables_and_identity_reach_every_pod_under_kasks_own() {
        let dj = job(
            "  serviceAccountName: lake-reader\n  podTemplate:\n    labels: {team: risk}\n    \
             annotations: {team: risk}\n    priorityClassName: batch-high\n    \
             imagePullSecrets: [{name: registry}]\n    \
             env: [{name: KASK_LOG, value: debug}, {name: AWS_REGION, value: eu-west-1}, \
             {name: AWS_ROLE_ARN, value: \"arn:aws:iam::1:role/lake\"}]\n",
        );
        let mut platform = defaults();
        platform.pod_template = serde_json::from_str(
            r#"{"annotations":{"sidecar.istio.io/inject":"false","team":"platform"},
                "priorityClassName":"batch-low"}"#,
        )
        .expect("a template");
        platform.service_account = Some("workers".into());
        let f = JobFactory::new(&dj, "registry.example/kask:1", &platform).expect("a factory");
        for j in [
            f.job(&Step::Plan, false).expect("plan"),
            f.job(&Step::Cleanup, false).expect("cleanup"),
        ] {
            let meta = j
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .expect("pod metadata");
            let labels = meta.labels.as_ref().expect("labels");
            assert_eq!(labels["team"], "risk");
            assert!(
                labels.contains_key("kask.dev/job-uid"),
                "Kask's labels stay"
            );
            let annotations = meta.annotations.as_ref().expect("annotations");
            assert_eq!(annotations["sidecar.istio.io/inject"], "false");
            assert_eq!(annotations["team"], "risk", "the job's value wins");
            assert_eq!(annotations[names::ANNOTATION_JOB], "revenue");
            let pod = pod_spec(&j);
            assert_eq!(pod.priority_class_name.as_deref(), Some("batch-high"));
            assert_eq!(
                pod.image_pull_secrets.as_ref().map(|s| s[0].name.as_str()),
                Some("registry")
            );
            assert_eq!(pod.service_account_name.as_deref(), Some("lake-reader"));
            assert_eq!(pod.automount_service_account_token, Some(true));
            let env = pod.containers[0].env.as_ref().expect("env");
            let named = |n: &str| env.iter().filter(|e| e.name == n).collect::<Vec<_>>();
            // One of each name: the template's value replaced Kask's and the Secret's.
            assert_eq!(named("KASK_LOG").len(), 1);
            assert_eq!(named("KASK_LOG")[0].value.as_deref(), Some("debug"));
            assert_eq!(named("AWS_REGION").len(), 1);
            assert_eq!(named("AWS_REGION")[0].value.as_deref(), Some("eu-west-1"));
            assert!(named("AWS_REGION")[0].value_from.is_none());
            assert_eq!(
                named("AWS_ACCESS_KEY_ID").len(),
                1,
                "the other Secret keys stay"
            );
            assert_eq!(named("AWS_ROLE_ARN").len(), 1);
        }
        // The operator's account when the job names none; no account, no token.
        let plain = job("");
        let f = JobFactory::new(&plain, "registry.example/kask:1", &platform).expect("a factory");
        let j = f.job(&Step::Plan, false).expect("plan");
        assert_eq!(
            pod_spec(&j).service_account_name.as_deref(),
            Some("workers")
        );
        let j = plan_job(&plain);
        assert_eq!(pod_spec(&j).service_account_name, None);
        assert_eq!(pod_spec(&j).automount_service_account_token, Some(false));
    }

    #[test]
    fn a_queued_jobs_queue_and_priority_labels_reach_its_jobs_but_not_its_cleanup() {
        let text = JOB.replace(
            "metadata: {name: revenue, namespace: team-a, uid: 0b6c-44d1}",
            "metadata: {name: revenue, namespace: team-a, uid: 0b6c-44d1, labels: \
             {kueue.x-k8s.io/queue-name: batch, kueue.x-k8s.io/priority-class: high}}",
        );
        let dj = kask_api::load::parse_job("job.yaml", &text).expect("the test job parses");
        let f = JobFactory::new(&dj, "registry.example/kask:1", &defaults())
            .expect("a factory for a valid DaskJob");
        for j in [stage_job(&dj), plan_job(&dj)] {
            let labels = j.metadata.labels.as_ref().expect("set by the factory");
            assert_eq!(labels["kueue.x-k8s.io/queue-name"], "batch");
            assert_eq!(labels["kueue.x-k8s.io/priority-class"], "high");
        }
        let cleanup = f
            .job(&Step::Cleanup, false)
            .expect("the cleanup Job builds");
        let labels = cleanup
            .metadata
            .labels
            .as_ref()
            .expect("set by the factory");
        assert!(
            !labels.contains_key("kueue.x-k8s.io/queue-name"),
            "{labels:?}"
        );
    }

    #[test]
    fn pods_pass_the_restricted_pod_security_standard() {
        let dj = job("");
        let j = plan_job(&dj);
        let pod = pod_spec(&j);
        let psc = pod.security_context.as_ref().expect("set by the factory");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile
                .as_ref()
                .expect("set by the factory")
                .type_,
            "RuntimeDefault"
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
        let sc = container(&j)
            .security_context
            .as_ref()
            .expect("set by the factory");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let caps = sc.capabilities.as_ref().expect("set by the factory");
        assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert_eq!(caps.add, None);
        assert!(pod.volumes.iter().flatten().all(|v| v.host_path.is_none()));
    }

    fn env_value<'a>(job: &'a Job, name: &str) -> Option<&'a str> {
        container(job)
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
    }

    #[test]
    fn pods_know_their_job_by_id_and_name_and_a_failpoint_only_when_annotated() {
        let plain = plan_job(&job(""));
        assert_eq!(env_value(&plain, "KASK_JOB_ID"), Some("0b6c-44d1"));
        assert_eq!(env_value(&plain, "KASK_JOB_NAME"), Some("team-a/revenue"));
        assert_eq!(env_value(&plain, "KASK_FAILPOINT"), None);
        let text = JOB.replace(
            "uid: 0b6c-44d1}",
            "uid: 0b6c-44d1, annotations: {kask.dev/failpoint: after-manifest}}",
        );
        let annotated = kask_api::load::parse_job("job.yaml", &text).expect("parses");
        let j = plan_job(&annotated);
        assert_eq!(env_value(&j, "KASK_FAILPOINT"), Some("after-manifest"));
    }

    #[test]
    fn only_the_cleanup_pod_of_a_failed_job_is_told_why_it_failed() {
        let cleanup = |dj: &DaskJob| {
            JobFactory::new(dj, "registry.example/kask:1", &defaults())
                .expect("a factory for a valid DaskJob")
                .job(&Step::Cleanup, false)
                .expect("the cleanup Job builds")
        };
        let mut dj = job("");
        assert_eq!(env_value(&cleanup(&dj), "KASK_JOB_FAILURE"), None);
        dj.status = Some(kask_api::DaskJobStatus {
            phase: Some(kask_api::Phase::Failed),
            message: Some("stage s0, task 3: input t/3.csv line 7: not a number".into()),
            ..kask_api::DaskJobStatus::default()
        });
        assert_eq!(
            env_value(&cleanup(&dj), "KASK_JOB_FAILURE"),
            Some("stage s0, task 3: input t/3.csv line 7: not a number")
        );
        assert_eq!(env_value(&plan_job(&dj), "KASK_JOB_FAILURE"), None);
        // A job cleaned up after it succeeded (or was deleted while running) has no failure.
        if let Some(s) = dj.status.as_mut() {
            s.phase = Some(kask_api::Phase::Running);
        }
        assert_eq!(env_value(&cleanup(&dj), "KASK_JOB_FAILURE"), None);
    }

    #[test]
    fn only_allow_listed_secret_keys_reach_the_pod_from_the_jobs_own_secret() {
        let dj = job("");
        let j = plan_job(&dj);
        let c = container(&j);
        assert!(c.env_from.is_none(), "never the whole Secret");
        let refs: Vec<_> = c
            .env
            .iter()
            .flatten()
            .filter_map(|e| Some((e, e.value_from.as_ref()?.secret_key_ref.as_ref()?)))
            .collect();
        assert_eq!(refs.len(), SECRET_KEYS.len());
        for (env, r) in refs {
            assert_eq!(r.name, "lake");
            assert_eq!(env.name, r.key, "each key under its own name");
            assert!(SECRET_KEYS.contains(&r.key.as_str()));
            assert_eq!(r.optional, Some(true));
        }
    }

    #[test]
    fn workers_spill_into_a_tmp_volume_of_the_configured_size_and_know_its_limit() {
        let plan = plan_job(&job(""));
        let pod = plan
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("set by the factory");
        let tmp = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "tmp")
            .and_then(|v| v.empty_dir.as_ref())
            .expect("a /tmp emptyDir");
        assert_eq!(tmp.size_limit, Some(Quantity("10Gi".into())));
        let env = container(&plan).env.as_ref().expect("env");
        let limit = env
            .iter()
            .find(|e| e.name == "KASK_SPILL_LIMIT")
            .and_then(|e| e.value.as_deref());
        assert_eq!(limit, Some("10Gi"));
    }

    #[test]
    fn the_operators_defaults_fill_what_the_spec_leaves_out() {
        let dj = job("");
        let plan = plan_job(&dj);
        let c = container(&plan);
        assert_eq!(c.image.as_deref(), Some("registry.example/kask:1"));
        assert_eq!(c.resources, defaults().resources);

        let own = job("  image: mine:2\n  resources: {limits: {memory: 1Gi}}\n");
        let plan = plan_job(&own);
        let c = container(&plan);
        assert_eq!(c.image.as_deref(), Some("mine:2"));
        let limits = c
            .resources
            .as_ref()
            .expect("set by the factory")
            .limits
            .as_ref()
            .expect("set by the factory");
        assert_eq!(limits["memory"], Quantity("1Gi".into()));
        assert!(
            c.resources
                .as_ref()
                .expect("set by the factory")
                .requests
                .is_none()
        );
    }

    #[test]
    fn user_errors_fail_the_job_at_once_and_disruptions_use_no_retry() {
        let j = plan_job(&job(""));
        let policy = j
            .spec
            .as_ref()
            .and_then(|s| s.pod_failure_policy.as_ref())
            .expect("every Job has a podFailurePolicy");
        let fail = &policy.rules[0];
        assert_eq!(fail.action, "FailJob");
        let codes = fail.on_exit_codes.as_ref().expect("by exit code");
        assert_eq!(codes.operator, "In");
        assert_eq!(codes.values, vec![2, 4]);
        assert_eq!(codes.container_name.as_deref(), Some("kask"));
        assert_eq!(container(&j).name, "kask");
        let ignore = &policy.rules[1];
        assert_eq!(ignore.action, "Ignore");
        let cond = &ignore.on_pod_conditions.as_ref().expect("by condition")[0];
        assert_eq!(cond.type_, "DisruptionTarget");
    }

    #[test]
    fn a_stage_label_is_always_a_valid_label_value() {
        let dj = job("");
        let f = JobFactory::new(&dj, "img", &defaults()).expect("a factory");
        let step = Step::Stage {
            index: 0,
            name: "s0-scan-".into(),
            groups: 1,
            pods: 1,
            plan: "p".into(),
        };
        let j = f.job(&step, false).expect("builds");
        let labels = j.metadata.labels.as_ref().expect("set");
        assert_eq!(labels["kask.dev/stage"], "s0-scan");
    }
}
