//! Prometheus metrics of the operator, served on `/metrics`.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use kask_api::Phase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    jobs: Family<PhaseLabel, Gauge>,
    phases: Mutex<HashMap<String, Phase>>,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconciles that ended in an error.
    pub reconcile_errors: Counter,
    /// Seconds per reconcile.
    pub reconcile_seconds: Histogram,
    /// Tasks of finished stages.
    pub tasks_succeeded: Counter,
    /// Failed worker pods (task group attempts).
    pub tasks_failed: Counter,
    /// Seconds per stage, first pod start to last pod end.
    pub stage_seconds: Histogram,
    /// 1 while this replica reconciles (holds the Lease, or runs without election).
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let jobs = Family::<PhaseLabel, Gauge>::default();
        let reconciles = Counter::default();
        let reconcile_errors = Counter::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let tasks_succeeded = Counter::default();
        let tasks_failed = Counter::default();
        let stage_seconds = Histogram::new(exponential_buckets(0.5, 2.0, 14));
        let leader = Gauge::default();

        let mut r = Registry::with_prefix("kask");
        r.register("daskjobs", "DaskJobs by phase", jobs.clone());
        r.register("reconcile", "Reconciles run", reconciles.clone());
        r.register(
            "reconcile_errors",
            "Reconciles that failed",
            reconcile_errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Seconds per reconcile",
            reconcile_seconds.clone(),
        );
        r.register(
            "tasks_succeeded",
            "Tasks of finished stages",
            tasks_succeeded.clone(),
        );
        r.register(
            "task_pods_failed",
            "Worker pods (task group attempts) that failed",
            tasks_failed.clone(),
        );
        r.register(
            "stage_duration_seconds",
            "Seconds per stage, first pod start to last pod end",
            stage_seconds.clone(),
        );
        r.register(
            "leader",
            "1 while this replica reconciles: it holds the leader Lease, or runs without election",
            leader.clone(),
        );
        Metrics {
            registry: r,
            jobs,
            phases: Mutex::default(),
            reconciles,
            reconcile_errors,
            reconcile_seconds,
            tasks_succeeded,
            tasks_failed,
            stage_seconds,
            leader,
        }
    }
}

impl Metrics {
    /// Records a job's phase (None: the job is gone).
    pub fn phase(&self, uid: &str, phase: Option<Phase>) {
        let Ok(mut phases) = self.phases.lock() else {
            return;
        };
        match phase {
            Some(p) => phases.insert(uid.to_string(), p),
            None => phases.remove(uid),
        };
        for p in [
            Phase::Pending,
            Phase::Running,
            Phase::Succeeded,
            Phase::Failed,
            Phase::Suspended,
        ] {
            let n = phases.values().filter(|v| **v == p).count();
            self.jobs
                .get_or_create(&PhaseLabel {
                    phase: format!("{p:?}"),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_names() {
        let m = Metrics::default();
        m.reconciles.inc();
        m.phase("a", Some(Phase::Running));
        m.phase("b", Some(Phase::Running));
        m.phase("b", None);
        let text = m.render();
        assert!(text.contains("kask_reconcile_total 1"), "{text}");
        assert!(
            text.contains("kask_daskjobs{phase=\"Running\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kask_reconcile_duration_seconds_bucket"),
            "{text}"
        );
    }
}
