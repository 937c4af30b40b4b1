//! What a pod's process cost, measured by the process itself: no other operator reports a job's
//! CPU time and peak memory per stage, and the kubelet's metrics would need another component.

use kask_api::report::TaskReport;

/// CPU time and peak resident memory of this process so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User and system CPU seconds.
    pub cpu_seconds: f64,
    /// Peak resident set size, in bytes.
    pub peak_memory_bytes: u64,
    /// Resident memory in use now, in bytes: the resident set less the pages freed lazily
    /// (`MADV_FREE`), which the allocator gave back and the kernel takes when it needs them
    /// (and which the peak resident set still counts).
    pub memory_bytes: u64,
}

impl Usage {
    /// Reads the process's CPU time (`/proc/self/stat`) and peak resident memory (`VmHWM` in
    /// `/proc/self/status`); zeros where they cannot be read.
    pub fn now() -> Usage {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        // The kernel counts `LazyFree` by walking every page table of the process, about 2.5%
        // of all CPU time in `perf` of a TPC-H SF10 query at five reads a second; only a
        // process whose allocator frees lazily has any.
        let rollup = if crate::memory::limited() {
            std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default()
        } else {
            String::new()
        };
        Usage {
            cpu_seconds: cpu_seconds(&stat),
            peak_memory_bytes: peak_memory_bytes(&status),
            memory_bytes: status_kb(&status, "VmRSS:")
                .saturating_sub(status_kb(&rollup, "LazyFree:")),
        }
    }

    /// Copies the figures into a report: the CPU time, and as peak memory the highest memory
    /// in use the process's sampler saw ([`crate::history::sampler`], five times a second), or
    /// the peak resident set when nothing was sampled. The peak resident set counts pages the
    /// allocator freed lazily: a worker under a 256 MiB cgroup reported 293 MiB without being
    /// killed.
    pub fn fill(self, report: &mut TaskReport) {
        report.cpu_seconds = self.cpu_seconds;
        report.peak_memory_bytes =
            crate::history::sampler::peak().unwrap_or(self.peak_memory_bytes);
    }
}

/// utime + stime (fields 14 and 15) of `/proc/PID/stat`, in seconds. They count USER_HZ
/// ticks, which Linux fixes at 100 for user space. The fields are counted after the command
/// name, which is parenthesised and may itself hold spaces.
pub fn cpu_seconds(stat: &str) -> f64 {
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// `VmHWM: N kB` of `/proc/PID/status`, in bytes.
pub fn peak_memory_bytes(status: &str) -> u64 {
    status_kb(status, "VmHWM:")
}

/// A `Name: N kB` field of `/proc/PID/status`, in bytes.
pub fn status_kb(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
