"""Interoperability tests: Kask's array and bag jobs against zarr-python, NumPy and Python's json,
and its pandas-semantics dataframe steps against pandas.

    interop.py KASK WORK

Each test writes its inputs with zarr-python (or plain Python for bags) under WORK, writes a job
YAML beside them (so the job's storage is that directory), runs `KASK run JOB`, and checks the
output with zarr-python / json against a NumPy / Python reference: values and dtypes for arrays
(NumPy 2 promotion rules), records for bags. Prints `interop: ok NAME` or
`interop: FAIL NAME: why` per test, then `interop: N passed, M failed`; exits 1 if any failed.
Standard library, numpy, zarr (3.x) and pandas (with pyarrow) only.
"""

import collections
import gzip
import itertools
import json
import random
import re
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

import numcodecs
import numpy as np
import pandas as pd
import zarr

# zarr-python warns that a sharded array cannot be read partially: these are small, so be it.
warnings.filterwarnings("ignore", message=".*sharding_indexed.*")

KASK = sys.argv[1]
WORK = Path(sys.argv[2])

# Small tasks, so that even these small arrays and files are read by several tasks and their
# partial results go through the combine stages.
ARRAY_TASK_BYTES = 1000
BAG_TASK_BYTES = 400


class Fail(Exception):
    """A failed check; its message is the `why` of the FAIL line."""


passed = 0
failed = 0


def one_line(text, limit=400):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def test(name, fn, *args, **kwargs):
    global passed, failed
    try:
        fn(*args, **kwargs)
    except Fail as e:
        failed += 1
        print(f"interop: FAIL {name}: {one_line(e)}", flush=True)
    except Exception as e:  # a crash of the test itself is a failure too, with where it happened
        failed += 1
        where = traceback.extract_tb(e.__traceback__)[-1]
        print(f"interop: FAIL {name}: {type(e).__name__}: {one_line(e)} "
              f"(interop.py line {where.lineno})", flush=True)
    else:
        passed += 1
        print(f"interop: ok {name}", flush=True)


# --- jobs -----------------------------------------------------------------------------------------


def flow(value):
    """A YAML flow value: JSON is YAML, and json.dumps quotes strings as YAML reads them."""
    return json.dumps(value, ensure_ascii=False)


def to_yaml(obj, indent=0):
    """Block mappings for mappings that hold mappings or lists of mappings, flow for the rest."""
    pad = "  " * indent
    lines = []
    for key, value in obj.items():
        if isinstance(value, dict) and any(isinstance(v, (dict, list)) for v in value.values()):
            lines.append(f"{pad}{key}:")
            lines.append(to_yaml(value, indent + 1))
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            lines.append(f"{pad}{key}:")
            lines.extend(f"{pad}  - {flow(v)}" for v in value)
        else:
            lines.append(f"{pad}{key}: {flow(value)}")
    return "\n".join(lines)


job_ids = itertools.count()
kask_runs = {"count": 0, "seconds": 0.0}
dir_ids = itertools.count()


def new_dir(prefix):
    path = WORK / f"{prefix}-{next(dir_ids)}"
    path.mkdir()
    return path


class Run:
    def __init__(self, proc, out):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.out = out

    def expect_ok(self):
        if self.rc != 0:
            raise Fail(f"kask run exited {self.rc}: {self.stderr.strip()[-300:]}")
        return self

    def error(self):
        """The `error: ...` message of a failed run."""
        if self.rc == 0:
            raise Fail("kask run succeeded, want an error")
        # 2: the user's error (bad data, a bad expression), as kask's exit codes say.
        if self.rc != 2:
            raise Fail(f"kask run exited {self.rc}, want 2 (the user's error, not a crash): "
                       f"{self.stderr.strip()[-300:]}")
        errors = [line for line in self.stderr.splitlines() if line.startswith("error: ")]
        if not errors:
            raise Fail(f"no `error: ` line on stderr: {self.stderr.strip()[-300:]}")
        return "\n".join(errors)


def run_job(root, spec, out):
    """Writes the job into root (its storage) and runs it; the output is root/out."""
    n = next(job_ids)
    job = {"apiVersion": "kask.dev/v1alpha1", "kind": "DaskJob",
           "metadata": {"name": f"interop-{n}"}, "spec": spec}
    path = root / f"job-{n}.yaml"
    path.write_text(to_yaml(job) + "\n")
    start = time.monotonic()
    proc = subprocess.run([KASK, "run", str(path)], capture_output=True, text=True, timeout=120)
    kask_runs["count"] += 1
    kask_runs["seconds"] += time.monotonic() - start
    return Run(proc, root / out)


def array_job(root, inputs, expr, chunks=None, fill=()):
    """An array job over the named inputs (root/NAME.zarr); `fill` names those read with
    missingChunks: fill."""
    out = f"out/{next(job_ids)}.zarr"
    array = {"inputs": {name: ({"path": f"{name}.zarr", "missingChunks": "fill"} if name in fill
                               else {"path": f"{name}.zarr"}) for name in inputs},
             "expr": expr}
    if chunks is not None:
        array["chunks"] = chunks
    spec = {"array": array, "targetTaskBytes": ARRAY_TASK_BYTES,
            "output": {"path": out, "mode": "overwrite"}}
    return run_job(root, spec, out)


def bag_job(root, inputs, steps, on_bad=None, task_bytes=BAG_TASK_BYTES):
    out = f"out/{next(job_ids)}"
    bag = {"inputs": inputs, "steps": steps}
    if on_bad:
        bag["onBadRecord"] = on_bad
    spec = {"bag": bag, "targetTaskBytes": task_bytes, "output": {"path": out, "mode": "overwrite"}}
    return run_job(root, spec, out)


# --- arrays: writing, reading, comparing ----------------------------------------------------------

NAMES_RE = re.compile(r"(?<![.\w])([a-z])(?!\w)")


def names_in(expr):
    return sorted(set(NAMES_RE.findall(expr)))


def reference(expr, arrays):
    """The expression evaluated by NumPy (kask's functions are NumPy's)."""
    env = {"abs": np.abs, "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "where": np.where,
           "matmul": np.matmul}
    env.update(arrays)
    with np.errstate(all="ignore"):
        return np.asarray(eval(expr, env))  # noqa: S307 (our own expressions)


def write_array(path, data, **kwargs):
    arr = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype, **kwargs)
    arr[...] = data
    return arr


def stored_chunks(path):
    """The chunk (or shard) files of an array, relative to it, without its metadata."""
    meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
    return sorted(str(p.relative_to(path)) for p in Path(path).rglob("*")
                  if p.is_file() and p.name not in meta)


def expect_all_chunks(path, grid):
    n = int(np.prod(grid))
    if len(stored_chunks(path)) != n:
        raise RuntimeError(f"setup: {path} has {len(stored_chunks(path))} of {n} chunks stored")


def tolerance(dtype):
    return 1e-5 if dtype == np.float32 else 1e-10


def compare_values(got, want):
    """Raises Fail on the first element that differs (floats by rtol, the rest exactly)."""
    if want.dtype.kind in "fc":
        rtol = tolerance(want.dtype)
        w = want.astype(np.float64)
        g = got.astype(np.float64)
        # Relative to each value, and to the largest one for values near 0 that come out of
        # cancellation (such as a - a.mean(axis=0)).
        finite = np.abs(w[np.isfinite(w)])
        scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        close = np.isclose(g, w, rtol=rtol, atol=rtol * scale, equal_nan=True)
    else:
        close = got == want
    close = np.asarray(close)
    if not close.all():
        bad = np.argwhere(~close)
        idx = tuple(int(i) for i in bad[0])
        raise Fail(f"{len(bad)} of {want.size} values differ, e.g. at {list(idx)}: "
                   f"got {got[idx]!r}, want {want[idx]!r}")


def manifest(out):
    return json.loads((out / "_SUCCESS").read_text())


def check_array(run, want):
    """Our output opens in zarr-python with the reference's shape, dtype and values, and the
    _SUCCESS manifest's `array` says the same shape, chunks and dtype."""
    run.expect_ok()
    want = np.asarray(want)
    arr = zarr.open_array(store=str(run.out), mode="r")
    problems = []
    if arr.shape != want.shape:
        problems.append(f"shape {arr.shape}, want {want.shape}")
    if arr.dtype != want.dtype:
        problems.append(f"dtype {arr.dtype}, want {want.dtype}")
    if problems:
        raise Fail("; ".join(problems))
    compare_values(np.asarray(arr[...]), want)
    m = manifest(run.out).get("array")
    said = {"shape": list(arr.shape), "chunks": list(arr.chunks), "dtype": str(arr.dtype)}
    if m != said:
        raise Fail(f"_SUCCESS array {m}, zarr-python reads {said}")
    return arr


def check_expr(root, arrays, expr, **job):
    names = names_in(expr)
    want = reference(expr, {n: arrays[n] for n in names})
    check_array(array_job(root, names, expr, **job), want)


# --- 1. zarr-python v3 arrays of each dtype -------------------------------------------------------

# a (29, 23) in chunks (6, 5); b (23,) and c (29, 1) broadcast against it; m (23, 4) for matmul;
# t (6, 5, 7) to reduce over two of three axes. No shape is a multiple of its chunks, and the
# chunks of b, c and m do not line up with a's.
SHAPES = {"a": ((29, 23), (6, 5)), "b": ((23,), (4,)), "c": ((29, 1), (7, 1)),
          "m": ((23, 4), (4, 3)), "t": ((6, 5, 7), (4, 2, 3))}

NUMERIC = [
    # elementwise, scalars, broadcasting
    "a + b", "a * c - b", "a * 2", "a + 1.5", "a / b", "-abs(a)", "a ** 2", "(a - 1) // b",
    "(a - 1) % b", "1 - a / 3", "sqrt(abs(a)) + exp(a / 4) - log(abs(a) + 1)",
    # comparisons, logic, where
    "a > b", "(a >= c) & ~(b == 2)", "(a < 1) | (a > 2) ^ (c != 1)", "a > 1.5",
    "where(a > b, a, b)", "where(a > 1, a, 0)", "where(c > 1, 1.5, a)", "where(a > 1, 1.5, 0)",
    # reductions
    "a.sum()", "a.sum(axis=0)", "a.sum(axis=1, keepdims=True)", "t.sum(axis=(0, 1))",
    "t.sum(axis=-1)", "a.mean()", "a.mean(axis=0)", "t.mean(axis=(0, 1), keepdims=True)",
    "a.min()", "a.min(axis=0)", "a.max(axis=1, keepdims=True)", "t.max(axis=(0, 1))",
    "a.prod(axis=0)", "a[:3, :4].prod()", "a.var()", "a.var(axis=0, ddof=1)", "a.std(axis=1)",
    "t.std(axis=(0, 1), keepdims=True)", "a.std(axis=0, ddof=1, keepdims=True)",
    "a.sum(keepdims=True)", "t.max(axis=(-1, 0))", "(a * c).sum(axis=0)", "a.sum(axis=1).max()",
    # reductions inside expressions (several stages)
    "a - a.mean(axis=0)", "(a - a.mean(axis=0)) / a.std(axis=0)", "a / a.sum()",
    # matmul
    "a @ m", "matmul(a, m)", "a @ b", "a.T @ a", "a.sum(axis=0) @ m",
    # transposes and slices
    "a.T", "t.T", "a[1:27:3, ::2]", "a[3] + a[:, 4].sum()", "a[-4:, -3]", "t[1, ::2, 2:5]",
    "t[-1]", "a[::3, ::4].T * 2", "a[20:100, -100:3]",
]

BOOL = [
    "a & b", "a | c", "a ^ b", "~a", "a == b", "a != c", "a + b", "a * c", "a + 1", "a * 1.5",
    "a / 2", "where(a, b, c)", "where(a, 1, 0)", "a.sum()", "a.sum(axis=0)",
    "t.sum(axis=(0, 1), keepdims=True)", "a.mean()", "a.mean(axis=1)", "a.min(axis=0)",
    "a.max()", "a.prod(axis=0)", "a.var()", "a.std(axis=0)", "(a & b).sum(axis=1)", "a.T",
    "a[1:27:3, ::2]", "t[1, ::2, 2:5]",
]


def gen(rng, dtype, shape):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind == "i":  # no zeros: divisors, and products that are not all 0
        return rng.choice(np.array([-3, -2, -1, 1, 2, 3]), size=shape).astype(dtype)
    return rng.uniform(0.5, 2.0, shape).astype(dtype)


def write_inputs(root, rng, dtypes):
    """Writes SHAPES with zarr-python's default codecs; `dtypes` maps a name to its dtype.
    Every chunk is stored, even one that holds only the fill value (such as a bool chunk of
    all False): chunks left out are the subject of test_missing_chunks."""
    arrays = {}
    for name, (shape, chunks) in SHAPES.items():
        data = gen(rng, dtypes.get(name, dtypes["a"]), shape)
        write_array(root / f"{name}.zarr", data, chunks=chunks,
                    config={"write_empty_chunks": True})
        expect_all_chunks(root / f"{name}.zarr", [-(-s // c) for s, c in zip(shape, chunks)])
        arrays[name] = data
    return arrays


def test_dtypes(rng):
    for dtype in ["float32", "float64", "int32", "int64", "bool"]:
        root = WORK / f"v3-{dtype}"
        root.mkdir()
        arrays = write_inputs(root, rng, {"a": dtype})
        for expr in BOOL if dtype == "bool" else NUMERIC:
            test(f"v3 {dtype} `{expr}`", check_expr, root, arrays, expr)

    # Mixed dtypes: a of one, b and m of another (NEP 50 promotion between arrays).
    for da, db in [("int32", "float32"), ("int32", "int64"), ("float32", "float64"),
                   ("bool", "int32"), ("int64", "float32"), ("bool", "float64")]:
        root = WORK / f"v3-{da}-{db}"
        root.mkdir()
        arrays = write_inputs(root, rng, {"a": da, "b": db, "m": db})
        for expr in ["a + b", "a * b", "where(a > 1, a, b)", "a @ m"]:
            test(f"v3 {da} with {db} `{expr}`", check_expr, root, arrays, expr)


# --- 1b. NumPy's edge semantics: NaN, division by zero, integer wrap-around, errors ---------------


def test_edges(rng):
    root = new_dir("float32-large")
    a = rng.uniform(0.5, 2.0, (300, 200)).astype("float32")
    m = rng.uniform(0.5, 2.0, (200, 30)).astype("float32")
    write_array(root / "a.zarr", a, chunks=(64, 50))
    write_array(root / "m.zarr", m, chunks=(48, 16))
    for expr in ["a.sum()", "a.sum(axis=0)", "a.mean()", "a.var()", "a.std(axis=1)", "a @ m"]:
        test(f"float32 (300, 200) `{expr}` within rtol 1e-5 of NumPy", check_expr, root,
             {"a": a, "m": m}, expr)

    root = new_dir("nan")
    a = rng.uniform(0.5, 2.0, (29, 23))
    a[rng.random(a.shape) < 0.03] = np.nan
    a[:, 7] = np.nan  # a column of NaN only
    write_array(root / "a.zarr", a, chunks=(6, 5))
    for expr in ["a.max(axis=0)", "a.min()", "a.min(axis=1)", "a.sum(axis=0)", "a.mean(axis=1)",
                 "a.var(axis=0)", "a == a", "a > 1", "where(a > 1, a, 0)", "a.T @ a"]:
        test(f"NaN in float64 `{expr}` as NumPy (propagates)", check_expr, root, {"a": a}, expr)

    for dtype in ["int32", "int64", "float64"]:
        root = new_dir(f"zero-{dtype}")
        a = gen(rng, dtype, (29, 23))
        b = rng.integers(-2, 3, (23,)).astype(dtype)  # some zeros
        b[[0, 7, 22]] = 0
        write_array(root / "a.zarr", a, chunks=(6, 5))
        write_array(root / "b.zarr", b, chunks=(4,), config={"write_empty_chunks": True})
        arrays = {"a": a, "b": b}
        for expr in ["a // b", "a % b", "a / b", "(a - a) / b"]:
            test(f"division by zero {dtype} `{expr}` as NumPy (0, inf or nan)", check_expr, root,
                 arrays, expr)

    for dtype in ["int32", "int64"]:
        root = new_dir(f"big-{dtype}")
        info = np.iinfo(dtype)
        a = rng.integers(info.max // 2, info.max, (29, 23), dtype=dtype)
        m = rng.integers(info.max // 4, info.max // 2, (23, 4), dtype=dtype)
        write_array(root / "a.zarr", a, chunks=(6, 5))
        write_array(root / "m.zarr", m, chunks=(5, 3))
        # NumPy sums int32 into int64 (no wrap-around) and int64 into int64 (wraps around); it
        # takes means and variances in float64 (no wrap-around either way).
        exprs = ["a + a", "a * 3", "-a - a", "a @ m", "a.sum()", "a.sum(axis=0)", "a.mean()",
                 "a.mean(axis=0)", "a.var(axis=1)", "a.std()"]
        for expr in exprs:
            test(f"large {dtype} `{expr}` as NumPy (wraps around like NumPy)", check_expr, root,
                 {"a": a, "m": m}, expr)

    def rejected(dtype, expr):
        """NumPy raises on expr over SHAPES of dtype; kask must fail with an error (exit 2 and
        an `error: ` line), not crash or write something."""
        try:
            reference(expr, {n: np.zeros(SHAPES[n][0], dtype) for n in names_in(expr)})
        except (TypeError, ValueError, IndexError):
            pass
        else:
            raise RuntimeError(f"setup: NumPy accepts {expr}")
        array_job(WORK / f"v3-{dtype}", names_in(expr), expr).error()  # written by test_dtypes

    for expr in ["a - b", "-a"]:
        test(f"bool `{expr}` is an error, as NumPy's TypeError", rejected, "bool", expr)
    for expr in ["a + m", "a @ a", "a.sum(axis=2)", "a[40]", "t.mean(axis=(0, 0))"]:
        test(f"float64 `{expr}` is an error, as in NumPy", rejected, "float64", expr)


# --- 2. Zarr v2 and other codecs ------------------------------------------------------------------


def test_codecs(rng):
    v2 = {
        "default compressor": dict(dtype="float64"),
        "compressor=None": dict(dtype="int32", compressors=None),
        "Blosc": dict(dtype="int64", compressors=numcodecs.Blosc(cname="lz4", clevel=5)),
        "GZip": dict(dtype="float32", compressors=numcodecs.GZip(level=5)),
        "bool": dict(dtype="bool"),
        "order F": dict(dtype="float64", order="F"),
        "'/' separator": dict(dtype="int32", chunk_key_encoding={"name": "v2", "separator": "/"}),
        "big-endian": dict(dtype=">f8"),
    }
    v3 = {
        "no compressor": dict(dtype="float64", compressors=None),
        "blosc": dict(dtype="int32", compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=3,
                                                                        shuffle="bitshuffle")),
        "gzip": dict(dtype="float32", compressors=zarr.codecs.GzipCodec(level=6)),
        "zstd+crc32c": dict(dtype="int64", compressors=[zarr.codecs.ZstdCodec(level=3),
                                                        zarr.codecs.Crc32cCodec()]),
        "transpose": dict(dtype="float64", filters=[zarr.codecs.TransposeCodec(order=(1, 0))]),
        "big-endian": dict(dtype="int32", serializer=zarr.codecs.BytesCodec(endian="big")),
        "v2 chunk key encoding": dict(dtype="float32",
                                      chunk_key_encoding={"name": "v2", "separator": "."}),
    }
    def check(fmt, kwargs):
        kwargs = dict(kwargs)
        dtype = np.dtype(kwargs.pop("dtype"))
        native = gen(rng, dtype.newbyteorder("="), (29, 23))
        root = new_dir(f"codec-v{fmt}")
        write_array(root / "a.zarr", native.astype(dtype), chunks=(6, 5), zarr_format=fmt,
                    **kwargs)
        meta = "zarr.json" if fmt == 3 else ".zarray"
        if not (root / "a.zarr" / meta).exists():
            raise RuntimeError(f"setup: zarr-python wrote no {meta} (not Zarr v{fmt})")
        expect_all_chunks(root / "a.zarr", (5, 5))
        expr = "a.sum(axis=0)" if dtype == np.bool_ else "a * 2 + a.sum(axis=0)"
        check_expr(root, {"a": native}, expr)
        check_expr(root, {"a": native}, "a[::4, 1:20:3].T")

    for fmt, cases in [(2, v2), (3, v3)]:
        for label, kwargs in cases.items():
            test(f"zarr v{fmt} {label} ({np.dtype(kwargs['dtype']).str}) is read", check, fmt,
                 kwargs)


def test_sharding(rng):
    def sharded(dtype, shape, chunks, shards, zero_inner=False, index_start=False):
        root = new_dir("shard")
        data = gen(rng, dtype, shape)
        if zero_inner:  # zarr-python leaves these inner chunks out of their shard
            data[0:chunks[0], 0:chunks[1]] = 0
            data[chunks[0]:2 * chunks[0], chunks[1]:2 * chunks[1]] = 0
        if index_start:
            codec = zarr.codecs.ShardingCodec(
                chunk_shape=chunks, codecs=[zarr.codecs.BytesCodec(), zarr.codecs.ZstdCodec()],
                index_location="start")
            write_array(root / "a.zarr", data, chunks=shards, serializer=codec)
        else:
            write_array(root / "a.zarr", data, chunks=chunks, shards=shards)
        expect_all_chunks(root / "a.zarr", [-(-s // c) for s, c in zip(shape, shards)])
        for expr in ["a.sum(axis=0)", "a[3:40:4, ::3].T", "a * 2 - 1"]:
            check_expr(root, {"a": data}, expr)

    def case(label, *args, **kwargs):
        test(f"sharded v3 {label} is read", sharded, *args, **kwargs)

    case("float64 (43, 31), chunks (5, 4), shards (10, 8)", "float64", (43, 31), (5, 4), (10, 8))
    case("int32 (43, 31), chunks (5, 4), shards (20, 12)", "int32", (43, 31), (5, 4), (20, 12))
    case("float32 with empty inner chunks (default missingChunks)", "float32", (43, 31), (5, 4),
         (10, 8), zero_inner=True)
    case("int64 with the shard index at the start", "int64", (43, 31), (5, 4), (10, 8),
         index_start=True)


# --- 4, 5. our output in zarr-python: manifest, chunks, 0-d ---------------------------------------


def test_output(rng):
    root = new_dir("output")
    arrays = write_inputs(root, rng, {"a": "float64"})
    ints = new_dir("output-int")
    int_arrays = write_inputs(ints, rng, {"a": "int32"})

    def chunks_honored(expr, chunks):
        want = reference(expr, {n: arrays[n] for n in names_in(expr)})
        arr = check_array(array_job(root, names_in(expr), expr, chunks=chunks), want)
        # A chunk longer than its axis is cut to the axis (kask's chunks::clamp).
        expected = [min(c, s) for c, s in zip(chunks, want.shape)]
        if list(arr.chunks) != expected:
            raise Fail(f"chunks {list(arr.chunks)}, want {expected} as the job says")

    for expr, chunks in [("a * 2", [5, 2]), ("a * 2", [29, 23]), ("a.sum(axis=0)", [3]),
                         ("a.T @ a", [7, 9]), ("t.sum(axis=2)", [4, 4]),
                         ("a.sum(axis=0)", [100]), ("a[::2, 1:]", [1, 22])]:
        test(f"output `{expr}` with chunks {chunks}: zarr-python reads those chunks",
             chunks_honored, expr, chunks)

    def empty():
        run = array_job(root, ["a"], "a[5:5] * 2")
        check_array(run, arrays["a"][5:5] * 2)

    test("output `a[5:5] * 2` (shape (0, 23)) opens in zarr-python", empty)

    def default_chunks():
        run = array_job(root, ["a"], "a + 1")
        arr = check_array(run, arrays["a"] + 1)
        if any(c <= 0 for c in arr.chunks):
            raise Fail(f"chunks {arr.chunks}")
        # Every file the manifest lists is there with its size; the chunks are zstd.
        for f in manifest(run.out)["files"]:
            p = run.out / f["path"]
            if not p.is_file() or p.stat().st_size != f["bytes"]:
                size = p.stat().st_size if p.exists() else "no file"
                raise Fail(f"_SUCCESS lists {f}, on disk: {size}")
        names = [type(c).__name__ for c in arr.compressors]
        if names != ["ZstdCodec"]:
            raise Fail(f"compressors {names}, want zstd")
        if arr.metadata.zarr_format != 3:
            raise Fail(f"zarr_format {arr.metadata.zarr_format}")

    test("output: manifest files exist with their sizes, zstd, Zarr v3", default_chunks)

    def zero_d(root, arrays, expr):
        want = reference(expr, {n: arrays[n] for n in names_in(expr)})
        run = array_job(root, names_in(expr), expr)
        arr = check_array(run, want)
        if arr.ndim != 0 or arr.shape != () or arr.chunks != ():
            raise Fail(f"shape {arr.shape}, chunks {arr.chunks}, want ()")
        said = manifest(run.out)["array"]
        if said["shape"] != [] or said["chunks"] != []:
            raise Fail(f"_SUCCESS array {said}, want shape [] and chunks []")
        value = arr[()]
        if np.asarray(value).shape != ():
            raise Fail(f"arr[()] is {value!r}, not a scalar")

    for expr in ["a.sum()", "(a * a).mean()", "a.max()", "a[2, 3]", "a.var(ddof=1)"]:
        test(f"0-d float64 `{expr}` opens as a 0-d array", zero_d, root, arrays, expr)
    for expr in ["a.sum()", "a.min()", "a[2, 3]"]:
        test(f"0-d int32 `{expr}` opens as a 0-d array", zero_d, ints, int_arrays, expr)


# --- 6. chunks left out by zarr-python (write_empty_chunks=False) ---------------------------------


def test_missing_chunks(rng):
    def case(label, dtype, fill_value=None, zarr_format=3, shards=None,
             blocks=((1, 0), (2, 2), (3, 1))):
        """A (22, 9) array in (6, 4) chunks (a grid of 4 x 3, the last row and column short), or
        in shards, whose `blocks` (chunk or shard indices) hold only the fill value."""
        root = new_dir("missing")
        shape, chunks = (22, 9), (6, 4)
        data = gen(rng, dtype, shape)
        unit = shards or chunks
        for i, j in blocks:
            data[i * unit[0]:(i + 1) * unit[0], j * unit[1]:(j + 1) * unit[1]] = (
                0 if fill_value is None else fill_value)
        kwargs = {"chunks": chunks, "zarr_format": zarr_format}
        if fill_value is not None:
            kwargs["fill_value"] = fill_value
        if shards:
            kwargs["shards"] = shards
        total = int(np.prod([-(-s // c) for s, c in zip(shape, unit)]))
        sep, prefix = ("/", "c/") if zarr_format == 3 else (".", "")
        missing = [prefix + sep.join(map(str, b)) for b in sorted(blocks)]

        def setup():
            if not (root / "a.zarr").exists():
                write_array(root / "a.zarr", data, **kwargs)
            stored = stored_chunks(root / "a.zarr")
            if len(stored) != total - len(blocks) or any(k in stored for k in missing):
                raise RuntimeError(f"setup: stored {stored}, expected all but {missing}")

        def errors():
            setup()
            err = array_job(root, ["a"], "a.sum(axis=0)").error()
            if "missingChunks: fill" not in err:
                raise Fail(f"error does not suggest `missingChunks: fill`: {err}")
            absent = [k for k in missing if k not in err]
            if absent:
                raise Fail(f"error does not name missing chunk(s) {absent}: {err}")

        def filled():
            setup()
            for expr in ["a.sum(axis=0)", "a * 2", "a[::2, 1:]"]:
                check_expr(root, {"a": data}, expr, fill=("a",))

        test(f"missing chunks, {label}: error names them and suggests missingChunks: fill", errors)
        test(f"missing chunks, {label}: missingChunks: fill matches NumPy", filled)

    case("v3 int32, fill 0", "int32")
    case("v3 float64, fill NaN", "float64", fill_value=np.nan)
    case("v3 int64, fill 7", "int64", fill_value=7)
    case("v3 bool, fill False", "bool", blocks=((0, 1), (3, 2)))
    case("v2 float32, fill 0", "float32", zarr_format=2)
    case("v3 sharded float64, a whole shard empty", "float64", shards=(12, 8),
         blocks=((1, 1),))


# --- 7. bags --------------------------------------------------------------------------------------


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_lines(path, lines, gz=False, newline_at_end=True):
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def keys_sorted_hook(pairs):
    keys = [k for k, _ in pairs]
    if keys != sorted(keys):
        raise Fail(f"object keys not sorted: {keys}")
    return dict(pairs)


def read_bag(run, sorted_keys=False):
    """The output parts, each a list of records as Python's json reads them; checks that the
    manifest counts them."""
    run.expect_ok()
    parts = sorted(run.out.glob("part-*.jsonl"))
    if not parts:
        raise Fail(f"no part-*.jsonl in the output: {sorted(p.name for p in run.out.iterdir())}")
    records = []
    for p in parts:
        text = p.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):
            raise Fail(f"{p.name} does not end with a newline")
        lines = text.split("\n")[:-1] if text else []
        try:
            records.append([json.loads(line, object_pairs_hook=keys_sorted_hook if sorted_keys
                                       else None) for line in lines])
        except json.JSONDecodeError as e:
            raise Fail(f"{p.name} is not JSON lines: {e}") from e
    m = manifest(run.out)
    total = sum(len(r) for r in records)
    if m.get("rows") != total:
        raise Fail(f"_SUCCESS rows {m.get('rows')}, the parts hold {total} records")
    listed = sorted(f["path"] for f in m.get("files", []))
    if listed != [p.name for p in parts]:
        raise Fail(f"_SUCCESS files {listed}, output has {[p.name for p in parts]}")
    return records


def expect_equal(got, want, what="records"):
    if got != want:
        raise Fail(f"{what}: got {one_line(got, 180)}, want {one_line(want, 180)}")


def expect_same_items(got, want, what):
    """got and want hold the same values as often (JSON values, compared as canonical text)."""
    got = collections.Counter(canonical(v) for v in got)
    want = collections.Counter(canonical(v) for v in want)
    if got != want:
        raise Fail(f"{what}: missing {one_line(sorted((want - got).elements()), 160)}, "
                   f"unexpected {one_line(sorted((got - want).elements()), 160)}")


COUNTRIES = ["de", "fr", "us", "jp", "côte"]
TAGS = ["red", "green", "blue", "ünïcode", "x y"]


def make_records(n, rng):
    records = []
    for i in range(n):
        r = {"id": i}
        if i % 17 != 5:  # some records have no status
            r["status"] = rng.choice(["ok", "ok", "bad", "pending"])
        if i % 5 != 3:  # some have no amount; amounts are distinct, ints and floats
            r["amount"] = (i * 37) % 311 + (0.5 if i % 2 else 0)
        kind = i % 6
        if kind == 1:
            r["user"] = {"name": f"u{i}"}  # a user without a country
        elif kind > 1:
            r["user"] = {"name": f"u{i}", "country": COUNTRIES[i % 5], "age": 20 + i % 50}
        r["tags"] = [rng.choice(TAGS) for _ in range(i % 4)]
        records.append(r)
    return records


def write_events(root, records):
    """Three files: two plain (one without a final newline), one gzip-compressed."""
    third = len(records) // 3
    chunks = [records[:third], records[third:2 * third], records[2 * third:]]
    lines = [[json.dumps(r, ensure_ascii=False) for r in c] for c in chunks]
    write_lines(root / "events" / "a.jsonl", lines[0])
    write_lines(root / "events" / "b.jsonl", lines[1], newline_at_end=False)
    write_lines(root / "events" / "c.jsonl.gz", lines[2], gz=True)


def field(record, path):
    """A dotted path of a record, None when missing (SQL's NULL)."""
    v = record
    for part in path.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return v


def test_bags(rng):
    root = WORK / "bag"
    root.mkdir()
    records = make_records(300, rng)
    write_events(root, records)
    events = {"events": {"path": "events/*", "format": "json"}}

    def pluck_distinct():
        parts = read_bag(bag_job(root, events, [{"source": "events"}, {"pluck": "user.country"},
                                                {"distinct": {}}]))
        got = [v for part in parts for v in part]
        want = {canonical(field(r, "user.country")): field(r, "user.country") for r in records}
        expect_same_items(got, want.values(), "distinct values")
        for part in parts:
            expect_equal([canonical(v) for v in part], sorted(canonical(v) for v in part),
                         "order within a part (by canonical JSON)")

    test("bag pluck user.country + distinct (missing -> null, .gz, no final newline)",
         pluck_distinct)

    def map_distinct():
        parts = read_bag(bag_job(root, events, [{"source": "events"},
                                                {"map": {"s": "status", "c": "user.country"}},
                                                {"distinct": {}}]), sorted_keys=True)
        got = [v for part in parts for v in part]
        want = {canonical(v): v for v in ({"s": r.get("status"), "c": field(r, "user.country")}
                                          for r in records)}
        expect_same_items(got, want.values(), "distinct records")
        for part in parts:
            expect_equal([canonical(v) for v in part], sorted(canonical(v) for v in part),
                         "order within a part (by canonical JSON)")

    test("bag map + distinct over records (keys sorted)", map_distinct)

    def filter_map():
        steps = [{"source": "events"}, {"filter": "status = 'ok' AND amount > 100"},
                 {"map": {"id": "id", "country": "upper(user.country)", "n": "amount * 2"}}]
        got = [v for part in read_bag(bag_job(root, events, steps)) for v in part]
        want = [{"id": r["id"], "country": (field(r, "user.country") or "").upper() or None,
                 "n": r["amount"] * 2}
                for r in records if r.get("status") == "ok" and r.get("amount", 0) > 100]
        expect_equal(sorted(got, key=lambda r: r["id"]), want)

    test("bag filter + map (SQL over nested and missing fields, upper of UTF-8)", filter_map)

    def count(steps, want):
        parts = read_bag(bag_job(root, events, [{"source": "events"}, *steps, {"count": {}}]))
        got = [v for part in parts for v in part]
        expect_equal(got, [want], "count")
        if type(got[0]) is not int:
            raise Fail(f"count is {got[0]!r}, not a JSON integer")

    test("bag count (all records)", count, [], len(records))

    def by_extension(pattern, want):
        run = bag_job(root, {"e": {"path": pattern}}, [{"source": "e"}, {"filter": "id >= 0"},
                                                       {"count": {}}])
        expect_equal([v for part in read_bag(run) for v in part], [want], "count")

    test("bag events/*.jsonl read as JSON by default (filter id >= 0 + count)", by_extension,
         "events/*.jsonl", 200)
    test("bag events/*.jsonl.gz read as gzip'd JSON by default (filter id >= 0 + count)",
         by_extension, "events/*.jsonl.gz", 100)
    test("bag filter status = 'ok' + count", count, [{"filter": "status = 'ok'"}],
         sum(r.get("status") == "ok" for r in records))
    test("bag filter amount IS NULL + count", count, [{"filter": "amount IS NULL"}],
         sum("amount" not in r for r in records))

    def topk_records():
        steps = [{"source": "events"}, {"filter": "amount IS NOT NULL"},
                 {"topk": {"k": 4, "by": "amount"}}]
        parts = read_bag(bag_job(root, events, steps), sorted_keys=True)
        got = [v for part in parts for v in part]
        want = sorted((r for r in records if "amount" in r), key=lambda r: -r["amount"])[:4]
        expect_equal(got, want)

    test("bag topk k=4 by amount: whole nested records, largest first", topk_records)

    def topk_values():
        steps = [{"source": "events"}, {"filter": "amount IS NOT NULL"}, {"pluck": "amount"},
                 {"topk": {"k": 3}}]
        got = [v for part in read_bag(bag_job(root, events, steps)) for v in part]
        expect_equal(got, sorted((r["amount"] for r in records if "amount" in r),
                                 reverse=True)[:3])

    test("bag pluck amount + topk k=3 (by the value)", topk_values)

    def topk_more_than_there_are():
        steps = [{"source": "events"}, {"filter": "id < 3"}, {"topk": {"k": 10, "by": "id"}}]
        got = [v for part in read_bag(bag_job(root, events, steps), sorted_keys=True)
               for v in part]
        expect_equal(got, sorted((r for r in records if r["id"] < 3), key=lambda r: -r["id"]))

    test("bag topk k=10 of 3 records: all 3, largest first", topk_more_than_there_are)
    test("bag filter matching nothing + count: 0", count, [{"filter": "status = 'nope'"}], 0)

    def deep_missing():
        steps = [{"source": "events"}, {"pluck": "user.address.city"}, {"distinct": {}}]
        got = [v for part in read_bag(bag_job(root, events, steps)) for v in part]
        expect_equal(got, [None], "distinct values")

    test("bag pluck of a path no record has (user.address.city) + distinct: [null]",
         deep_missing)

    def map_arithmetic():
        steps = [{"source": "events"}, {"filter": "user.age > 60"},
                 {"map": {"id": "id", "older": "user.age + 1", "half": "amount / 2"}}]
        got = [v for part in read_bag(bag_job(root, events, steps)) for v in part]
        # SQL's division: an integer over an integer is an integer (truncated); each record's
        # own types count (amount is an integer in some records, a float in others).
        want = [{"id": r["id"], "older": r["user"]["age"] + 1,
                 "half": (None if "amount" not in r else r["amount"] / 2
                          if isinstance(r["amount"], float) else int(r["amount"] / 2))}
                for r in records if field(r, "user.age") is not None and r["user"]["age"] > 60]
        expect_equal(sorted(got, key=lambda r: r["id"]), want)

    test("bag filter + map arithmetic on nested fields (user.age + 1, SQL's amount / 2)",
         map_arithmetic)

    def status_frequencies():
        steps = [{"source": "events"}, {"pluck": "status"}, {"frequencies": {}}]
        parts = read_bag(bag_job(root, events, steps))
        got = [v for part in parts for v in part]
        want = collections.Counter(r.get("status") for r in records)
        expect_same_items(got, [{"value": k, "count": n} for k, n in want.items()],
                          "frequencies")
        for part in parts:
            order = sorted(part, key=lambda v: (-v["count"], canonical(v["value"])))
            expect_equal(part, order, "order within a part (most frequent first)")

    test("bag pluck status + frequencies (null counted as a value)", status_frequencies)

    def flatten_tags():
        steps = [{"source": "events"}, {"flatten": "tags"}, {"pluck": "tags"}, {"frequencies": {}}]
        got = [v for part in read_bag(bag_job(root, events, steps)) for v in part]
        want = collections.Counter(t for r in records for t in r["tags"])
        expect_same_items(got, [{"value": k, "count": n} for k, n in want.items()],
                          "tag frequencies")

    test("bag flatten tags + pluck + frequencies (empty lists give nothing)", flatten_tags)

    def flatten_dot():
        steps = [{"source": "events"}, {"pluck": "tags"}, {"flatten": "."}, {"count": {}}]
        got = [v for part in read_bag(bag_job(root, events, steps)) for v in part]
        expect_equal(got, [sum(len(r["tags"]) for r in records)], "count")

    test("bag pluck tags + flatten \".\" + count", flatten_dot)

    test_word_count(rng)
    test_bad_records(rng)


def test_word_count(rng):
    root = WORK / "text"
    root.mkdir()
    words = (["the"] * 60 + ["data"] * 45 + ["kask"] * 33 + ["zarr"] * 21 + ["array"] * 14
             + ["bag"] * 9)
    vocab = ["naïve", "日本", "Straße", "The", "DATA", "x", "it's", "a-b", "42", "über", "ok."]
    words += [rng.choice(vocab) for _ in range(60)]
    rng.shuffle(words)
    seps = [" ", "  ", "\t", " \t ", "\u00a0", "\u3000"]
    lines = []
    while words:
        n = rng.randint(0, 9)  # some empty lines
        line, words = words[:n], words[n:]
        lines.append(rng.choice(["", " ", "\t"]) + "".join(w + rng.choice(seps) for w in line))
    third = len(lines) // 3
    write_lines(root / "text" / "a.txt", lines[:third])
    write_lines(root / "text" / "b.txt.gz", lines[third:2 * third], gz=True)
    crlf = "\r\n".join(lines[2 * third:])  # Windows line ends, no final newline
    (root / "text" / "c.txt").write_text(crlf, encoding="utf-8")
    want = collections.Counter()
    for f in ["a.txt", "c.txt"]:
        want.update((root / "text" / f).read_text(encoding="utf-8").split())
    with gzip.open(root / "text" / "b.txt.gz", "rt", encoding="utf-8") as f:
        want.update(f.read().split())
    text = {"text": {"path": "text/*", "format": "text"}}

    def frequencies():
        parts = read_bag(bag_job(root, text, [{"source": "text"}, {"split": {}},
                                              {"frequencies": {}}]))
        got = [v for part in parts for v in part]
        expect_same_items(got, [{"value": k, "count": n} for k, n in want.items()],
                          "word counts")
        for part in parts:
            order = [canonical(v) for v in sorted(part, key=lambda v: (-v["count"],
                                                                       canonical(v["value"])))]
            expect_equal([canonical(v) for v in part], order,
                         "order within a part (most frequent first, ties by canonical JSON)")

    test("bag text split + frequencies = collections.Counter of str.split() (gz, CRLF, "
         "unicode spaces)", frequencies)

    def top5():
        steps = [{"source": "text"}, {"split": {}}, {"frequencies": {}},
                 {"topk": {"k": 5, "by": "count"}}]
        got = [v for part in read_bag(bag_job(root, text, steps), sorted_keys=True) for v in part]
        expect_equal(got, [{"count": n, "value": w} for w, n in want.most_common(5)])

    test("bag word count topk k=5 by count", top5)

    def split_sep():
        d = WORK / "text-sep"
        d.mkdir()
        rows = ["a,b,,c", "b,b", ",", "x y,z", "ü,a"]
        write_lines(d / "csv" / "rows.txt", rows)
        parts = read_bag(bag_job(d, {"t": {"path": "csv/*.txt"}},
                                 [{"source": "t"}, {"split": {"sep": ","}}, {"frequencies": {}}]))
        counts = collections.Counter(w for row in rows for w in row.split(","))
        expect_same_items([v for part in parts for v in part],
                          [{"value": k, "count": n} for k, n in counts.items()],
                          "counts (empty strings included, as str.split(','))")

    test("bag split sep ',' = str.split(',')", split_sep)

    def split_ascii_separators():
        d = WORK / "text-us"
        d.mkdir()
        rows = ["alpha\x1fbeta gamma\x1cdelta", "eps\x1dzeta\x1eeta\x0bnu\x0cmu\x85xi"]
        write_lines(d / "t" / "rows.txt", rows)
        parts = read_bag(bag_job(d, {"t": {"path": "t/*.txt"}},
                                 [{"source": "t"}, {"split": {}}, {"frequencies": {}}]))
        counts = collections.Counter(w for row in rows for w in row.split())
        expect_same_items([v for part in parts for v in part],
                          [{"value": k, "count": n} for k, n in counts.items()], "words")

    test("bag split {} splits where str.split() does (\\x1c-\\x1f, \\x0b, \\x0c, \\x85)",
         split_ascii_separators)


# The events of test_bad_records: every file of events/ as JSON lines.
EVENTS = {"e": {"path": "events/*", "format": "json"}}


def test_bad_records(rng):
    good = [json.dumps(r, ensure_ascii=False) for r in make_records(150, rng)]

    def setup(name, bad):
        """events/a.jsonl (50 good lines), b.jsonl (60 lines), c.jsonl.gz (40 lines); `bad`
        maps a file to {line number (1-based): bad text}."""
        root = WORK / name
        root.mkdir()
        files = {"a.jsonl": good[:50], "b.jsonl": good[50:110], "c.jsonl.gz": good[110:]}
        for f, lines in files.items():
            lines = list(lines)
            for n, text in bad.get(f, {}).items():
                lines[n - 1] = text
            write_lines(root / "events" / f, lines, gz=f.endswith(".gz"))
        return root

    def error(name, bad, file, line):
        root = setup(name, bad)
        err = bag_job(root, EVENTS, [{"source": "e"}, {"count": {}}]).error()
        if file not in err:
            raise Fail(f"error does not name {file}: {err}")
        numbers = re.findall(rf"{re.escape(file)}\W+line (\d+)", err)
        if numbers != [str(line)]:
            raise Fail(f"error names line(s) {numbers}, want line {line}: {err}")

    test("bag malformed line 37 of b.jsonl: error names the file and line 37", error,
         "bad-b", {"b.jsonl": {37: '{"id": 5, "status": '}}, "b.jsonl", 37)
    test("bag malformed line 8 of c.jsonl.gz: error names the file and line 8", error,
         "bad-c", {"c.jsonl.gz": {8: "not json at all"}}, "c.jsonl.gz", 8)
    test("bag malformed line 1 of a.jsonl: error names the file and line 1", error,
         "bad-a", {"a.jsonl": {1: "[1, 2"}}, "a.jsonl", 1)

    def skip():
        bad = {"a.jsonl": {50: "}{"}, "b.jsonl": {37: '{"id": 5, "status": ', 52: "nope"},
               "c.jsonl.gz": {8: '{"id": }'}}
        root = setup("bad-skip", bad)
        run = bag_job(root, EVENTS, [{"source": "e"}, {"count": {}}],
                      on_bad="skip")
        got = [v for part in read_bag(run) for v in part]
        expect_equal(got, [len(good) - 4], "count of the good records")
        skipped = manifest(run.out).get("skippedRecords")
        if skipped != 4:
            raise Fail(f"_SUCCESS skippedRecords {skipped!r}, want 4")

    test("bag onBadRecord: skip: succeeds, counts the good records, skippedRecords 4", skip)


def reraise(e):
    raise e


# --- dataframes: the window step against pandas --------------------------------------------------

WINDOW_COLUMNS = {
    "roll": ({"column": "v", "rolling": 3, "agg": "mean", "minPeriods": 2},
             lambda g: g["v"].rolling(3, min_periods=2).mean()),
    "rsum": ({"column": "v", "rolling": 4, "agg": "sum", "minPeriods": 0},
             lambda g: g["v"].rolling(4, min_periods=0).sum()),
    "rvar": ({"column": "n", "rolling": 5, "agg": "var"}, lambda g: g["n"].rolling(5).var()),
    "rcount": ({"column": "v", "rolling": 3, "agg": "count", "minPeriods": 1},
               lambda g: g["v"].rolling(3, min_periods=1).count()),
    "emax": ({"column": "v", "expanding": True, "agg": "max"},
             lambda g: g["v"].expanding().max()),
    "estd": ({"column": "v", "expanding": True, "agg": "std", "minPeriods": 3},
             lambda g: g["v"].expanding(min_periods=3).std()),
    "cs": ({"column": "v", "cum": "sum"}, lambda g: g["v"].cumsum()),
    "cmin": ({"column": "n", "cum": "min"}, lambda g: g["n"].cummin()),
    "prev": ({"column": "v", "shift": 1}, lambda g: g["v"].shift(1)),
    "next2": ({"column": "n", "shift": -2}, lambda g: g["n"].shift(-2)),
    "d": ({"column": "v", "diff": 1}, lambda g: g["v"].diff(1)),
    "dback": ({"column": "n", "diff": -1}, lambda g: g["n"].diff(-1)),
    "ravg": ({"column": "v", "rank": "average"}, lambda g: g["v"].rank(method="average")),
    "rmin": ({"column": "v", "rank": "min", "ascending": False},
             lambda g: g["v"].rank(method="min", ascending=False)),
    "rmax": ({"column": "n", "rank": "max"}, lambda g: g["n"].rank(method="max")),
    "rfirst": ({"column": "v", "rank": "first"}, lambda g: g["v"].rank(method="first")),
    "rdense": ({"column": "v", "rank": "dense", "ascending": False},
               lambda g: g["v"].rank(method="dense", ascending=False)),
}


def window_reference(df, by):
    """pandas' answer: the rows in `t` order, each new column computed per group of `by`
    (null keys dropped, as groupby's default) or over all rows."""
    df = df.sort_values("t", kind="stable").reset_index(drop=True)
    out = df.copy()
    for name, (_, fn) in WINDOW_COLUMNS.items():
        if by:
            parts = [fn(g) for _, g in df.groupby(by, dropna=True, sort=False)]
            col = pd.concat(parts) if parts else pd.Series(dtype="float64")
            out[name] = col.reindex(df.index)
        else:
            out[name] = fn(df)
    return out


def check_window(prng, by, seed):
    rows = 300
    rng = np.random.default_rng(seed)
    keys = np.array(["a", "b", "c", None], dtype=object)
    df = pd.DataFrame({
        "k": keys[rng.integers(0, 4, rows)],
        "t": rng.permutation(rows).astype("int64"),
        "v": np.where(rng.random(rows) < 0.1, np.nan, rng.integers(0, 6, rows) * 0.5),
        "n": rng.integers(-20, 20, rows).astype("int64"),
    })
    root = new_dir("window")
    (root / "w").mkdir()
    for i in range(3):
        part = df.iloc[i * rows // 3:(i + 1) * rows // 3]
        part.to_parquet(root / "w" / f"part-{i}.parquet", index=False, row_group_size=40)
    window = {"orderBy": ["t"], "columns": {n: c for n, (c, _) in WINDOW_COLUMNS.items()}}
    if by:
        window["by"] = by
    out = f"out/{next(job_ids)}"
    spec = {"dataframe": {"inputs": {"w": {"path": "w/*.parquet"}},
                          "pipeline": [{"source": "w"}, {"window": window}]},
            "targetTaskBytes": 3000, "shufflePartitions": 3,
            "output": {"path": out, "mode": "overwrite"}}
    run_job(root, spec, out).expect_ok()
    got = pd.read_parquet(root / out).sort_values("t").reset_index(drop=True)
    want = window_reference(df, by)
    if list(got.columns) != list(want.columns):
        raise Fail(f"columns {list(got.columns)} (pandas: {list(want.columns)})")
    for name in WINDOW_COLUMNS:
        g, w = got[name], want[name]
        kinds = (g.dtype.kind, w.dtype.kind)
        # Kask keeps an integer column's type where pandas turns it to float for its NaNs
        # (shift, cummin of rows with null keys); every other new column is float64 in both.
        if kinds not in [("f", "f"), ("i", "f"), ("i", "i")] or (
                kinds[0] == "i" and WINDOW_COLUMNS[name][0].get("shift") is None
                and WINDOW_COLUMNS[name][0].get("cum") is None):
            raise Fail(f"{name}: dtype {g.dtype} (pandas: {w.dtype})")
        gv, wv = g.astype("float64").to_numpy(), w.astype("float64").to_numpy()
        same = np.isclose(gv, wv, rtol=1e-9, atol=1e-9, equal_nan=True)
        if not same.all():
            i = int(np.argmin(same))
            raise Fail(f"{name} at t={got['t'][i]} (k={got['k'][i]}): {gv[i]} (pandas: {wv[i]})")


def step_job(root, pipeline, inputs=("a",)):
    """A dataframe job of one pipeline over root/NAME/*.parquet; its result as pandas reads it."""
    out = f"out/{next(job_ids)}"
    spec = {"dataframe": {"inputs": {n: {"path": f"{n}/*.parquet"} for n in inputs},
                          "pipeline": pipeline},
            "targetTaskBytes": 2000, "shufflePartitions": 3, "broadcastBytes": 0,
            "output": {"path": out, "mode": "overwrite"}}
    run_job(root, spec, out).expect_ok()
    return pd.read_parquet(root / out, dtype_backend="numpy_nullable")


def write_parts(root, name, df, parts=3):
    (root / name).mkdir()
    n = len(df)
    for i in range(parts):
        df.iloc[i * n // parts:(i + 1) * n // parts].to_parquet(
            root / name / f"part-{i}.parquet", index=False, row_group_size=25)


def same_frames(got, want, label):
    """Equal as multisets of rows, column names in order, values to 1e-9, dtypes by kind."""
    if list(got.columns) != list(want.columns):
        raise Fail(f"{label}: columns {list(got.columns)} (pandas: {list(want.columns)})")
    for c in want.columns:
        if got[c].dtype.kind != want[c].dtype.kind and not (
                {got[c].dtype.kind, want[c].dtype.kind} <= {"O", "U", "T"}
                or str(got[c].dtype) in ("str", "string") or str(want[c].dtype) in ("str", "string")):
            raise Fail(f"{label}: {c} is {got[c].dtype} (pandas: {want[c].dtype})")

    def cell(v):
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return "null"
        if isinstance(v, (int, float, np.integer, np.floating)):
            return f"{float(v):.9g}"
        return str(v)

    def rows(df):
        return sorted("|".join(cell(v) for v in r) for r in df.itertuples(index=False))

    g, w = rows(got), rows(want)
    if len(g) != len(w):
        raise Fail(f"{label}: {len(g)} rows (pandas: {len(w)})")
    for x, y in zip(g, w):
        if x != y:
            raise Fail(f"{label}: row {x!r} (pandas: {y!r})")


def check_steps(seed):
    """melt, concat, semi/anti merges, explode and a global aggregate on random tables, each
    equal to pandas' own operation."""
    rng = np.random.default_rng(seed)
    n = 150
    a = pd.DataFrame({
        "k": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 12, n)), dtype="Int64"),
        "x": rng.integers(-50, 50, n).astype("float64"),
        "y": rng.random(n).round(3),
    })
    b = pd.DataFrame({
        "k": pd.array(np.where(rng.random(60) < 0.1, None, rng.integers(5, 20, 60)), dtype="Int64"),
        "s": [f"s{i}" for i in range(60)],
    })
    root = new_dir("steps")
    write_parts(root, "a", a)
    write_parts(root, "b", b, 2)

    got = step_job(root, [{"source": "a"}, {"melt": {"idVars": ["k"], "valueVars": ["x", "y"]}}])
    same_frames(got, a.melt(id_vars=["k"], value_vars=["x", "y"]), "melt")

    got = step_job(root, [{"source": "a"}, {"concat": ["b"]}], ("a", "b"))
    same_frames(got, pd.concat([a, b], ignore_index=True), "concat")

    # pandas' isin matches a null key with a null key, as Kask's merges do.
    keys = set(b["k"].dropna()) | ({pd.NA} if b["k"].isna().any() else set())
    has = a["k"].apply(lambda v: (pd.NA in keys) if pd.isna(v) else v in keys)
    for how, want in [("semi", a[has]), ("anti", a[~has])]:
        got = step_job(root, [{"source": "a"}, {"merge": {"right": "b", "on": ["k"], "how": how}}],
                       ("a", "b"))
        same_frames(got, want.reset_index(drop=True), how)

    # explode: a list per row, some empty or null; pandas gives one null row for each of those,
    # in an object column, which a user would cast to its element type.
    lists = [None if i % 9 == 0 else [int(v) for v in rng.integers(0, 5, i % 4)] for i in range(n)]
    c = pd.DataFrame({"id": np.arange(n, dtype="int64"), "l": lists})
    write_parts(root, "c", c)
    got = step_job(root, [{"source": "c"}, {"explode": "l"}], ("c",))
    want = c.explode("l").reset_index(drop=True).astype({"l": "Int64"})
    same_frames(got, want, "explode")

    got = step_job(root, [{"source": "a"}, {"groupby": {"by": [], "aggs": {"x": ["sum", "mean"],
                                                                         "k": ["count"]}}}])
    want = pd.DataFrame({"x_sum": [a["x"].sum()], "x_mean": [a["x"].mean()],
                         "k_count": [a["k"].count()]})
    same_frames(got, want, "groupby by []")


def test_dataframes(prng):
    for seed in [4, 5]:
        test(f"dataframe melt, concat, semi/anti merges, explode, global aggregate (seed {seed}) "
             "equal pandas", check_steps, seed)
    for seed in [1, 2]:
        test(f"dataframe window by k (seed {seed}): 17 columns equal pandas' groupby ops",
             check_window, prng, ["k"], seed)
    test("dataframe window over all rows: 17 columns equal pandas' Series ops",
         check_window, prng, [], 3)


def main():
    start = time.monotonic()
    rng = np.random.default_rng(20260401)
    prng = random.Random(20260401)
    for section in [test_dtypes, test_edges, test_codecs, test_sharding, test_output,
                    test_missing_chunks]:
        try:
            section(rng)
        except Exception as e:  # a section whose setup failed is one failure, and the rest runs
            test(f"{section.__name__} setup", reraise, e)
    for section in [test_bags, test_dataframes]:
        try:
            section(prng)
        except Exception as e:
            test(f"{section.__name__} setup", reraise, e)
    print(f"interop: took {time.monotonic() - start:.1f}s, {kask_runs['seconds']:.1f}s of it in "
          f"{kask_runs['count']} kask runs", file=sys.stderr)
    print(f"interop: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
