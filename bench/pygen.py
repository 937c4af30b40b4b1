#!/usr/bin/env python3
"""db-benchmark data in Python, with the same layout, columns and distributions as `kask gen`.

The benchmark uses `kask gen` (bench/dbbench.py --gen kask, the default); this generator exists
so that the runner and its answer checks can be tried without a kask binary
(bench/dbbench.py --gen python), and so that kask gen's output can be compared with an
independent implementation. Values differ from kask gen's (another random generator); the
distributions are the same (see /work/shared/bench/dbbench.md).

    python bench/pygen.py groupby --rows 100000 --groups 100 --nas 0 --seed 1 --partitions 8 --out DIR
    python bench/pygen.py join --rows 100000 --seed 1 --partitions 8 --out DIR
"""

import argparse
import math
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def sci(n: int) -> str:
    """`1e7` for 10000000, `2.5e6` for 2500000: how db-benchmark (and kask gen) name tables."""
    if n == 0:
        return "0"
    exp = math.floor(math.log10(n))
    m = f"{n / 10 ** exp:.3f}".rstrip("0").rstrip(".")
    return f"{m}e{exp}"


def groupby_name(rows: int, groups: int, nas: int) -> str:
    return f"G1_{sci(rows)}_{sci(groups)}_{nas}_0"


def join_name(rows: int) -> str:
    return f"J1_{sci(rows)}"


def row_ranges(rows: int, parts: int):
    """Contiguous, near-equal row ranges, one per file."""
    parts = max(1, min(parts, rows))
    base, extra = divmod(rows, parts)
    start = 0
    for i in range(parts):
        n = base + (1 if i < extra else 0)
        yield start, start + n
        start += n


def _write(path: str, table: pa.Table) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path)


def _with_nulls(arr: pa.Array, rng, nas: int) -> pa.Array:
    if nas <= 0:
        return arr
    mask = rng.random(len(arr)) < nas / 100.0
    return pa.array(arr.to_numpy(zero_copy_only=False), type=arr.type, mask=mask)


def gen_groupby(out: str, rows: int, groups: int, nas: int = 0, seed: int = 1, partitions: int = 8) -> str:
    if not 1 <= groups <= rows:
        raise ValueError(f"needs 1 <= groups <= rows (got groups {groups}, rows {rows})")
    name = groupby_name(rows, groups, nas)
    final = os.path.join(out, name)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    k = groups
    small = max(1, rows // groups)
    large_ids = pa.array([f"id{i:03d}" for i in range(1, k + 1)])
    small_ids = pa.array([f"id{i:010d}" for i in range(1, small + 1)])
    schema = pa.schema([
        ("id1", pa.string()), ("id2", pa.string()), ("id3", pa.string()),
        ("id4", pa.int32()), ("id5", pa.int32()), ("id6", pa.int32()),
        ("v1", pa.int32()), ("v2", pa.int32()), ("v3", pa.float64()),
    ])
    for p, (lo, hi) in enumerate(row_ranges(rows, partitions)):
        n = hi - lo
        cols = [
            large_ids.take(pa.array(rng.integers(0, k, n))),
            large_ids.take(pa.array(rng.integers(0, k, n))),
            small_ids.take(pa.array(rng.integers(0, small, n))),
            pa.array(rng.integers(1, k + 1, n, dtype=np.int32)),
            pa.array(rng.integers(1, k + 1, n, dtype=np.int32)),
            pa.array(rng.integers(1, small + 1, n, dtype=np.int32)),
            pa.array(rng.integers(1, 6, n, dtype=np.int32)),
            pa.array(rng.integers(1, 6, n, dtype=np.int32)),
            pa.array(np.round(rng.random(n) * 100.0, 6)),
        ]
        cols = [_with_nulls(c, rng, nas) for c in cols]
        _write(os.path.join(tmp, f"part-{p:05d}.parquet"), pa.Table.from_arrays(cols, schema=schema))
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    return final


def _keys(n: int, rng):
    """Keys of one cardinality n: a permutation of 1..1.1n; 0.9n on both sides, 0.1n on each
    side only. Returns (keys present in x, keys present on the right)."""
    n = max(1, n)
    total = max(2, round(n * 1.1))
    allk = rng.permutation(np.arange(1, total + 1, dtype=np.int64))
    both = max(1, round(n * 0.9))
    only = (total - both) // 2
    left = allk[: both + only]
    right = np.concatenate([allk[:both], allk[both + only:]])
    return left, right


def _ids(values: np.ndarray) -> pa.Array:
    return pa.array(np.char.add("id", values.astype(str)))


def gen_join(out: str, rows: int, seed: int = 1, partitions: int = 8) -> str:
    if rows < 1000:
        raise ValueError("the join data set needs at least 1000 rows")
    name = join_name(rows)
    final = os.path.join(out, name)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    k1 = _keys(rows // 1_000_000, rng)
    k2 = _keys(rows // 1_000, rng)
    k3 = _keys(rows, rng)

    def floats(n):
        return pa.array(np.round(rng.random(n) * 100.0, 6))

    # x: every id sampled from the keys present in x.
    for p, (lo, hi) in enumerate(row_ranges(rows, partitions)):
        n = hi - lo
        a, b, c = (k[0][rng.integers(0, len(k[0]), n)] for k in (k1, k2, k3))
        t = pa.table({
            "id1": a, "id2": b, "id3": c,
            "id4": _ids(a), "id5": _ids(b), "id6": _ids(c),
            "v1": floats(n),
        })
        _write(os.path.join(tmp, "x", f"part-{p:05d}.parquet"), t)

    # small: one row per right key of the smallest cardinality.
    ids = rng.permutation(k1[1])
    _write(os.path.join(tmp, "small", "part-00000.parquet"),
           pa.table({"id1": ids, "id4": _ids(ids), "v2": floats(len(ids))}))

    # medium: one row per right key of the middle cardinality, id1 sampled.
    ids2 = rng.permutation(k2[1])
    ids1 = k1[1][rng.integers(0, len(k1[1]), len(ids2))]
    _write(os.path.join(tmp, "medium", "part-00000.parquet"),
           pa.table({"id1": ids1, "id2": ids2, "id4": _ids(ids1), "id5": _ids(ids2), "v2": floats(len(ids2))}))

    # big: one row per right key of the largest cardinality, id1 and id2 sampled.
    ids3 = rng.permutation(k3[1])
    for p, (lo, hi) in enumerate(row_ranges(len(ids3), partitions)):
        c = ids3[lo:hi]
        a = k1[1][rng.integers(0, len(k1[1]), len(c))]
        b = k2[1][rng.integers(0, len(k2[1]), len(c))]
        t = pa.table({
            "id1": a, "id2": b, "id3": c,
            "id4": _ids(a), "id5": _ids(b), "id6": _ids(c),
            "v2": floats(len(c)),
        })
        _write(os.path.join(tmp, "big", f"part-{p:05d}.parquet"), t)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    return final


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    g = sub.add_parser("groupby")
    g.add_argument("--rows", type=int, default=10_000_000)
    g.add_argument("--groups", type=int, default=100)
    g.add_argument("--nas", type=int, default=0)
    j = sub.add_parser("join")
    j.add_argument("--rows", type=int, default=10_000_000)
    for p in (g, j):
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--partitions", type=int, default=8)
        p.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.what == "groupby":
        d = gen_groupby(a.out, a.rows, a.groups, a.nas, a.seed, a.partitions)
    else:
        d = gen_join(a.out, a.rows, a.seed, a.partitions)
    print(f"wrote {d}")


if __name__ == "__main__":
    main()
