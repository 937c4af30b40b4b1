use kask_core::usage::*;

#[test]
fn proc_fields_are_parsed() {
    let stat = "42 (kask worker) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 1 2 3";
    assert!((kask_core::usage::cpu_seconds(stat) - 3.25).abs() < 1e-9);
    let status = "Name:\tkask\nVmPeak:\t  9000 kB\nVmHWM:\t  2048 kB\nVmRSS:\t 1000 kB\n";
    assert_eq!(kask_core::usage::peak_memory_bytes(status), 2048 * 1024);
    assert_eq!(kask_core::usage::status_kb(status, "VmRSS:"), 1000 * 1024);
    let rollup = "Rss:  1600 kB\nAnonymous:   112 kB\nLazyFree:   64 kB\n";
    assert_eq!(kask_core::usage::status_kb(rollup, "LazyFree:"), 64 * 1024);
}

#[test]
fn a_running_process_has_used_cpu_and_memory() {
    // CPU time advances in 10 ms ticks: spin until one has passed (bounded).
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while Usage::now().cpu_seconds == 0.0 && start.elapsed().as_secs() < 10 {
        for i in 0..100_000u64 {
            x = x.wrapping_add(i * i);
        }
    }
    std::hint::black_box(x);
    let u = Usage::now();
    assert!(u.peak_memory_bytes > 1 << 20, "{u:?}");
    assert!(
        u.memory_bytes > 1 << 20 && u.memory_bytes <= u.peak_memory_bytes,
        "{u:?}"
    );
    assert!(u.cpu_seconds > 0.0, "{u:?}");
}
