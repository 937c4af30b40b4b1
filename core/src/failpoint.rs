//! Failpoints: named places where a process can be made to die on purpose, so that fault tests
//! kill a pod at an exact step rather than at a lucky moment. `KASK_FAILPOINT=<name>` makes the
//! process exit there with the status a SIGKILL leaves (137), without unwinding or cleaning up.
//! `KASK_FAILPOINT=slow-commit` instead makes a commit wait a while before it starts, so that a
//! test can act (kill the operator, say) while a commit Job runs, and `KASK_FAILPOINT=slow-tasks`
//! makes each task wait a second before it starts, so that a stage lasts long enough for a test
//! to kill, evict or delete its pods mid-way however busy the machine. The operator passes a
//! DaskJob's `kask.dev/failpoint` annotation to its pods this way.

/// The environment variable naming the failpoint to die at.
pub const ENV: &str = "KASK_FAILPOINT";

/// Right after the commit replaced `_SUCCESS`, before it tidied up or reported.
pub const AFTER_MANIFEST: &str = "after-manifest";

/// Before a commit starts: it waits [`SLOW_COMMIT_PAUSE`] first.
pub const SLOW_COMMIT: &str = "slow-commit";

/// How long a commit waits at [`SLOW_COMMIT`]: long enough for many operator restarts.
pub const SLOW_COMMIT_PAUSE: std::time::Duration = std::time::Duration::from_secs(8);

/// Before each task that is not committed yet: it waits [`SLOW_TASK_PAUSE`] first.
pub const SLOW_TASKS: &str = "slow-tasks";

/// How long a task waits at [`SLOW_TASKS`].
pub const SLOW_TASK_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

fn named(name: &str) -> bool {
    std::env::var(ENV).is_ok_and(|v| v == name)
}

/// Waits `how_long` here if `KASK_FAILPOINT` names this place.
pub async fn pause(name: &str, how_long: std::time::Duration) {
    if named(name) {
        eprintln!("failpoint {name}: waiting {how_long:?}");
        tokio::time::sleep(how_long).await;
    }
}

/// Dies here if `KASK_FAILPOINT` names this place.
pub fn hit(name: &str) {
    if named(name) {
        eprintln!("failpoint {name}: exiting as if killed");
        std::process::exit(137);
    }
}
