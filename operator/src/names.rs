//! Deterministic names and labels of a DaskJob's children: the same DaskJob always maps to the
//! same Job names, so a restarted operator finds what it created instead of creating it twice.

use std::collections::BTreeMap;

/// The DaskJob's name, on everything it creates.
pub const LABEL_JOB: &str = "kask.dev/job";
/// The DaskJob's UID, which the operator selects children by (a name can be reused).
pub const LABEL_JOB_UID: &str = "kask.dev/job-uid";
/// The step: `plan`, a stage's name, `commit` or `cleanup`.
pub const LABEL_STAGE: &str = "kask.dev/stage";
/// An annotation naming a failpoint its pods die at (`KASK_FAILPOINT`), for fault tests.
pub const ANNOTATION_FAILPOINT: &str = "kask.dev/failpoint";
/// The DaskJob's full name on its pods (names can be longer than a label value allows).
pub const ANNOTATION_JOB: &str = "kask.dev/daskjob";
/// Kueue's queue label: a DaskJob carrying it is admitted through that LocalQueue, each of its
/// plan, stage and commit Jobs by Kueue's own batch/Job integration.
pub const LABEL_QUEUE: &str = "kueue.x-k8s.io/queue-name";
/// Kueue's workload priority class label, passed on with the queue label.
pub const LABEL_PRIORITY: &str = "kueue.x-k8s.io/priority-class";
/// Removes the scratch prefix before a deleted DaskJob goes.
pub const FINALIZER: &str = "kask.dev/cleanup";

/// Kubernetes derives pod hostnames `<job>-<index>` and labels from a Job's name, which must
/// stay within 63 characters with room for the suffixes added here and by the Job controller.
const MAX_BASE: usize = 40;

/// The prefix of every child's name: the DaskJob's name, or when that is too long its start
/// and part of the UID (so two long names with the same start still differ).
pub fn base(name: &str, uid: &str) -> String {
    if name.len() <= MAX_BASE {
        return name.to_string();
    }
    let mut cut = MAX_BASE - 6;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = name[..cut].trim_end_matches('-');
    let tag: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(5)
        .collect();
    format!("{stem}-{tag}")
}

/// The plan Job.
pub fn plan_job(base: &str) -> String {
    format!("{base}-plan")
}

/// Stage `i`'s Job.
pub fn stage_job(base: &str, i: usize) -> String {
    format!("{base}-s{i}")
}

/// The commit Job.
pub fn commit_job(base: &str) -> String {
    format!("{base}-commit")
}

/// The cleanup Job of a deleted DaskJob.
pub fn cleanup_job(base: &str) -> String {
    format!("{base}-cleanup")
}

/// `value` as a valid label value: at most 63 characters of `[A-Za-z0-9._-]`, beginning and
/// ending with an alphanumeric (others replaced by `-`, the ends trimmed); `x` if nothing is
/// left. Stage names come from the plan pod, which keeps them valid; this makes sure of it.
pub fn label_value(value: &str) -> String {
    let mapped: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "x".into()
    } else {
        trimmed.into()
    }
}

/// The labels of a child Job and its pods.
pub fn labels(name: &str, uid: &str, stage: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_JOB.to_string(), name.to_string()),
        (LABEL_JOB_UID.to_string(), uid.to_string()),
        (LABEL_STAGE.to_string(), stage.to_string()),
        (
            "app.kubernetes.io/name".to_string(),
            "kask-worker".to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "kask-operator".to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_ones_cut_with_the_uid() {
        assert_eq!(base("revenue", "0b1c-22"), "revenue");
        let long = "a".repeat(80);
        let b = base(&long, "7f3e9a1c-aaaa");
        assert!(b.len() <= MAX_BASE, "{b}");
        assert!(b.ends_with("-7f3e9"), "{b}");
        assert!(stage_job(&b, 12).len() + "-99-abcde".len() <= 63);
    }

    #[test]
    fn label_values_are_valid_whatever_the_stage_name() {
        for (raw, want) in [
            ("s0-scan-orders", "s0-scan-orders"),
            ("s0-scan-", "s0-scan"),
            ("数据", "x"),
            ("-_.", "x"),
            ("a b", "a-b"),
        ] {
            assert_eq!(label_value(raw), want, "{raw:?}");
        }
        assert_eq!(label_value(&"z".repeat(100)).len(), 63);
    }
}
