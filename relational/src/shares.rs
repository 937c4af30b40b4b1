//! Which rows of a partitioned join each of its tasks joins, decided once the map tasks of
//! both sides have written their shuffles ([`decide`]).
//!
//! Every task of a partitioned join normally joins its own hash partition of both sides. One
//! key holding half the rows makes its partition half the work, and one task would do it
//! while the others wait (or run out of memory building its hash table). A partition much
//! larger than the average share is cut instead: one side of it (the larger side that the
//! join type lets go, see [`crate::skew`]) is split by map task, and a single map task's part
//! that is still too large by a hash of the whole row; each piece goes to some task with the
//! other side's whole partition. Every row of the split side is then joined in exactly one
//! task, against every row it can match. The pieces and the unsplit partitions are dealt to
//! the tasks, largest first, each to the least loaded.
//!
//! A task joins the union of its pieces: rows of different partitions never share a key, so
//! joining the union of its left rows with the union of its right rows is the union of the
//! pieces' joins.

use serde::{Deserialize, Serialize};

/// A side of a join.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

/// What each task of a partitioned join joins; the same for every task of the stage (the
/// first task to decide stores it, the others read it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Shares {
    /// Per task, its pieces.
    pub tasks: Vec<Vec<Piece>>,
}

/// Rows of one partition of both sides.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Piece {
    /// The hash partition.
    pub partition: usize,
    /// Only part of one side's rows; the other side's partition whole. None: both whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<Slice>,
}

/// Part of one side's rows of a partition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Slice {
    /// The side split.
    pub side: Side,
    /// Its map tasks `from..to`.
    pub maps: (usize, usize),
    /// Of those rows, the ones whose row hash modulo `of` is `part` (`of` 1: all).
    pub part: (u32, u32),
}

/// Rows one side reads in one task: a partition, from the map tasks `maps` (None: all), the
/// rows of hash part `part` (None: all).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Read {
    pub partition: usize,
    pub maps: Option<(usize, usize)>,
    pub part: Option<(u32, u32)>,
}

/// A partition is cut when its bytes (both sides) pass this many times the average share.
const SKEW_RATIO: f64 = 1.25;
/// Shares are dealt out only when their busiest task has at most this share of the work of
/// the busiest task without them.
const GAIN: f64 = 0.85;
/// A partition smaller than this is never cut: splitting it saves too little.
pub const MIN_SKEWED_BYTES: u64 = 1 << 20;

impl Shares {
    /// Each task joins its own partition.
    pub fn own(partitions: usize) -> Shares {
        Shares {
            tasks: (0..partitions)
                .map(|p| {
                    vec![Piece {
                        partition: p,
                        slice: None,
                    }]
                })
                .collect(),
        }
    }

    /// Whether some partition is cut.
    pub fn splits(&self) -> bool {
        self.tasks.iter().flatten().any(|p| p.slice.is_some())
    }

    /// What side `side` reads in task `task`: its slices, and every other partition of the
    /// task's pieces once, whole.
    pub fn reads(&self, task: usize, side: Side) -> Vec<Read> {
        let mut out: Vec<Read> = Vec::new();
        for piece in self.tasks.get(task).into_iter().flatten() {
            match piece.slice {
                Some(s) if s.side == side => out.push(Read {
                    partition: piece.partition,
                    maps: Some(s.maps),
                    part: (s.part.1 > 1).then_some(s.part),
                }),
                _ => {
                    let whole = Read {
                        partition: piece.partition,
                        maps: None,
                        part: None,
                    };
                    if !out.contains(&whole) {
                        out.push(whole);
                    }
                }
            }
        }
        out
    }
}

/// The shares of a join into `partitions` tasks, from the bytes each map task wrote per
/// partition (`left[m][p]`, `right[m][p]`), splitting only the sides `split` allows
/// (left, right).
pub fn decide(
    left: &[Vec<u64>],
    right: &[Vec<u64>],
    partitions: usize,
    split: (bool, bool),
) -> Shares {
    let per = |maps: &[Vec<u64>]| -> Vec<u64> {
        (0..partitions)
            .map(|p| maps.iter().map(|m| m.get(p).copied().unwrap_or(0)).sum())
            .collect()
    };
    let (l, r) = (per(left), per(right));
    let total: u64 = l.iter().chain(&r).sum();
    if partitions < 2 || total == 0 {
        return Shares::own(partitions);
    }
    let share = total.div_ceil(partitions as u64);
    let mut units: Vec<(u64, Piece)> = Vec::new();
    for p in 0..partitions {
        let bytes = l[p] + r[p];
        let skewed = bytes as f64 > SKEW_RATIO * share as f64 && bytes >= MIN_SKEWED_BYTES;
        // The larger side, if it may be split; the other goes whole with each piece (sent
        // whole to several tasks, the larger side would cost more than the split saves).
        let side = if r[p] > l[p] {
            split.1.then_some(Side::Right)
        } else {
            split.0.then_some(Side::Left)
        };
        let pieces = match side {
            Some(side) if skewed => {
                let (maps, other) = match side {
                    Side::Left => (left, r[p]),
                    Side::Right => (right, l[p]),
                };
                let column: Vec<u64> = maps
                    .iter()
                    .map(|m| m.get(p).copied().unwrap_or(0))
                    .collect();
                // Pieces of half what an average share leaves beside the other side's rows
                // (smaller pieces deal out more evenly), but not smaller than a quarter share
                // (the other side's partition goes with each), nor more pieces than tasks.
                let split_bytes: u64 = column.iter().sum();
                let target = (share.saturating_sub(other) / 2)
                    .max(share / 4)
                    .max(split_bytes.div_ceil(partitions as u64))
                    .max(1);
                slices(&column, target, partitions)
                    .into_iter()
                    .map(|(maps, part, b)| {
                        let slice = Slice { side, maps, part };
                        (
                            b + other,
                            Piece {
                                partition: p,
                                slice: Some(slice),
                            },
                        )
                    })
                    .collect()
            }
            _ => vec![],
        };
        if pieces.len() > 1 {
            units.extend(pieces);
        } else {
            units.push((
                bytes,
                Piece {
                    partition: p,
                    slice: None,
                },
            ));
        }
    }
    if units.len() == partitions {
        return Shares::own(partitions);
    }
    // Dealt out, the busiest task must do clearly less than the busiest one would alone
    // (whole partitions can land together, and pieces cost their copies of the other side).
    let (shares, busiest) = deal(units, partitions);
    let alone = (0..partitions).map(|p| l[p] + r[p]).max().unwrap_or(0);
    if busiest as f64 >= GAIN * alone as f64 {
        return Shares::own(partitions);
    }
    shares
}

/// A slice of one side's partition: its map tasks, its hash part, its cost in bytes.
type Cut = ((usize, usize), (u32, u32), u64);

/// One side's bytes of a partition per map task, cut into slices of about `target` bytes:
/// consecutive map tasks together, a map task larger than `target` alone in hash parts (at
/// most `most` of them). Each slice: its maps, its part, its cost in bytes (a hash part's
/// task reads the map task's whole slice, and decoding the rows it drops costs about a
/// quarter of joining them).
fn slices(bytes: &[u64], target: u64, most: usize) -> Vec<Cut> {
    let mut out = Vec::new();
    let mut open: Option<(usize, usize, u64)> = None;
    for (m, &b) in bytes.iter().enumerate() {
        if b == 0 {
            continue;
        }
        if b > target {
            if let Some((from, to, sum)) = open.take() {
                out.push(((from, to), (0, 1), sum));
            }
            let of = b.div_ceil(target).min(most as u64).max(1);
            let of32 = u32::try_from(of).unwrap_or(u32::MAX);
            for part in 0..of32 {
                out.push(((m, m + 1), (part, of32), b / of + (b - b / of) / 4));
            }
            continue;
        }
        open = match open {
            Some((from, _, sum)) if sum + b <= target => Some((from, m + 1, sum + b)),
            Some((from, to, sum)) => {
                out.push(((from, to), (0, 1), sum));
                Some((m, m + 1, b))
            }
            None => Some((m, m + 1, b)),
        };
    }
    if let Some((from, to, sum)) = open {
        out.push(((from, to), (0, 1), sum));
    }
    out
}

/// Deals `units` (bytes, piece) to `tasks` tasks: largest first, each to the task with the
/// fewest bytes so far (the lowest index on a tie) that holds no other hash part of the same
/// map task's slice, so that every task gets the same pieces from the same sizes. Returns the shares and the bytes of the busiest task.
fn deal(mut units: Vec<(u64, Piece)>, tasks: usize) -> (Shares, u64) {
    units.sort_by(|(a, pa), (b, pb)| {
        b.cmp(a).then_with(|| {
            let key = |p: &Piece| {
                (
                    p.partition,
                    p.slice.map(|s| (s.maps, s.part)).unwrap_or_default(),
                )
            };
            key(pa).cmp(&key(pb))
        })
    });
    let mut load = vec![0u64; tasks];
    let mut out = vec![Vec::new(); tasks];
    for (bytes, piece) in units {
        // Two hash parts of one map task's slice in one task would read the slice twice.
        let sibling = |t: usize| {
            out[t].iter().any(|q: &Piece| {
                q.partition == piece.partition
                    && matches!((q.slice, piece.slice), (Some(a), Some(b))
                        if b.part.1 > 1 && a.side == b.side && a.maps == b.maps)
            })
        };
        let t = (0..tasks)
            .min_by_key(|&t| (sibling(t), load[t], t))
            .unwrap_or(0);
        load[t] += bytes;
        out[t].push(piece);
    }
    (Shares { tasks: out }, load.into_iter().max().unwrap_or(0))
}
