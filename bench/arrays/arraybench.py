#!/usr/bin/env python3
"""Arrays and bags: Kask against NumPy, dask.array, dask.bag and collections.Counter.

Run through bench/arrays/run, which provides the pinned engines in a venv. The cases:

  matmul     a @ b                 4096x4096 float64, chunks 1024x1024
  sum        a.sum(axis=0)         20000x20000 float64, chunks 2000x2000 (3.2 GB)
  mean       (a * b + 1).mean()    two 10000x10000 float64, chunks 2000x2000
  wordcount  word frequencies      1 GB of text in 16 files

(`--sizes small` runs the same cases on tiny inputs, for a quick check.) The data is made once
with `kask gen` and every engine reads the same Zarr arrays and text files. Each engine runs a
case once as a warm-up (not counted, unless --no-warmup) and then --repeat times; the table shows
the median and the fastest run, a throughput, and each figure's ratio to Kask's median.

How each engine is timed:
  kask        `kask run JOB.yaml` as a subprocess, wall clock from start to exit: planning,
              reading, computing and writing the result as Zarr (or JSON lines).
  numpy       zarr.open_array(...)[...] for every input (load), then the expression (compute);
              the table shows compute alone and load+compute.
  dask.array  da.from_zarr(...), the expression, .compute() with the default threaded
              scheduler; nothing is written.
  dask.bag    db.read_text(glob).str.split().flatten().frequencies().compute() with the
              default scheduler for bags (processes).
  counter     collections.Counter over str.split() of every line, in one process.
Each Python engine runs each case in a fresh worker process that imports its libraries before
the clock starts. Results are checked: Kask's and dask.array's arrays against NumPy's (allclose,
rtol 1e-9; for matmul also atol 1e-9*K), the word counts of Kask and dask.bag against Counter's
(exactly). The exit status is 0,
1 when some engine failed, or 2 when some result disagrees.
"""

import argparse
import glob
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import default_kask, package_versions  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("KASK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kask")
GB = 1e9

# ---------------------------------------------------------------------------------------------
# The cases and their sizes.
# ---------------------------------------------------------------------------------------------

CASES = {
    "matmul": {"expr": "a @ b", "inputs": ["a", "b"], "kind": "matmul"},
    "sum": {"expr": "a.sum(axis=0)", "inputs": ["a"], "kind": "reduction"},
    "mean": {"expr": "(a * b + 1).mean()", "inputs": ["a", "b"], "kind": "elementwise"},
    "wordcount": {"expr": "split, frequencies", "inputs": ["text"], "kind": "bag"},
}
ARRAY_ENGINES = ["kask", "numpy", "dask.array"]
BAG_ENGINES = ["kask", "dask.bag", "counter"]
ALL_ENGINES = ["kask", "numpy", "dask.array", "dask.bag", "counter"]

# Arrays: n x n float64 in chunks of chunk x chunk. Text: about `bytes` bytes in `files` files.
SIZES = {
    "full": {
        "matmul": {"n": 4096, "chunk": 1024},
        "sum": {"n": 20000, "chunk": 2000},
        "mean": {"n": 10000, "chunk": 2000},
        "wordcount": {"bytes": 1_000_000_000, "files": 16, "vocabulary": 10000},
    },
    "small": {
        "matmul": {"n": 512, "chunk": 128},
        "sum": {"n": 2000, "chunk": 500},
        "mean": {"n": 1000, "chunk": 250},
        "wordcount": {"bytes": 20_000_000, "files": 16, "vocabulary": 10000},
    },
}
SEEDS = {"a": 1, "b": 2, "text": 1}

# The goals of the issue. Every ratio is (the other figure's median seconds) / (Kask's median
# seconds), which is also Kask's throughput over the other's; a goal is met when it is >= `at least`.
# "matmul and reductions at >= 0.8x NumPy's throughput", shown against NumPy compute-only and
# against NumPy load+compute; ">= 3x faster than dask.array on the elementwise and reduction
# cases"; "word count >= 5x faster than dask.bag".
GOALS = [
    ("matmul", "numpy compute", 0.8, "≥ 0.8× NumPy's throughput, vs NumPy compute only"),
    ("matmul", "numpy load+compute", 0.8, "≥ 0.8× NumPy's throughput, vs NumPy load+compute"),
    ("sum", "numpy compute", 0.8, "≥ 0.8× NumPy's throughput, vs NumPy compute only"),
    ("sum", "numpy load+compute", 0.8, "≥ 0.8× NumPy's throughput, vs NumPy load+compute"),
    ("sum", "dask.array", 3.0, "≥ 3× faster than dask.array"),
    ("mean", "dask.array", 3.0, "≥ 3× faster than dask.array"),
    ("wordcount", "dask.bag", 5.0, "≥ 5× faster than dask.bag"),
]

# How two float64 results must agree: rtol 1e-9, and for matmul also atol 1e-9 * K (the inner
# dimension), since every element is a sum of K products whose rounding depends on the order.
RTOL = 1e-9


def evaluate(case, arrays):
    """The case's expression on NumPy or dask arrays (the same text as CASES[case]["expr"])."""
    a = arrays["a"]
    if case == "matmul":
        return a @ arrays["b"]
    if case == "sum":
        return a.sum(axis=0)
    if case == "mean":
        return (a * arrays["b"] + 1).mean()
    raise ValueError(f"not an array case: {case}")


def engines_of(case):
    return BAG_ENGINES if CASES[case]["kind"] == "bag" else ARRAY_ENGINES


# ---------------------------------------------------------------------------------------------
# Data: made once with `kask gen`, named after its parameters, reused while it is there.
# ---------------------------------------------------------------------------------------------

def array_name(n, chunk, seed, codec="zstd"):
    raw = "" if codec == "zstd" else "-raw"
    return f"float64-{n}x{n}-chunks{chunk}-seed{seed}{raw}.zarr"


def text_name(p, seed):
    return f"text-{p['bytes']}B-{p['files']}files-vocab{p['vocabulary']}-seed{seed}"


def case_inputs(case, size, codec="zstd"):
    """{input name: (directory name in the data dir, the `kask gen` arguments that make it)}."""
    p = SIZES[size][case]
    out = {}
    for name in CASES[case]["inputs"]:
        seed = SEEDS[name]
        if name == "text":
            out[name] = (text_name(p, seed), ["text", "--bytes", str(p["bytes"]), "--files", str(p["files"]),
                                              "--vocabulary", str(p["vocabulary"]), "--seed", str(seed)])
        else:
            out[name] = (array_name(p["n"], p["chunk"], seed, codec),
                         ["array", "--shape", f"{p['n']},{p['n']}", "--chunks", f"{p['chunk']},{p['chunk']}",
                          "--dtype", "float64", "--seed", str(seed), "--codec", codec])
    return out


def ensure_data(a, dirname, gen_args, log):
    """Makes DATA/dirname with `kask gen` unless it is there. The generator writes to a scratch
    name that is renamed when it has finished, so a directory under the final name is complete."""
    final = os.path.join(a.data, dirname)
    if os.path.isdir(final) and not a.regen:
        return final
    scratch = final + ".partial"
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(a.data, exist_ok=True)
    log(f"generating {dirname}: kask gen {' '.join(gen_args)}")
    t0 = time.perf_counter()
    try:
        subprocess.run([a.kask, "gen", *gen_args, "--out", scratch], check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as e:
        shutil.rmtree(scratch, ignore_errors=True)
        raise SystemExit(f"arraybench: generating {dirname} failed ({e})")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(scratch, final)
    log(f"generated {dirname} in {time.perf_counter() - t0:.1f}s ({tree_bytes(final) / GB:.2f} GB on disk)")
    return final


def tree_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def preread(paths):
    """Reads every file of the inputs once, so that the first engine finds them in the page cache
    as the others do. Returns the bytes read."""
    total = 0
    for path in paths:
        for root, _, files in os.walk(path):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    while chunk := fh.read(1 << 24):
                        total += len(chunk)
    return total


def logical_bytes(case, size, paths):
    """The input a case reads: n*n*8 bytes per float64 array, or the text files' size."""
    p = SIZES[size][case]
    if CASES[case]["kind"] == "bag":
        return sum(tree_bytes(x) for x in paths.values())
    return len(CASES[case]["inputs"]) * p["n"] * p["n"] * 8


# ---------------------------------------------------------------------------------------------
# Kask: one job file per case, `kask run` as a subprocess.
# ---------------------------------------------------------------------------------------------

def kask_job_yaml(case, dirs, workers):
    """The DaskJob. Its storage is the job file's directory, where `data` links to the data dir."""
    lines = ["apiVersion: kask.dev/v1alpha1", "kind: DaskJob", f"metadata: {{name: {case}}}", "spec:"]
    if CASES[case]["kind"] == "bag":
        lines += [
            "  bag:",
            "    inputs:",
            f"      text: {{path: {json.dumps('data/' + dirs['text'] + '/*.txt')}}}",
            "    steps:",
            "      - source: text",
            "      - split: {}",
            "      - frequencies: {}",
        ]
        out = f"out/{case}"
    else:
        lines += ["  array:", "    inputs:"]
        for name, d in dirs.items():
            lines.append(f"      {name}: {{path: {json.dumps('data/' + d)}}}")
        lines.append(f"    expr: {json.dumps(CASES[case]['expr'])}")
        out = f"out/{case}.zarr"
    lines += [f"  workers: {workers}", f"  output: {{path: {json.dumps(out)}, mode: overwrite}}"]
    return "\n".join(lines) + "\n", out


def run_kask(a, case, dirs, workdir, log):
    jobdir = os.path.join(workdir, "kask")
    os.makedirs(jobdir, exist_ok=True)
    link = os.path.join(jobdir, "data")
    if not os.path.islink(link):
        os.symlink(a.data, link)
    text, out = kask_job_yaml(case, dirs, a.workers)
    job = os.path.join(jobdir, f"{case}.yaml")
    with open(job, "w") as f:
        f.write(text)
    rec = {"job_yaml": text, "out": os.path.join(jobdir, out), "times": [], "reported_seconds": [],
           "warmup": None, "error": None}
    labels = (["warmup"] if a.warmup else []) + [f"run{i + 1}" for i in range(a.repeat)]
    for label in labels:
        logf = os.path.join(jobdir, f"{case}.{label}.log")
        with open(logf, "w") as lf:
            t0 = time.perf_counter()
            try:
                p = subprocess.run([a.kask, "run", job, *a.kask_arg], stdout=lf, stderr=subprocess.STDOUT,
                                   timeout=a.timeout, start_new_session=True)
                dt, rc = time.perf_counter() - t0, p.returncode
            except subprocess.TimeoutExpired:
                dt, rc = None, "timeout"
        output = open(logf, errors="replace").read()
        if rc != 0:
            tail = " | ".join(output.strip().splitlines()[-3:])
            rec["error"] = "timeout" if rc == "timeout" else f"exit {rc}: {tail}"
            log(f"  {case:<9} {'kask':<18} {label:<6} FAILED {rec['error']} (log: {logf})")
            break
        m = re.search(r" in ([0-9.]+)s", output)
        if label == "warmup":
            rec["warmup"] = dt
        else:
            rec["times"].append(dt)
            rec["reported_seconds"].append(float(m.group(1)) if m else None)
        log(f"  {case:<9} {'kask':<18} {label:<6} {dt:8.3f}s")
    return rec


# ---------------------------------------------------------------------------------------------
# Python engines: a fresh worker process per (case, engine).
# ---------------------------------------------------------------------------------------------

def run_python(a, engine, case, paths, workdir, log):
    root = os.path.join(workdir, engine, case)
    os.makedirs(root, exist_ok=True)
    result = os.path.join(root, "result.json" if CASES[case]["kind"] == "bag" else "result.npy")
    timings = os.path.join(root, "timings.json")
    spec = {"engine": engine, "case": case, "paths": paths, "warmup": a.warmup, "repeat": a.repeat,
            "result": result, "timings": timings}
    spec_path = os.path.join(root, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    logf = os.path.join(root, "worker.log")
    timed_out = False
    with open(logf, "w") as lf:
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_worker", spec_path],
                             stdout=lf, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            p.wait(timeout=a.timeout * (a.repeat + 1) + 60)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    rec = {"runs": [], "warmup": None, "error": None, "out": result}
    if os.path.exists(timings):
        with open(timings) as f:
            rec.update(json.load(f))
    if timed_out:
        rec["error"] = "timeout"
    elif p.returncode != 0 and not rec["error"]:
        tail = " | ".join(open(logf, errors="replace").read().strip().splitlines()[-3:])
        rec["error"] = f"worker exit {p.returncode}: {tail}"
    for i, r in enumerate(rec["runs"]):
        parts = f"  (load {r['load']:.3f}s + compute {r['compute']:.3f}s)" if "load" in r else ""
        log(f"  {case:<9} {engine:<18} run{i + 1:<3} {r['total']:8.3f}s{parts}")
    if rec["error"]:
        log(f"  {case:<9} {engine:<18} FAILED {rec['error']} (log: {logf})")
    return rec


def worker_main(spec_path):
    """Runs one case on one engine: the warm-up, then `repeat` timed runs. Writes the timings as
    JSON and the last run's result (.npy for arrays, JSON {word: count} for word counts)."""
    with open(spec_path) as f:
        spec = json.load(f)
    engine, case, paths = spec["engine"], spec["case"], spec["paths"]
    out = {"runs": [], "warmup": None, "error": None}
    try:
        run = {"numpy": numpy_engine, "dask.array": dask_array_engine, "dask.bag": dask_bag_engine,
               "counter": counter_engine}[engine]()
        n = spec["repeat"] + (1 if spec["warmup"] else 0)
        for i in range(n):
            timing, result = run(case, paths)
            if spec["warmup"] and i == 0:
                out["warmup"] = timing
            else:
                out["runs"].append(timing)
            if i == n - 1:
                save_result(result, spec["result"])
            del result
    except Exception as e:  # noqa: BLE001 - reported in the table
        traceback.print_exc()
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        out["error"] = f"{type(e).__name__}: {first}"[:300]
    with open(spec["timings"], "w") as f:
        json.dump(out, f)


def save_result(result, path):
    if isinstance(result, dict):
        with open(path, "w") as f:
            json.dump(result, f)
    else:
        import numpy as np
        np.save(path, np.asarray(result))


def numpy_engine():
    import numpy as np  # noqa: F401 - imported before the clock starts
    import zarr

    def run(case, paths):
        t0 = time.perf_counter()
        arrays = {k: zarr.open_array(p, mode="r")[...] for k, p in paths.items()}
        t1 = time.perf_counter()
        result = evaluate(case, arrays)
        t2 = time.perf_counter()
        del arrays
        return {"load": t1 - t0, "compute": t2 - t1, "total": t2 - t0}, result
    return run


def dask_array_engine():
    import dask.array as da
    import zarr  # noqa: F401 - imported before the clock starts

    def run(case, paths):
        t0 = time.perf_counter()
        arrays = {k: da.from_zarr(p) for k, p in paths.items()}
        result = evaluate(case, arrays).compute()
        return {"total": time.perf_counter() - t0}, result
    return run


def dask_bag_engine():
    import dask.bag as db

    def run(case, paths):
        t0 = time.perf_counter()
        pairs = db.read_text(paths["text"]).str.split().flatten().frequencies().compute()
        dt = time.perf_counter() - t0
        return {"total": dt}, dict(pairs)
    return run


def counter_engine():
    from collections import Counter

    def run(case, paths):
        t0 = time.perf_counter()
        counts = Counter()
        for name in sorted(glob.glob(paths["text"])):
            with open(name, encoding="utf-8") as f:
                for line in f:
                    counts.update(line.split())
        return {"total": time.perf_counter() - t0}, dict(counts)
    return run


# ---------------------------------------------------------------------------------------------
# Checking the results.
# ---------------------------------------------------------------------------------------------

def read_kask_counts(out):
    """{word: count} from Kask's JSON-lines output; a word that appears twice is an error."""
    counts = {}
    for name in sorted(glob.glob(os.path.join(out, "*.jsonl")) + glob.glob(os.path.join(out, "*.json"))):
        with open(name) as f:
            for line in f:
                if not line.strip():
                    continue
                rec = json.loads(line)
                if rec["value"] in counts:
                    raise ValueError(f"the word {rec['value']!r} appears twice in Kask's output")
                counts[rec["value"]] = rec["count"]
    if not counts:
        raise ValueError(f"no JSON lines in {out}")
    return counts


def compare_counts(got, want):
    if got == want:
        return None
    missing = [w for w in want if w not in got]
    extra = [w for w in got if w not in want]
    differ = [w for w in want if w in got and got[w] != want[w]]
    parts = [f"{len(got)} words vs {len(want)}"]
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
    if extra:
        parts.append(f"{len(extra)} extra (e.g. {extra[0]!r})")
    if differ:
        w = differ[0]
        parts.append(f"{len(differ)} counts differ (e.g. {w!r}: {got[w]} vs {want[w]})")
    return ", ".join(parts)


def compare_arrays(got, want, atol):
    import numpy as np
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {list(got.shape)} vs {list(want.shape)}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} vs {want.dtype}"
    if np.allclose(got, want, rtol=RTOL, atol=atol):
        return None
    diff = np.abs(got - want)
    i = np.unravel_index(int(np.nanargmax(diff)), diff.shape) if diff.ndim else ()
    return (f"not allclose (rtol {RTOL:g}, atol {atol:g}): largest difference {float(diff[i]):.3g} at "
            f"{list(map(int, i))}: {float(got[i])!r} vs {float(want[i])!r}")


def check_case(case, size, recs):
    """Checks every engine's result against the reference (NumPy for arrays, Counter for word
    counts, or the next engine that has one). Returns {engine: {status, detail}}."""
    kind = CASES[case]["kind"]
    order = ["counter", "dask.bag", "kask"] if kind == "bag" else ["numpy", "dask.array", "kask"]
    loaded = {}
    checks = {}
    for e in order:
        r = recs.get(e)
        if r is None:
            continue
        if r["error"]:
            checks[e] = {"status": "failed", "detail": r["error"]}
            continue
        try:
            if e == "kask" and kind == "bag":
                loaded[e] = read_kask_counts(r["out"])
            elif e == "kask":
                import zarr
                loaded[e] = zarr.open_array(r["out"], mode="r")[...]
            elif kind == "bag":
                with open(r["out"]) as f:
                    loaded[e] = json.load(f)
            else:
                import numpy as np
                loaded[e] = np.load(r["out"])
        except Exception as ex:  # noqa: BLE001 - an unreadable result is a finding
            checks[e] = {"status": "mismatch", "detail": f"cannot read the result: {type(ex).__name__}: {ex}"[:300]}
    ref = next((e for e in order if e in loaded), None)
    atol = 1e-9 * SIZES[size]["matmul"]["n"] if case == "matmul" else 0.0
    for e in loaded:
        if e == ref:
            checks[e] = {"status": "reference", "detail": None}
            continue
        if kind == "bag":
            detail = compare_counts(loaded[e], loaded[ref])
        else:
            detail = compare_arrays(loaded[e], loaded[ref], atol)
        checks[e] = {"status": "mismatch" if detail else "ok", "against": ref,
                     "detail": detail and f"{e} vs {ref}: {detail}"}
    if ref is not None and len(loaded) == 1 and "kask" in loaded and len(recs) > 1:
        checks["kask"] = {"status": "unchecked", "detail": "no other engine's result to compare with"}
    return checks


# ---------------------------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------------------------

def figures(case, recs):
    """The table's rows of one case: [(figure name, [seconds of each run], error)]."""
    rows = []
    for e in engines_of(case):
        r = recs.get(e)
        if r is None:
            continue
        if e == "kask":
            rows.append(("kask", r["times"], r["error"]))
        elif e == "numpy":
            rows.append(("numpy compute", [x["compute"] for x in r["runs"]], r["error"]))
            rows.append(("numpy load+compute", [x["total"] for x in r["runs"]], r["error"]))
        else:
            rows.append((e, [x["total"] for x in r["runs"]], r["error"]))
    return rows


def fmt_s(t):
    return "—" if t is None else (f"{t:.3f}" if t < 100 else f"{t:.1f}")


def fmt_ratio(r):
    if r is None:
        return ""
    return f"{r:.2f}" if r >= 0.1 else f"{r:.3f}"


def throughput(case, size, input_bytes, t):
    if not t:
        return None, None
    if case == "matmul":
        n = SIZES[size]["matmul"]["n"]
        return 2 * n ** 3 / t / 1e9, "GFLOP/s"
    return input_bytes / t / GB, "GB/s"


def build_report(meta, results):
    lines = [
        f"# Kask arrays and bags benchmark ({meta['sizes']} sizes, "
        f"input arrays {'zstd level 1' if meta['codec'] == 'zstd' else 'uncompressed'})",
        "",
        f"{meta['machine']['cores']} cores ({meta['machine']['cpu']}), {meta['machine']['memory']}; "
        f"{meta['started']}; kask: {meta['kask_version'] or meta['kask']}; "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        f"Warm page cache; {'one warm-up run, then ' if meta['warmup'] else 'no warm-up; '}"
        f"{meta['repeat']} timed run(s) per figure. Ratio vs Kask = the figure's median / Kask's median "
        "(> 1: Kask is faster).",
        "",
        "| case | engine | median s | min s | throughput | ratio vs Kask |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for res in results:
        case, kask_med = res["case"], res["figures"].get("kask", {}).get("median")
        label = f"{case}: `{CASES[case]['expr']}`, {res['shape']}"
        for name, fig in res["figures"].items():
            label, first = "", label  # the case is named on its first row only
            if fig["error"] and fig["median"] is None:
                lines.append(f"| {first} | {name} | failed | | | |")
                continue
            tp, unit = throughput(case, meta["sizes"], res["input_bytes"], fig["median"])
            ratio = fig["median"] / kask_med if kask_med and fig["median"] else None
            status = res["checks"].get(name.split()[0], {}).get("status")
            flag = " (MISMATCH)" if status == "mismatch" else ""
            lines.append(f"| {first} | {name}{flag} | {fmt_s(fig['median'])} | {fmt_s(fig['min'])} | "
                         f"{'' if tp is None else f'{tp:.2f} {unit}'} | {fmt_ratio(ratio)} |")
    goals = evaluate_goals(results)
    if goals:
        lines += ["", "| case | goal (from the issue) | ratio vs Kask | needed | met |", "|---|---|---:|---:|---|"]
        for g in goals:
            r = fmt_ratio(g["ratio"]) or "—"
            lines.append(f"| {g['case']} | {g['goal']} | {r} | ≥ {g['at_least']:g} | {'yes' if g['met'] else 'no'} |")
        met = sum(g["met"] for g in goals)
        lines += ["", f"Goals met: {met} of {len(goals)}."]
    problems = [f"{res['case']} {e}: {c['status']}: {c['detail']}" for res in results
                for e, c in res["checks"].items() if c["status"] in ("mismatch", "failed", "unchecked")]
    lines.append("")
    if problems:
        lines += ["Problems:", ""] + [f"- {p}" for p in problems]
    else:
        lines.append("All results agree (arrays: allclose to NumPy's, rtol 1e-9; word counts: exactly equal).")
    for w in meta["warnings"]:
        lines.append(f"\nWarning: {w}")
    return "\n".join(lines) + "\n", goals


def evaluate_goals(results):
    by_case = {r["case"]: r for r in results}
    out = []
    for case, fig, at_least, goal in GOALS:
        res = by_case.get(case)
        if res is None:
            continue
        kask = res["figures"].get("kask", {}).get("median")
        other = res["figures"].get(fig, {}).get("median")
        ok = res["checks"].get("kask", {}).get("status") in ("ok", "reference")
        ratio = other / kask if kask and other else None
        out.append({"case": case, "against": fig, "goal": goal, "at_least": at_least, "ratio": ratio,
                    "met": bool(ok and ratio is not None and ratio >= at_least)})
    return out


def machine_facts():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "memory unknown"
    try:
        with open("/proc/meminfo") as f:
            memory = f"{int(f.readline().split()[1]) / 2 ** 20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "memory": memory, "arch": platform.machine(),
            "kernel": platform.release(), "python": platform.python_version()}


def blas():
    """NumPy's BLAS, as its build reports it (e.g. scipy-openblas 0.3.x)."""
    try:
        import numpy as np
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{deps.get('name')} {deps.get('version')}"
    except Exception:  # noqa: BLE001 - only informative
        return None


def summarize(times):
    times = [t for t in times if t is not None]
    if not times:
        return None, None
    return statistics.median(times), min(times)


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/arrays/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kask", default=default_kask(),
                    help="the kask binary (default: ${CARGO_TARGET_DIR:-$HOME/.cache/kask/target}/release/kask)")
    ap.add_argument("--kask-arg", action="append", default=[], metavar="ARG",
                    help="an extra argument for `kask run` (repeatable), e.g. --kask-arg=--parallelism=2")
    ap.add_argument("--sizes", choices=sorted(SIZES), default="full", help="input sizes (default full)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated (default {','.join(CASES)})")
    ap.add_argument("--engines", default=",".join(ALL_ENGINES),
                    help=f"comma-separated (default {','.join(ALL_ENGINES)}); kask is needed for the ratios")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per figure (default 3)")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the uncounted first run")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                    help="spec.workers of the Kask jobs (default: the number of cores)")
    ap.add_argument("--data", default=os.path.join(CACHE, "bench-data", "arrays"),
                    help="data directory (default: ${KASK_CACHE:-$HOME/.cache/kask}/bench-data/arrays)")
    ap.add_argument("--codec", choices=["zstd", "none"], default="zstd",
                    help="how the input arrays' chunks are stored: zstd level 1 (default) or raw")
    ap.add_argument("--regen", action="store_true", help="remake the data even if it is there")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run before it counts as failed (default 1800)")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    ap.add_argument("--markdown", metavar="PATH", help="also write the table here")
    ap.add_argument("--workdir", help="where jobs, logs and results go (default: a temporary directory, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args(argv)
    a.cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    for c in a.cases:
        if c not in CASES:
            ap.error(f"--cases: unknown case {c!r} (known: {', '.join(CASES)})")
    a.engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    for e in a.engines:
        if e not in ALL_ENGINES:
            ap.error(f"--engines: unknown engine {e!r} (known: {', '.join(ALL_ENGINES)})")
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    a.data = os.path.abspath(a.data)
    return a


def main(argv):
    a = parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if not os.path.exists(a.kask):
        fallback = os.path.join(REPO, "target", "release", "kask")
        if not os.path.exists(fallback):
            raise SystemExit(f"arraybench: no kask binary at {a.kask} (nor {fallback}); build it with "
                             "`cargo build --release --bin kask`, or pass --kask PATH")
        a.kask = fallback
    a.kask = os.path.abspath(a.kask)

    warnings = []
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        warnings.append(f"load average {load1:.2f} at the start: something else is using the CPU, so timings are noisy")
        log("warning: " + warnings[-1])
    try:
        kask_version = subprocess.run([a.kask, "--version"], capture_output=True, text=True,
                                      timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        kask_version = None
    meta = {
        "sizes": a.sizes, "codec": a.codec, "size_parameters": {c: SIZES[a.sizes][c] for c in a.cases}, "cases": a.cases,
        "engines": a.engines, "repeat": a.repeat, "warmup": a.warmup, "kask_workers": a.workers,
        "data": a.data, "machine": machine_facts(), "versions": package_versions(["numpy", "dask", "zarr", "numcodecs"]), "numpy_blas": blas(),
        "kask": a.kask, "kask_version": kask_version, "kask_args": a.kask_arg,
        "dask_schedulers": {"array": "threads (default, no distributed Client)", "bag": "processes (default)"},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_average_at_start": load1,
        "page_cache": "warm: every input is read once before its case, and each engine has a warm-up run",
    }

    workdir = os.path.abspath(a.workdir or tempfile.mkdtemp(prefix="kask-arraybench-"))
    os.makedirs(workdir, exist_ok=True)
    log(f"work directory: {workdir}")
    results = []
    try:
        for case in a.cases:
            inputs = case_inputs(case, a.sizes, a.codec)
            dirs = {name: d for name, (d, _) in inputs.items()}
            data = {name: ensure_data(a, d, gen, log) for name, (d, gen) in inputs.items()}
            # What the Python engines open: the Zarr directories, and a glob for the text files.
            paths = {name: os.path.join(d, "*.txt") if name == "text" else d for name, d in data.items()}
            p = SIZES[a.sizes][case]
            shape = f"{p['n']}×{p['n']}" if "n" in p else f"{p['bytes'] / 1e6:g} MB in {p['files']} files"
            read = preread(data.values())
            input_bytes = logical_bytes(case, a.sizes, data)
            log(f"{case}: {CASES[case]['expr']} on {shape} ({input_bytes / GB:.3f} GB of input, "
                f"{read / GB:.3f} GB on disk, read once to warm the page cache)")
            recs = {}
            for e in engines_of(case):
                if e not in a.engines:
                    continue
                if e == "kask":
                    recs[e] = run_kask(a, case, dirs, workdir, log)
                else:
                    recs[e] = run_python(a, e, case, paths, workdir, log)
            checks = check_case(case, a.sizes, recs)
            for e, c in checks.items():
                if c["status"] == "mismatch":
                    log(f"  {case:<9} {e:<18} RESULT MISMATCH: {c['detail']}")
            figs = {}
            for name, times, error in figures(case, recs):
                med, mn = summarize(times)
                figs[name] = {"median": med, "min": mn, "times": times, "error": error}
            for r in recs.values():
                r.pop("out", None)
            results.append({"case": case, "expr": CASES[case]["expr"], "kind": CASES[case]["kind"],
                            "shape": shape, "size": p, "input_bytes": input_bytes, "disk_bytes": read,
                            "figures": figs, "checks": checks, "engines": recs})
    finally:
        if a.keep or a.workdir:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    meta["warnings"] = warnings
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    table, goals = build_report(meta, results)
    print(table, end="")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "goals": goals, "results": results}, f, indent=2)
            f.write("\n")
        log(f"wrote {a.json}")
    mismatched = [f"{r['case']} ({e})" for r in results for e, c in r["checks"].items() if c["status"] == "mismatch"]
    failed = [f"{r['case']} ({e})" for r in results for e, c in r["checks"].items()
              if c["status"] in ("failed", "unchecked")]
    if mismatched:
        log(f"arraybench: results disagree in: {', '.join(mismatched)}")
        return 2
    if failed:
        log(f"arraybench: failed or unchecked: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_worker":
        worker_main(sys.argv[2])
    else:
        sys.exit(main(sys.argv[1:]))
