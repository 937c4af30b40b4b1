use kask_api::history::Sample;
use kask_core::history::sampler::*;

#[test]
fn a_full_list_is_thinned_to_every_other_sample_and_keeps_its_span() {
    let mut v: Vec<Sample> = (0..KEEP as u64)
        .map(|ms| Sample {
            ms,
            ..Sample::default()
        })
        .collect();
    push(
        &mut v,
        Sample {
            ms: 99_999,
            ..Sample::default()
        },
    );
    assert_eq!(v.len(), KEEP / 2 + 1);
    assert_eq!(v[0].ms, 0);
    assert_eq!(v[1].ms, 2);
    assert_eq!(v.last().map(|s| s.ms), Some(99_999));
}

#[test]
fn the_peak_counts_the_memory_of_now() {
    let s = sampler();
    let peak = s.peak_since(u64::MAX);
    assert!(peak > 1 << 20, "{peak}");
    assert!(!s.since(0).is_empty());
}
