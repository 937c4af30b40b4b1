//! Status conditions with Kubernetes conventions, so that `kubectl wait
//! --for=condition=Complete` and `--for=condition=Failed` work on DaskJobs.

use kask_api::{Condition, DaskJobStatus};

/// Sets condition `type_` (keeping its transition time when its status does not change).
pub fn set(
    status: &mut DaskJobStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) {
    let value = if value { "True" } else { "False" };
    let transition = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == value)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.to_string());
    status.conditions.retain(|c| c.type_ != type_);
    status.conditions.push(Condition {
        type_: type_.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: (!message.is_empty()).then(|| message.to_string()),
        last_transition_time: Some(transition),
        observed_generation: generation,
    });
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transition_time_changes_only_with_the_status() {
        let mut s = DaskJobStatus::default();
        set(&mut s, "Complete", false, "Running", "", Some(1), "t1");
        set(&mut s, "Complete", false, "Running", "", Some(1), "t2");
        assert_eq!(s.conditions[0].last_transition_time.as_deref(), Some("t1"));
        set(&mut s, "Complete", true, "Succeeded", "done", Some(1), "t3");
        assert_eq!(s.conditions[0].last_transition_time.as_deref(), Some("t3"));
        assert_eq!(s.conditions[0].status, "True");
        assert_eq!(s.conditions.len(), 1);
    }
}
