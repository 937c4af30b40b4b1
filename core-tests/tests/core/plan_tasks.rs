use kask_core::plan::tasks::{dns_safe, reduce_partitions};

#[test]
fn reduce_partitions_follow_the_workers_until_the_data_outgrows_the_budget() {
    const GIB: u64 = 1 << 30;
    // The spec decides when it says.
    assert_eq!(reduce_partitions(Some(7), 100, 2, 100 * GIB, Some(GIB)), 7);
    assert_eq!(reduce_partitions(Some(0), 100, 2, GIB, None), 1);
    // Small data: one per worker, no more than the map tasks.
    assert_eq!(reduce_partitions(None, 16, 4, GIB / 2, Some(GIB)), 4);
    assert_eq!(reduce_partitions(None, 3, 8, GIB / 2, Some(GIB)), 3);
    assert_eq!(reduce_partitions(None, 3, 8, GIB, None), 3);
    // 2 GiB through a 192 MiB pool (256 MiB pods): 48 MiB of input per partition.
    assert_eq!(reduce_partitions(None, 16, 2, 2 * GIB, Some(192 << 20)), 43);
    // Never more than the cap, whatever the data.
    assert_eq!(
        reduce_partitions(None, 10_000, 2, 10_000 * GIB, Some(GIB)),
        2048
    );
}

/// A Kubernetes label value: at most 63 characters, alphanumerics with `-`, `_` or `.`
/// between them (written out here rather than taken from the code under test).
fn valid_label(v: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    v.len() <= 63
        && alnum(v.chars().next())
        && alnum(v.chars().last())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[test]
fn every_input_name_gives_a_valid_stage_label() {
    let long_cut_at_underscore = format!("{}_tail", "a".repeat(40));
    let cases = [
        ("orders", "orders"),
        ("Orders_2026", "orders-2026"),
        ("_", "input"),
        ("数据", "input"),
        ("__x__", "x"),
        ("a__b", "a-b"),
        ("数据_sales", "sales"),
        (long_cut_at_underscore.as_str(), &"a".repeat(40)),
    ];
    for (name, want) in cases {
        let got = dns_safe(name);
        assert_eq!(got, want, "{name:?}");
        let label = format!("s12-scan-{got}");
        assert!(valid_label(&label), "{name:?} gives {label:?}");
    }
    let odd = format!("{}_{}", "b".repeat(39), "c".repeat(10));
    assert!(valid_label(&format!("s0-scan-{}", dns_safe(&odd))));
}
