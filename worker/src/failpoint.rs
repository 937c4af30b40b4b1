//! Failpoints: named places where a process can be made to die on purpose, so that fault tests
//! kill a pod at an exact step rather than at a lucky moment. `KASK_FAILPOINT=<name>` makes the
//! process exit there with the status a SIGKILL leaves (137), without unwinding or cleaning up.
//! The operator passes a DaskJob's `kask.dev/failpoint` annotation to its pods this way.

/// The environment variable naming the failpoint to die at.
pub const ENV: &str = "KASK_FAILPOINT";

/// Right after the commit replaced `_SUCCESS`, before it tidied up or reported.
pub const AFTER_MANIFEST: &str = "after-manifest";

/// Dies here if `KASK_FAILPOINT` names this place.
pub fn hit(name: &str) {
    if std::env::var(ENV).is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: exiting as if killed");
        std::process::exit(137);
    }
}
