//! What every job kind's planner shares: an input cut into tasks of about the target size,
//! what the plan records of an input, and DNS-safe stage names. No I/O.

use super::listing::{ListedInput, Splits};
use super::{Fragment, InputFile, InputPlan, PlanSchema};

/// What the plan records of a listed input.
pub fn input_plan(l: &ListedInput) -> InputPlan {
    InputPlan {
        format: l.format,
        csv: l.csv.clone(),
        schema: PlanSchema(l.schema.clone()),
        files: l
            .files
            .iter()
            .map(|f| InputFile {
                path: f.path.clone(),
                size: f.size,
                keys: f.keys.clone(),
            })
            .collect(),
        bytes: l.files.iter().map(|f| f.size).sum(),
        hive: l.hive.clone(),
    }
}

/// Lowercase letters, digits and single dashes, as Kubernetes names and label values need:
/// at most 40 characters, starting and ending with a letter or digit. A name with none of
/// those (`_`, `数据`) becomes `input`.
pub fn dns_safe(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    // Cut before trimming, so that a cut at a dash cannot leave one at the end.
    s.truncate(40);
    let s = s.trim_matches('-');
    if s.is_empty() {
        "input".into()
    } else {
        s.into()
    }
}

/// Cuts an input into tasks of about `target` bytes: whole row groups for Parquet, byte
/// ranges for uncompressed text, whole files otherwise; small neighbours share a task.
pub fn cut_input(listed: &ListedInput, target: u64) -> Vec<Vec<Fragment>> {
    let mut units: Vec<Fragment> = Vec::new();
    for f in &listed.files {
        let unit = |start: u64, end: u64| Fragment {
            path: f.path.clone(),
            size: f.size,
            start,
            end,
        };
        match &f.splits {
            Splits::RowGroups(starts) if starts.len() > 1 => {
                for (i, _) in starts.iter().enumerate() {
                    let start = if i == 0 { 0 } else { starts[i] };
                    let end = starts.get(i + 1).copied().unwrap_or(f.size);
                    units.push(unit(start, end));
                }
            }
            Splits::Anywhere if f.size > target => {
                let pieces = f.size.div_ceil(target);
                let step = f.size.div_ceil(pieces);
                let mut start = 0;
                while start < f.size {
                    let end = (start + step).min(f.size);
                    units.push(unit(start, end));
                    start = end;
                }
            }
            _ => units.push(unit(0, f.size)),
        }
    }

    // As many tasks as the target size asks for, but of equal size: 200 MiB with a 128 MiB
    // target makes two tasks of 100 MiB, not one of 128 and one of 72.
    let total: u64 = units.iter().map(|u| u.end - u.start).sum();
    let target = total.div_ceil(total.div_ceil(target.max(1)).max(1)).max(1);
    let mut tasks: Vec<Vec<Fragment>> = Vec::new();
    let mut current: Vec<Fragment> = Vec::new();
    let mut bytes = 0u64;
    for u in units {
        let len = u.end - u.start;
        // A little overshoot beats a tiny last task made of the remainder.
        if !current.is_empty() && bytes + len > target + target / 8 {
            tasks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += len;
        match current.last_mut() {
            Some(last) if last.path == u.path && last.end == u.start => last.end = u.end,
            _ => current.push(u),
        }
    }
    if !current.is_empty() {
        tasks.push(current);
    }
    tasks
}

/// Input bytes one reduce partition is planned for, as a part of a task's memory pool: Arrow
/// holds a Parquet or CSV byte in a few bytes, and an operator's state more again.
const POOL_PARTS_PER_PARTITION: u64 = 4;

/// The most reduce partitions a shuffle is planned with: every reducer reads a slice of every
/// map task's object, so their product is the shuffle's request count.
const MAX_PARTITIONS: usize = 2048;

/// How many partitions a shuffle of `input_bytes` read by `maps` map tasks gets: the spec's
/// `shufflePartitions` if set; else one per worker (no more than there are map tasks), or more
/// when that would give a partition more input than a quarter of the memory `pool` a task may
/// use, so that a reducer's share of the data is sized from the budget rather than the
/// number of workers.
pub fn reduce_partitions(
    given: Option<u32>,
    maps: usize,
    workers: usize,
    input_bytes: u64,
    pool: Option<u64>,
) -> usize {
    if let Some(p) = given {
        return (p as usize).max(1);
    }
    let by_workers = maps.min(workers).max(1);
    let by_budget = match pool {
        Some(pool) if pool > 0 => {
            let per = (pool / POOL_PARTS_PER_PARTITION).max(1);
            usize::try_from(input_bytes.div_ceil(per)).unwrap_or(usize::MAX)
        }
        _ => 1,
    };
    by_workers.max(by_budget.min(MAX_PARTITIONS))
}
