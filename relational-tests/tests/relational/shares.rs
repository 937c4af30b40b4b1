use kask_relational::shares::*;

const MB: u64 = 1 << 20;

/// `maps` map tasks, each writing `bytes(m, p)` to partition `p`.
fn sizes(maps: usize, partitions: usize, bytes: impl Fn(usize, usize) -> u64) -> Vec<Vec<u64>> {
    (0..maps)
        .map(|m| (0..partitions).map(|p| bytes(m, p)).collect())
        .collect()
}

/// Checks what makes a join exact: every row of a split side is read by exactly one task (each
/// map's hash parts once, none twice), that task reads the other side's partition whole, and
/// an unsplit partition is read whole on both sides by exactly one task.
fn check_exact(shares: &Shares, maps: (usize, usize), partitions: usize) {
    let tasks = shares.tasks.len();
    assert_eq!(tasks, partitions);
    for p in 0..partitions {
        let reads = |side| -> Vec<(usize, Read)> {
            (0..tasks)
                .flat_map(|t| shares.reads(t, side).into_iter().map(move |r| (t, r)))
                .filter(|(_, r)| r.partition == p)
                .collect()
        };
        let (l, r) = (reads(Side::Left), reads(Side::Right));
        let split_l = l.iter().any(|(_, r)| r.maps.is_some());
        let split_r = r.iter().any(|(_, r)| r.maps.is_some());
        assert!(!(split_l && split_r), "partition {p} split on both sides");
        if !split_l && !split_r {
            assert_eq!(l.len(), 1, "partition {p} left: {l:?}");
            assert_eq!(r.len(), 1, "partition {p} right: {r:?}");
            assert_eq!(l[0].0, r[0].0, "partition {p} whole in two tasks");
            continue;
        }
        let (split, whole, n) = if split_l {
            (l, r, maps.0)
        } else {
            (r, l, maps.1)
        };
        // Every map task's rows of the partition exactly once.
        for m in 0..n {
            let mut parts: Vec<(u32, u32)> = split
                .iter()
                .filter(|(_, r)| r.maps.is_some_and(|(a, b)| a <= m && m < b))
                .map(|(_, r)| r.part.unwrap_or((0, 1)))
                .collect();
            parts.sort_unstable();
            let of = parts.first().map_or(1, |p| p.1);
            let want: Vec<(u32, u32)> = (0..of).map(|i| (i, of)).collect();
            if !parts.is_empty() {
                assert_eq!(parts, want, "partition {p}, map {m}");
            }
        }
        // The other side whole, once, in every task that has a slice.
        let mut with_slice: Vec<usize> = split.iter().map(|(t, _)| *t).collect();
        with_slice.dedup();
        let mut with_whole: Vec<usize> = whole.iter().map(|(t, _)| *t).collect();
        with_whole.sort_unstable();
        with_slice.sort_unstable();
        with_slice.dedup();
        assert!(
            whole
                .iter()
                .all(|(_, r)| r.maps.is_none() && r.part.is_none())
        );
        assert_eq!(
            with_whole, with_slice,
            "partition {p}: the other side whole where sliced"
        );
    }
}

/// The bytes a task reads, both sides.
fn loads(shares: &Shares, left: &[Vec<u64>], right: &[Vec<u64>]) -> Vec<u64> {
    let side_bytes = |maps: &[Vec<u64>], r: &Read| -> u64 {
        maps.iter()
            .enumerate()
            .filter(|(m, _)| r.maps.is_none_or(|(a, b)| a <= *m && *m < b))
            .map(|(_, row)| row[r.partition] / u64::from(r.part.map_or(1, |p| p.1)))
            .sum()
    };
    (0..shares.tasks.len())
        .map(|t| {
            let l: u64 = shares
                .reads(t, Side::Left)
                .iter()
                .map(|r| side_bytes(left, r))
                .sum();
            let r: u64 = shares
                .reads(t, Side::Right)
                .iter()
                .map(|r| side_bytes(right, r))
                .sum();
            l + r
        })
        .collect()
}

/// Whether every slice of `shares` is of `side`.
fn split_only(shares: &Shares, side: Side) -> bool {
    shares
        .tasks
        .iter()
        .flatten()
        .filter_map(|p| p.slice)
        .all(|s| s.side == side)
}

#[test]
fn partitions_of_about_equal_size_stay_with_their_own_task() {
    let left = sizes(6, 4, |m, p| 10 * MB + (m * p) as u64 * 1000);
    let right = sizes(3, 4, |_, _| 2 * MB);
    assert_eq!(decide(&left, &right, 4, (true, true)), Shares::own(4));
}

#[test]
fn a_partition_with_half_the_rows_is_split_by_map_task_and_shared_out() {
    // Partition 2 holds one key with half of every left map task's rows.
    let left = sizes(8, 4, |_, p| if p == 2 { 24 * MB } else { 8 * MB });
    let right = sizes(8, 4, |_, _| MB / 4);
    let shares = decide(&left, &right, 4, (true, true));
    assert!(shares.splits());
    check_exact(&shares, (8, 8), 4);
    let loads = loads(&shares, &left, &right);
    let max = *loads.iter().max().expect("tasks");
    let total: u64 = left.iter().chain(&right).flatten().sum();
    // Without the split one task has partition 2: 194 of 392 MiB (49%); a quarter each is
    // out of reach with whole partitions of 66 MiB.
    assert!(max * 100 < total * 32, "loads {loads:?} of {total}");
    // Left was split: the larger side, and inner joins may split either.
    assert!(split_only(&shares, Side::Left));
}

#[test]
fn only_a_side_the_join_type_lets_go_is_split() {
    let left = sizes(8, 4, |_, p| if p == 0 { 20 * MB } else { 4 * MB });
    let right = sizes(8, 4, |_, p| if p == 0 { 40 * MB } else { 4 * MB });
    // A right join keeps every right row: only the right side may be split.
    let shares = decide(&left, &right, 4, (false, true));
    assert!(shares.splits());
    check_exact(&shares, (8, 8), 4);
    assert!(split_only(&shares, Side::Right));
    // A left join keeps every left row, but the left side is the smaller: sent whole to
    // several tasks, the right side would cost more than splitting the left saves.
    assert_eq!(decide(&left, &right, 4, (true, false)), Shares::own(4));
    // A full join keeps both: nothing is split.
    assert_eq!(decide(&left, &right, 4, (false, false)), Shares::own(4));
}

#[test]
fn one_map_task_holding_the_hot_partition_is_split_by_row_hash() {
    let left = sizes(3, 4, |m, p| if m == 1 && p == 3 { 90 * MB } else { MB });
    let right = sizes(2, 4, |_, _| MB);
    let shares = decide(&left, &right, 4, (true, false));
    assert!(shares.splits());
    check_exact(&shares, (3, 2), 4);
    let parts: Vec<(u32, u32)> = shares
        .tasks
        .iter()
        .flatten()
        .filter_map(|p| p.slice)
        .filter(|s| s.maps == (1, 2))
        .map(|s| s.part)
        .collect();
    assert!(
        parts.len() > 1 && parts.iter().all(|p| p.1 as usize == parts.len()),
        "{parts:?}"
    );
    assert!(parts.len() <= 4);
    // No task reads that map task's slice twice.
    for task in &shares.tasks {
        let mine = task
            .iter()
            .filter_map(|p| p.slice)
            .filter(|s| s.maps == (1, 2));
        assert!(mine.count() <= 1, "{task:?}");
    }
}

#[test]
fn a_split_that_would_not_lighten_the_busiest_task_is_not_made() {
    // Two tasks, two map tasks: the hot partition (62% of the rows) could only go out as one
    // piece per map task, and one task would take a piece and the other partition.
    let left = sizes(2, 2, |_, p| if p == 0 { 237 * MB } else { 142 * MB });
    let right = sizes(1, 2, |_, _| 16 * MB);
    assert_eq!(decide(&left, &right, 2, (true, true)), Shares::own(2));
}

#[test]
fn small_partitions_are_never_split() {
    let left = sizes(4, 4, |_, p| if p == 0 { 100_000 } else { 1000 });
    assert_eq!(decide(&left, &left, 4, (true, true)), Shares::own(4));
    assert_eq!(decide(&left, &left, 1, (true, true)), Shares::own(1));
    assert_eq!(decide(&[], &[], 3, (true, true)), Shares::own(3));
}

#[test]
fn shares_are_exact_for_many_shapes() {
    // A small deterministic generator: shapes of maps, partitions, sizes and hot spots.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..300 {
        let partitions = 1 + next(8) as usize;
        let (lm, rm) = (1 + next(10) as usize, 1 + next(10) as usize);
        let hot = next(partitions as u64) as usize;
        let (lb, lf, rb, rf) = (next(4 * MB), 1 + next(40), next(4 * MB), 1 + next(40));
        let cell = |base: u64, factor: u64| {
            move |_: usize, p: usize| -> u64 { if p == hot { base * factor } else { base } }
        };
        let left = sizes(lm, partitions, cell(lb, lf));
        let right = sizes(rm, partitions, cell(rb, rf));
        let split = (next(2) == 0, next(2) == 0);
        let shares = decide(&left, &right, partitions, split);
        check_exact(&shares, (lm, rm), partitions);
        for piece in shares.tasks.iter().flatten() {
            if let Some(s) = piece.slice {
                assert!(match s.side {
                    Side::Left => split.0,
                    Side::Right => split.1,
                });
            }
        }
    }
}

#[test]
fn shares_survive_json() {
    let left = sizes(8, 4, |_, p| if p == 2 { 24 * MB } else { 8 * MB });
    let shares = decide(&left, &left, 4, (true, true));
    let text = serde_json::to_string(&shares).expect("json");
    assert_eq!(
        serde_json::from_str::<Shares>(&text).expect("parse"),
        shares
    );
}
