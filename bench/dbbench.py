#!/usr/bin/env python3
"""db-benchmark groupby and join questions: Kask against Polars, DuckDB, Dask, Daft and Sail.

Run through bench/run, which provides the pinned engines in a venv. Every question runs --runs
times per engine, end to end (read the Parquet input, compute, write the result as Parquet),
question by question so that all engines see the same machine state. The answers are checked
across engines (row count and the sum of every numeric result column), then a Markdown table of
seconds and Kask's ratios is printed, and the figures are written as JSON with --json.

How each engine is timed:
  kask    `kask run JOB.yaml` as a subprocess, wall clock: process start to exit.
  polars  LazyFrame from scan_parquet, collect(), write_parquet.
  duckdb  a fresh in-memory connection, COPY (SELECT ... FROM read_parquet(...)) TO ... .
  dask    dask.dataframe read_parquet, compute and to_parquet with the default (threaded)
          scheduler; no distributed Client.
  daft    daft.read_parquet per table, the question as SQL (daft.sql), write_parquet.
  sail    Sail's Spark Connect server (pysail, started before the clock) and a PySpark client:
          spark.read.parquet per table as a view, the question as Spark SQL, write.parquet.
Each Python engine runs each question in a fresh worker process; the imports happen before the
clock starts, so the Python engines' times exclude interpreter start-up and imports, while Kask's
include its process start-up.
"""

import argparse
import glob
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from benchlib import best, default_kask, machine, output_files, package_versions, preread_parquet, run_timed
from memcap import MemoryCap, parse_size

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CACHE = os.environ.get("KASK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kask")
ENGINES = ["kask", "polars", "duckdb", "dask", "daft", "sail"]
PY_ENGINES = ["polars", "duckdb", "dask", "daft", "sail"]

# ---------------------------------------------------------------------------------------------
# The questions (see /work/shared/bench/dbbench.md).
#
# Groupby questions that are a plain groupby are described once, as (by, aggs), and every engine
# builds its own query from that; output columns are the by columns, then `<col>_<agg>`.
# ---------------------------------------------------------------------------------------------

GROUPBY = {
    "q1": {"by": ["id1"], "aggs": {"v1": ["sum"]}, "title": "sum v1 by id1"},
    "q2": {"by": ["id1", "id2"], "aggs": {"v1": ["sum"]}, "title": "sum v1 by id1:id2"},
    "q3": {"by": ["id3"], "aggs": {"v1": ["sum"], "v3": ["mean"]}, "title": "sum v1 mean v3 by id3"},
    "q4": {"by": ["id4"], "aggs": {"v1": ["mean"], "v2": ["mean"], "v3": ["mean"]}, "title": "mean v1:v3 by id4"},
    "q5": {"by": ["id6"], "aggs": {"v1": ["sum"], "v2": ["sum"], "v3": ["sum"]}, "title": "sum v1:v3 by id6"},
    "q6": {"by": ["id4", "id5"], "aggs": {"v3": ["median", "std"]}, "title": "median v3 sd v3 by id4 id5"},
    # max v1 - min v2 by id3: a groupby, then range_v1_v2 = v1_max - v2_min, keeping id3 and it.
    "q7": {"by": ["id3"], "aggs": {"v1": ["max"], "v2": ["min"]}, "range": True, "title": "max v1 - min v2 by id3"},
    # largest two v3 by id6: columns id6, largest2_v3 (one row per value kept).
    "q8": {"special": "top2", "title": "largest two v3 by id6"},
    # r2 of v1 and v2 by id2, id4: columns id2, id4, r2.
    "q9": {"special": "r2", "title": "regression v1 v2 by id2 id4"},
    "q10": {"by": ["id1", "id2", "id3", "id4", "id5", "id6"], "aggs": {"v3": ["sum"], "v1": ["count"]},
            "title": "sum v3 count by id1:id6"},
}

JOIN = {
    "q1": {"right": "small", "on": ["id1"], "how": "inner", "title": "small inner on int"},
    "q2": {"right": "medium", "on": ["id2"], "how": "inner", "title": "medium inner on int"},
    "q3": {"right": "medium", "on": ["id2"], "how": "left", "title": "medium outer on int"},
    "q4": {"right": "medium", "on": ["id5"], "how": "inner", "title": "medium inner on factor"},
    "q5": {"right": "big", "on": ["id3"], "how": "inner", "title": "big inner on int"},
}


# A full sort of the groupby table (not a db-benchmark question): the larger-than-memory runs
# (--memory-cap) sort 1e8 rows.
SORT = {
    "q1": {"by": ["id3", "v3"], "title": "sort by id3, v3"},
}

TABLES = {"groupby": GROUPBY, "join": JOIN, "sort": SORT}


def kask_steps(kind, q):
    """The Kask pipeline after `- source: x`, or None where Kask cannot express the question."""
    if kind == "sort":
        return [{"sort": {"by": SORT[q]["by"]}}]
    if kind == "join":
        j = JOIN[q]
        return [{"merge": {"right": j["right"], "on": j["on"], "how": j["how"]}}]
    g = GROUPBY[q]
    if "special" in g:
        return KASK_SPECIAL[q]
    steps = [{"groupby": {"by": g["by"], "aggs": g["aggs"]}}]
    if g.get("range"):
        steps += [{"assign": {"range_v1_v2": "v1_max - v2_min"}}, {"select": ["id3", "range_v1_v2"]}]
    return steps


# Groupby questions that are not one groupby of `aggs`: top two per group by a window filter
# (pandas' sort_values + groupby().head(2)), r² by a named aggregate expression. The result has
# the columns the other engines give: id6, largest2_v3 (q8); id2, id4, r2 (q9).
KASK_SPECIAL = {
    "q8": [
        {"filter": "v3 IS NOT NULL"},
        {"filter": "row_number() OVER (PARTITION BY id6 ORDER BY v3 DESC) <= 2"},
        {"select": ["id6", "v3"]},
        {"rename": {"v3": "largest2_v3"}},
    ],
    "q9": [{"groupby": {"by": ["id2", "id4"], "expressions": {"r2": "power(corr(v1, v2), 2)"}}}],
}

# Columns whose sums are compared with a looser tolerance (algorithms differ in rounding).
LOOSE = re.compile(r"(_std|_var|_median)$|^r2$")
TOL, LOOSE_TOL = 1e-6, 1e-4


def all_questions():
    return [("groupby", q) for q in GROUPBY] + [("join", q) for q in JOIN]


def parse_questions(specs, default=None):
    """`groupby:q1,q2 join:q1`, `groupby`, `join:all`, `sort`, `all` -> [(kind, q), ...]."""
    if not specs:
        return default or all_questions()
    out = []
    for spec in specs:
        for part in spec.split():
            if part == "all":
                out += all_questions()
                continue
            kind, _, qs = part.partition(":")
            table = TABLES.get(kind)
            if table is None:
                raise SystemExit(f"--questions: unknown kind {kind!r} in {part!r} (groupby, join or sort)")
            names = list(table) if qs in ("", "all") else [x for x in qs.split(",") if x]
            for q in names:
                if q not in table:
                    raise SystemExit(f"--questions: {kind} has no {q!r} (it has {', '.join(table)})")
                out.append((kind, q))
    seen, uniq = set(), []
    for k in out:
        if k not in seen:
            seen.add(k)
            uniq.append(k)
    return uniq


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def sci(n):
    """`1e7` for 10000000, `2.5e6` for 2500000: as kask gen names its tables."""
    if n == 0:
        return "0"
    exp = math.floor(math.log10(n))
    m = f"{n / 10 ** exp:.3f}".rstrip("0").rstrip(".")
    return f"{m}e{exp}"


def groupby_dir(data, rows, groups):
    return os.path.join(data, f"G1_{sci(rows)}_{sci(groups)}_0_0")


def join_dir(data, rows):
    return os.path.join(data, f"J1_{sci(rows)}")


JOIN_TABLES = ["x", "small", "medium", "big"]


def parts(d):
    return sorted(glob.glob(os.path.join(d, "part-*.parquet")))


def data_complete(kind, d):
    if kind == "groupby":
        return bool(parts(d))
    return all(parts(os.path.join(d, t)) for t in JOIN_TABLES)


def ensure_data(kind, a, log):
    """Generates the data set of `kind` unless it is there; returns its directory."""
    d = groupby_dir(a.data, a.rows, a.groups) if kind == "groupby" else join_dir(a.data, a.rows)
    if a.regen and os.path.isdir(d):
        shutil.rmtree(d)
    if data_complete(kind, d):
        n = len(parts(d if kind == "groupby" else os.path.join(d, "x")))
        if n != a.partitions:
            log(f"note: {d} has {n} files, not --partitions {a.partitions}; using it as it is (--regen to remake)")
        return d
    os.makedirs(a.data, exist_ok=True)
    # Generate into a scratch directory, then move into place: an interrupted run leaves no
    # half-written data set that a later run would take as complete.
    scratch = tempfile.mkdtemp(prefix=".gen-", dir=a.data)
    try:
        args = ["--rows", str(a.rows), "--seed", "1", "--partitions", str(a.partitions), "--out", scratch]
        if kind == "groupby":
            args = ["--groups", str(a.groups), "--nas", "0"] + args
        if a.gen == "kask":
            cmd = [a.kask, "gen", kind] + args
        else:
            cmd = [sys.executable, os.path.join(HERE, "pygen.py"), kind] + args
        log(f"generating {os.path.basename(d)}: {' '.join(cmd)}")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=sys.stderr)
        made = os.path.join(scratch, os.path.basename(d))
        if not data_complete(kind, made):
            raise SystemExit(f"{' '.join(cmd)} did not write {made}/... as expected; it wrote: "
                             f"{sorted(os.listdir(scratch))}")
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.rename(made, d)
        log(f"generated {d} in {time.perf_counter() - t0:.1f}s")
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"data generation failed ({e})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return d


def data_kind(kind):
    """The data set a question reads: a sort reads the groupby table."""
    return "join" if kind == "join" else "groupby"


def input_globs(kind, ddir, q):
    """{input name: glob} for a question."""
    if data_kind(kind) == "groupby":
        return {"x": os.path.join(ddir, "*.parquet")}
    right = JOIN[q]["right"]
    return {"x": os.path.join(ddir, "x", "*.parquet"), right: os.path.join(ddir, right, "*.parquet")}


# ---------------------------------------------------------------------------------------------
# Kask: a job file per question, run as a subprocess.
# ---------------------------------------------------------------------------------------------

PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def flow(v):
    """A value in YAML flow style: identifiers bare, other strings quoted the JSON way (valid
    YAML), YAML 1.1's boolean words (on, yes, ...) quoted."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{flow(k)}: {flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(flow(x) for x in v) + "]"
    if isinstance(v, str) and PLAIN.match(v) and v.lower() not in YAML_WORDS:
        return v
    return json.dumps(v)


def kask_job_yaml(kind, q, ddir_name, steps):
    name = f"{kind}-{q}"
    if data_kind(kind) == "groupby":
        inputs = {"x": f"{ddir_name}/*.parquet"}
    else:
        right = JOIN[q]["right"]
        inputs = {"x": f"{ddir_name}/x/*.parquet", right: f"{ddir_name}/{right}/*.parquet"}
    lines = [
        "apiVersion: kask.dev/v1alpha1",
        "kind: DaskJob",
        f"metadata: {{name: {name}}}",
        "spec:",
        "  dataframe:",
        "    inputs:",
    ]
    for k, p in inputs.items():
        lines.append(f"      {k}: {{path: {flow(p)}, format: parquet}}")
    lines += ["    pipeline:", "      - source: x"]
    for step in steps:
        (op, arg), = step.items()
        lines.append(f"      - {op}: {flow(arg)}")
    lines.append(f"  output: {{path: {flow('out/' + name)}, format: parquet, mode: overwrite}}")
    return "\n".join(lines) + "\n"


def run_kask(a, kind, q, ddir, workdir, log):
    """Times `kask run` --runs times. Returns (times, errors, output dir, extra)."""
    steps = kask_steps(kind, q)
    if steps is None:
        return None
    jobdir = os.path.join(workdir, "kask")
    os.makedirs(jobdir, exist_ok=True)
    # The job's storage is its own directory (no spec.storage): the data is reached through a
    # symlink beside the job file and the output lands in jobdir/out/.
    link = os.path.join(jobdir, os.path.basename(ddir))
    if not os.path.islink(link):
        os.symlink(ddir, link)
    job = os.path.join(jobdir, f"{kind}-{q}.yaml")
    job_yaml = kask_job_yaml(kind, q, os.path.basename(ddir), steps)
    with open(job, "w") as f:
        f.write(job_yaml)
    out = os.path.join(jobdir, "out", f"{kind}-{q}")
    times, errors, reported = [], [], []
    for r in range(a.runs):
        logf = os.path.join(jobdir, f"{kind}-{q}.run{r + 1}.log")
        cmd = [a.kask, "run", job] + a.kask_arg
        if a.cap:
            # Kask is told its limit as a pod's container would tell it (the cgroup it reads
            # is the container's own; here the cap is a child cgroup it cannot see).
            cmd += ["--memory", str(a.cap.limit)]
        ooms = a.cap.oom_kills() if a.cap else 0
        with open(logf, "w") as lf:
            rc, dt = run_timed(cmd, a.timeout, stdout=lf, stderr=subprocess.STDOUT,
                               preexec_fn=a.cap.enter if a.cap else None)
        text = open(logf, errors="replace").read()
        if rc == 0:
            times.append(dt)
            errors.append(None)
            m = re.search(r" in ([0-9.]+)s", text.strip().splitlines()[-1] if text.strip() else "")
            reported.append(float(m.group(1)) if m else None)
            log(f"  {kind} {q:<4} kask    run{r + 1} {dt:8.3f}s")
        else:
            times.append(None)
            msg = "timeout" if rc == "timeout" else f"exit {rc}: " + " | ".join(text.strip().splitlines()[-3:])
            if a.cap and a.cap.oom_kills() > ooms:
                msg = "killed at the memory cap (OOM); " + msg
            errors.append(msg)
            reported.append(None)
            log(f"  {kind} {q:<4} kask    run{r + 1} FAILED {msg} (log: {logf})")
    return times, errors, out, {"job_yaml": job_yaml, "kask_reported_seconds": reported,
                                "peak_bytes": cap_peak(a)}


def cap_peak(a):
    """The cgroup's peak memory since the last call, when runs are capped."""
    if not a.cap:
        return None
    peak = a.cap.peak()
    a.cap.reset_peak()
    return peak


# ---------------------------------------------------------------------------------------------
# Python engines: a worker process per (question, engine).
# ---------------------------------------------------------------------------------------------

def run_python_engine(a, engine, kind, q, ddir, workdir, log):
    outroot = os.path.join(workdir, engine, f"{kind}-{q}")
    os.makedirs(outroot, exist_ok=True)
    results = os.path.join(outroot, "results.jsonl")
    spec = {"engine": engine, "kind": kind, "q": q, "runs": a.runs, "inputs": input_globs(kind, ddir, q),
            "outroot": outroot, "results": results, "memory_cap": a.cap.limit if a.cap else None}
    spec_path = os.path.join(outroot, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    logf = os.path.join(outroot, "worker.log")
    with open(logf, "w") as lf:
        ooms = a.cap.oom_kills() if a.cap else 0
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_worker", spec_path],
                             stdout=lf, stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=a.cap.enter if a.cap else None)
        timed_out = False
        try:
            # Imports and schema reads come on top of the runs themselves.
            p.wait(timeout=a.timeout * a.runs + 60)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    got = {}
    if os.path.exists(results):
        for line in open(results):
            rec = json.loads(line)
            got[rec["run"]] = rec
    times, errors = [], []
    out = None
    for r in range(1, a.runs + 1):
        rec = got.get(r)
        if rec and rec.get("seconds") is not None:
            times.append(rec["seconds"])
            errors.append(None)
            out = rec["out"]
            log(f"  {kind} {q:<4} {engine:<7} run{r} {rec['seconds']:8.3f}s")
        else:
            times.append(None)
            if rec:
                msg = rec["error"]
            elif timed_out:
                msg = "timeout"
            else:
                tail = open(logf, errors="replace").read().strip().splitlines()[-3:]
                msg = f"worker exit {p.returncode}: " + " | ".join(tail)
            if a.cap and a.cap.oom_kills() > ooms:
                msg = "killed at the memory cap (OOM); " + msg
            errors.append(msg)
            log(f"  {kind} {q:<4} {engine:<7} run{r} FAILED {msg} (log: {logf})")
    return times, errors, out, {"peak_bytes": cap_peak(a)}


def worker_main(spec_path):
    """Runs one question on one engine --runs times; appends one JSON line per run."""
    with open(spec_path) as f:
        spec = json.load(f)
    engine = spec["engine"]
    impl = {"polars": PolarsEngine, "duckdb": DuckDBEngine, "dask": DaskEngine, "daft": DaftEngine,
            "sail": SailEngine}[engine](spec.get("memory_cap"))
    for r in range(1, spec["runs"] + 1):
        out = os.path.join(spec["outroot"], f"run{r}")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        rec = {"run": r, "out": out}
        try:
            t0 = time.perf_counter()
            impl.run(spec["kind"], spec["q"], spec["inputs"], out)
            rec["seconds"] = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - reported in the table
            traceback.print_exc()
            rec["seconds"] = None
            rec["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
        with open(spec["results"], "a") as f:
            f.write(json.dumps(rec) + "\n")
    if hasattr(impl, "close"):
        impl.close()


def join_columns(left_cols, right_cols, on, suffixes=("_x", "_y")):
    """pandas' merge naming: the key columns once, then left's other columns, then right's
    other columns; a name on both sides gets a suffix. Returns [(side, column, output name)]."""
    lo = [c for c in left_cols if c not in on]
    ro = [c for c in right_cols if c not in on]
    clash = set(lo) & set(ro)
    cols = [("l", c, c + suffixes[0] if c in clash else c) for c in left_cols]
    cols += [("r", c, c + suffixes[1] if c in clash else c) for c in ro]
    return cols


def parquet_columns(pattern):
    import pyarrow.parquet as pq
    files = sorted(glob.glob(pattern))
    return pq.read_schema(files[0]).names


def question_tables(kind, q):
    """The tables a question reads: x, and a join's right side."""
    return ["x", JOIN[q]["right"]] if kind == "join" else ["x"]


def question_sql(kind, q, table, columns):
    """The question as SQL that DuckDB, Spark (Sail) and Daft read alike; `table(name)` is how
    the query names table `name` (x, small, medium, big), `columns(name)` its columns."""
    x = table("x")
    if kind == "sort":
        return f"SELECT * FROM {x} ORDER BY {', '.join(SORT[q]['by'])}"
    if kind == "join":
        j = JOIN[q]
        cols = join_columns(columns("x"), columns(j["right"]), j["on"])
        sel = ", ".join(f"{'x' if s == 'l' else 'r'}.{c} AS {n}" for s, c, n in cols)
        cond = " AND ".join(f"x.{k} = r.{k}" for k in j["on"])
        how = {"inner": "INNER JOIN", "left": "LEFT JOIN"}[j["how"]]
        return f"SELECT {sel} FROM {x} AS x {how} {table(j['right'])} AS r ON {cond}"
    g = GROUPBY[q]
    if g.get("special") == "top2":
        return (f"SELECT id6, v3 AS largest2_v3 FROM (SELECT id6, v3, row_number() OVER "
                f"(PARTITION BY id6 ORDER BY v3 DESC) AS rn FROM {x} WHERE v3 IS NOT NULL) AS t WHERE rn <= 2")
    if g.get("special") == "r2":
        return f"SELECT id2, id4, power(corr(v1, v2), 2) AS r2 FROM {x} GROUP BY id2, id4"
    by = ", ".join(g["by"])
    if g.get("range"):
        return f"SELECT id3, max(v1) - min(v2) AS range_v1_v2 FROM {x} GROUP BY id3"
    agg = {"sum": "sum({})", "mean": "avg({})", "median": "median({})", "std": "stddev_samp({})",
           "var": "var_samp({})", "min": "min({})", "max": "max({})", "count": "count({})",
           "nunique": "count(DISTINCT {})"}
    aggs = ", ".join(f"{agg[f].format(c)} AS {c}_{f}" for c, fs in g["aggs"].items() for f in fs)
    return f"SELECT {by}, {aggs} FROM {x} GROUP BY {by}"


class PolarsEngine:
    AGG = {"sum": "sum", "mean": "mean", "median": "median", "std": "std", "var": "var", "min": "min",
           "max": "max", "count": "count", "first": "first", "last": "last", "nunique": "n_unique"}

    def __init__(self, cap=None):
        import polars as pl
        self.pl = pl
        # Under a memory cap, Polars' streaming engine (its out-of-core one).
        self.engine = "streaming" if cap else "auto"

    def run(self, kind, q, inputs, out):
        pl = self.pl
        x = pl.scan_parquet(inputs["x"])
        if kind == "sort":
            res = x.sort(SORT[q]["by"])
        elif kind == "join":
            j = JOIN[q]
            right = pl.scan_parquet(inputs[j["right"]])
            cols = join_columns(x.collect_schema().names(), right.collect_schema().names(), j["on"])
            x = x.rename({c: n for s, c, n in cols if s == "l" and c != n})
            right = right.rename({c: n for s, c, n in cols if s == "r" and c != n})
            res = x.join(right, on=j["on"], how=j["how"], coalesce=True).select([n for _, _, n in cols])
        else:
            g = GROUPBY[q]
            if g.get("special") == "top2":
                res = (x.drop_nulls("v3").group_by("id6")
                       .agg(pl.col("v3").top_k(2).alias("largest2_v3")).explode("largest2_v3"))
            elif g.get("special") == "r2":
                res = x.group_by(["id2", "id4"]).agg((pl.corr("v1", "v2") ** 2).alias("r2"))
            else:
                exprs = [getattr(pl.col(c), self.AGG[f])().alias(f"{c}_{f}")
                         for c, fs in g["aggs"].items() for f in fs]
                res = x.group_by(g["by"]).agg(exprs)
                if g.get("range"):
                    res = res.select("id3", (pl.col("v1_max") - pl.col("v2_min")).alias("range_v1_v2"))
        res.collect(engine=self.engine).write_parquet(os.path.join(out, "part-0.parquet"))


class DuckDBEngine:
    AGG = {"sum": "sum({})", "mean": "avg({})", "median": "median({})", "std": "stddev_samp({})",
           "var": "var_samp({})", "min": "min({})", "max": "max({})", "count": "count({})",
           "first": "first({})", "last": "last({})", "nunique": "count(DISTINCT {})"}

    def __init__(self, cap=None):
        import duckdb
        self.duckdb = duckdb
        self.schemas = {}
        # Under a memory cap, DuckDB's own limit at 3/4 of it (its buffer manager does not count
        # everything), spilling to a temporary directory.
        self.memory_limit = f"{cap * 3 // 4 // 2 ** 20}MiB" if cap else None

    @staticmethod
    def lit(s):
        return "'" + s.replace("'", "''") + "'"

    def sql(self, kind, q, inputs):
        return question_sql(kind, q, lambda t: f"read_parquet({self.lit(inputs[t])})",
                            lambda t: parquet_columns(inputs[t]))

    def run(self, kind, q, inputs, out):
        sql = self.sql(kind, q, inputs)
        con = self.duckdb.connect()
        try:
            if self.memory_limit:
                con.execute(f"SET memory_limit = {self.lit(self.memory_limit)}")
                tmp = os.path.join(os.path.dirname(out), f"{os.path.basename(out)}.duckdb-tmp")
                con.execute(f"SET temp_directory = {self.lit(tmp)}")
                # An ORDER BY keeps insertion order otherwise, which costs memory.
                con.execute("SET preserve_insertion_order = false")
            con.execute(f"COPY ({sql}) TO {self.lit(os.path.join(out, 'part-0.parquet'))} (FORMAT parquet)")
        finally:
            con.close()


class DaskEngine:
    AGG = {"sum": "sum", "mean": "mean", "median": "median", "std": "std", "var": "var", "min": "min",
           "max": "max", "count": "count", "first": "first", "last": "last", "nunique": "nunique"}

    def __init__(self, cap=None):
        import dask
        import dask.dataframe as dd
        self.dask, self.dd = dask, dd
        self.client = None
        if cap:
            # Dask's memory limit is a distributed worker's: one worker process with every core,
            # which spills at its thresholds and pauses near the limit (started before the clock).
            from dask.distributed import Client, LocalCluster
            cluster = LocalCluster(n_workers=1, threads_per_worker=os.cpu_count() or 1, processes=True,
                                   memory_limit=cap * 9 // 10, dashboard_address=None)
            self.client = Client(cluster)

    def run(self, kind, q, inputs, out):
        dd = self.dd
        x = dd.read_parquet(inputs["x"])
        if kind == "sort":
            res = x.sort_values(SORT[q]["by"])
        elif kind == "join":
            j = JOIN[q]
            right = dd.read_parquet(inputs[j["right"]])
            res = x.merge(right, on=j["on"], how=j["how"], suffixes=("_x", "_y"))
        else:
            g = GROUPBY[q]
            if g.get("special") == "top2":
                def top2(p):
                    return p.sort_values("v3", ascending=False).groupby("id6", sort=False).head(2)
                # Top two within each partition, shuffle by id6, top two of those.
                res = (x[["id6", "v3"]].dropna().map_partitions(top2).shuffle("id6").map_partitions(top2)
                       .rename(columns={"v3": "largest2_v3"}))
            elif g.get("special") == "r2":
                # corr from per-group moment sums (one groupby-agg, no per-group apply).
                d = x[["id2", "id4", "v1", "v2"]].astype({"v1": "float64", "v2": "float64"})
                d = d.assign(xy=d.v1 * d.v2, xx=d.v1 * d.v1, yy=d.v2 * d.v2)
                s = d.groupby(["id2", "id4"]).agg(n=("v1", "count"), sx=("v1", "sum"), sy=("v2", "sum"),
                                                  sxy=("xy", "sum"), sxx=("xx", "sum"), syy=("yy", "sum"))
                cov = s.n * s.sxy - s.sx * s.sy
                var = (s.n * s.sxx - s.sx * s.sx) * (s.n * s.syy - s.sy * s.sy)
                res = (cov * cov / var).to_frame("r2").reset_index()
            else:
                named = {f"{c}_{f}": (c, self.AGG[f]) for c, fs in g["aggs"].items() for f in fs}
                res = x.groupby(g["by"], dropna=True, observed=True).agg(**named).reset_index()
                if g.get("range"):
                    res = res.assign(range_v1_v2=res.v1_max - res.v2_min)[["id3", "range_v1_v2"]]
        res.to_parquet(out, write_index=False)


class DaftEngine:
    """Daft, a distributed dataframe engine in Rust, on its native runner (all cores)."""

    def __init__(self, cap=None):
        import daft
        self.daft = daft

    # Daft's SQL has no corr: r² from per-group moment sums, as Dask's q9.
    R2 = ("SELECT id2, id4, (n * sxy - sx * sy) * (n * sxy - sx * sy) / ((n * sxx - sx * sx) * (n * syy - sy * sy)) "
          "AS r2 FROM (SELECT id2, id4, CAST(count(*) AS DOUBLE) AS n, sum(a) AS sx, sum(b) AS sy, sum(a * b) AS sxy, "
          "sum(a * a) AS sxx, sum(b * b) AS syy FROM (SELECT id2, id4, CAST(v1 AS DOUBLE) AS a, CAST(v2 AS DOUBLE) AS b "
          "FROM x WHERE v1 IS NOT NULL AND v2 IS NOT NULL) AS d GROUP BY id2, id4) AS s")

    def run(self, kind, q, inputs, out):
        frames = {t: self.daft.read_parquet(inputs[t]) for t in question_tables(kind, q)}
        if kind == "groupby" and GROUPBY[q].get("special") == "r2":
            sql = self.R2
        else:
            sql = question_sql(kind, q, lambda t: t, lambda t: parquet_columns(inputs[t]))
        self.daft.sql(sql, **frames).write_parquet(out)


class SailEngine:
    """Sail, a Spark-compatible engine in Rust (on DataFusion), through Spark Connect: its server
    runs in this worker process, started before the clock, with a PySpark client."""

    def __init__(self, cap=None):
        from pysail.spark import SparkConnectServer
        from pyspark.sql import SparkSession
        self.server = SparkConnectServer(ip="127.0.0.1", port=0)
        self.server.start(background=True)
        _, port = self.server.listening_address
        self.spark = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").getOrCreate()

    def run(self, kind, q, inputs, out):
        for t in question_tables(kind, q):
            self.spark.read.parquet(inputs[t]).createOrReplaceTempView(t)
        sql = question_sql(kind, q, lambda t: t, lambda t: parquet_columns(inputs[t]))
        self.spark.sql(sql).write.mode("overwrite").parquet(out)

    def close(self):
        # The client's session first: once the server is gone, the client would retry its
        # release for minutes before the worker process could exit.
        self.spark.stop()
        self.server.stop()


# ---------------------------------------------------------------------------------------------
# Answer checks
# ---------------------------------------------------------------------------------------------

def summarize(engine, out):
    """{rows, columns, sums: {numeric column: sum}} of a result."""
    import polars as pl
    files, problem = output_files(engine, out)
    if files is None:
        return {"error": problem}
    if not files:
        return {"error": "no result files"}
    df = pl.read_parquet(files)
    sums = {}
    for c, t in df.schema.items():
        if t.is_numeric():
            col = df[c].cast(pl.Float64)
            sums[c] = float(col.fill_nan(None).sum())
    s = {"rows": df.height, "columns": df.columns, "sums": sums}
    if engine == "kask":
        try:
            m = json.load(open(os.path.join(out, "_SUCCESS")))
            if m.get("rows") is not None and m["rows"] != df.height:
                problem = (problem + "; " if problem else "") + f"manifest says {m['rows']} rows, files hold {df.height}"
        except (ValueError, OSError):
            pass
    if problem:
        s["problem"] = problem
    return s


def compare(a, b):
    """Differences between two summaries, [] when they agree."""
    diffs = []
    if a["rows"] != b["rows"]:
        diffs.append(f"rows {a['rows']} vs {b['rows']}")
    ka, kb = set(a["sums"]), set(b["sums"])
    if ka != kb:
        if ka - kb:
            diffs.append(f"extra numeric columns {sorted(ka - kb)}")
        if kb - ka:
            diffs.append(f"missing numeric columns {sorted(kb - ka)}")
    for c in sorted(ka & kb):
        x, y = a["sums"][c], b["sums"][c]
        tol = LOOSE_TOL if LOOSE.search(c) else TOL
        if not (abs(x - y) <= tol * max(abs(x), abs(y)) + 1e-9):
            diffs.append(f"sum({c}) {x:.10g} vs {y:.10g}")
    return diffs


# Which engine is trusted most when engines disagree and the counts of agreement tie.
TRUST = ["duckdb", "polars", "dask", "daft", "sail", "kask"]


def check_answers(summaries):
    """summaries: {engine: summary}. Returns {engine: {"status": ok|mismatch|error|unchecked,
    "detail": str, "reference": engine}}: each engine is compared with the engine that agrees
    with the most others (ties: TRUST order)."""
    good = {e: s for e, s in summaries.items() if "error" not in s}
    res = {}
    for e, s in summaries.items():
        if "error" in s:
            res[e] = {"status": "error", "detail": s["error"]}
    if len(good) < 2:
        for e in good:
            res[e] = {"status": "unchecked", "detail": "no other engine to compare with"}
            if good[e].get("problem"):
                res[e] = {"status": "mismatch", "detail": good[e]["problem"]}
        return res
    agree = {e: sum(1 for f in good if f != e and not compare(good[e], good[f])) for e in good}
    ref = max(good, key=lambda e: (agree[e], -TRUST.index(e)))
    for e, s in good.items():
        d = [] if e == ref else compare(s, good[ref])
        if s.get("problem"):
            d.append(s["problem"])
        res[e] = {"status": "mismatch" if d else "ok", "detail": "; ".join(d), "reference": ref}
    if agree[ref] == 0 and len(good) >= 3:
        for e in good:
            res[e]["status"] = "mismatch"
            res[e]["detail"] = (res[e]["detail"] + "; " if res[e]["detail"] else "") + "no two engines agree"
    return res


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def fmt_cell(r, runs):
    if r is None:
        return "—"
    if r.get("na"):
        return "n/a"
    cells = []
    for t, e in zip(r["times"], r["errors"]):
        cells.append(f"{t:.3f}" if t is not None else ("timeout" if e == "timeout" else "error"))
    s = " / ".join(cells)
    if r.get("check", {}).get("status") == "mismatch" or (
            r.get("check", {}).get("status") == "error" and best(r["times"]) is not None):
        s += " ✗"
    return s


def build_report(meta, rows, engines):
    """Markdown table and summary. rows: [{kind, q, title, engines: {engine: result}}]."""
    lines = []
    lines.append(f"## db-benchmark: {meta['rows_sci']} rows, {meta['runs']} runs, {meta['machine']}")
    lines.append("")
    lines.append("Seconds per run (" + " / ".join(f"run{i + 1}" for i in range(meta["runs"])) +
                 "), end to end: read Parquet, compute, write Parquet. Ratios use each engine's best run; "
                 "✓ marks a goal met (kask/polars ≤ 1.5, kask/dask ≤ 0.33). "
                 "✗ after a time: its answer disagrees with the other engines (see Answers).")
    lines.append("")
    head = ["question"] + engines + ["kask/polars", "kask/dask", "answers"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(engines) + 2) + ["---"]) + "|")
    goals = {"polars": 0, "dask": 0}
    kask_na, kask_wrong, kask_failed, n = [], [], [], 0
    for row in rows:
        n += 1
        label = f"{row['kind']} {row['q']}"
        res = row["engines"]
        cells = [label] + [fmt_cell(res.get(e), meta["runs"]) for e in engines]
        k = res.get("kask")
        kbest = best(k["times"]) if k and not k.get("na") else None
        kstatus = k.get("check", {}).get("status") if k else None
        kok = k is not None and not k.get("na") and kstatus in ("ok", "unchecked")
        for other, limit in (("polars", 1.5), ("dask", 1 / 3)):
            o = res.get(other)
            obest = best(o["times"]) if o else None
            if kbest is None or obest is None:
                cells.append("n/a" if k and k.get("na") else "—")
                continue
            ratio = kbest / obest
            met = ratio <= limit + 1e-12 and kok
            if met:
                goals[other] += 1
            cells.append(f"{ratio:.2f} {'✓' if met else '✗'}")
        if k is not None and k.get("na"):
            kask_na.append(label)
        elif k is not None and kbest is None:
            kask_failed.append(label)
        elif k is not None and kstatus in ("mismatch", "error"):
            kask_wrong.append(label)
        notes = []
        for e in engines:
            c = res.get(e, {}).get("check") if res.get(e) else None
            if not c:
                continue
            if c["status"] == "mismatch":
                notes.append(f"**MISMATCH {e}**: {c['detail']} (vs {c.get('reference', '?')})")
            elif c["status"] == "error":
                notes.append(f"**ERROR {e}**: {c['detail']}")
        checked = [e for e in engines if res.get(e, {}) and res[e].get("check", {}).get("status") == "ok"]
        if not notes:
            notes.append(f"ok ({len(checked)} agree)" if len(checked) >= 2 else "unchecked")
        cells.append("; ".join(notes).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if "kask" in engines:
        extra = []
        if kask_na:
            extra.append(f"kask n/a: {', '.join(kask_na)}")
        if kask_wrong:
            extra.append(f"kask wrong answer: {', '.join(kask_wrong)}")
        if kask_failed:
            extra.append(f"kask failed: {', '.join(kask_failed)}")
        tail = f" ({'; '.join(extra)})" if extra else ""
        summary = (f"**Goal** (every question): within 1.5× of Polars: **{goals['polars']}/{n}**"
                   + ("" if "polars" in engines else " (polars not run)")
                   + f"; ≥3× faster than Dask: **{goals['dask']}/{n}**"
                   + ("" if "dask" in engines else " (dask not run)") + tail + ".")
    else:
        summary = "**Goal**: not measured (kask was not among the engines)."
    lines.append(summary)
    lines.append("")
    kv = f"{meta['kask_version']} ({meta['kask']}), " if meta.get("kask_version") else ""
    lines.append("Versions: " + kv + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) +
                 f". Dask: dask.dataframe, {meta['dask_scheduler']} scheduler. "
                 f"Data: {', '.join(meta['data'].values())} ({meta['partitions']} partitions).")
    if meta.get("warnings"):
        lines.append("")
        for w in meta["warnings"]:
            lines.append(f"Warning: {w}")
    return "\n".join(lines) + "\n", {"polars_goal_met": goals["polars"], "dask_goal_met": goals["dask"],
                                     "questions": n, "kask_na": kask_na, "kask_wrong": kask_wrong,
                                     "kask_failed": kask_failed}


def cap_report(meta, rows, engines):
    """Under a memory cap: which engines finished each question, their peak memory, and Kask's
    time against the fastest engine that finished (goal: Kask finishes all, within 1.5x)."""
    cap = meta["memory_cap"]
    lines = ["", f"### Under a {cap / 2 ** 30:.2f} GiB memory cap (a cgroup, each engine told its limit)", "",
             "Best seconds, or ✗ for not finished; the cgroup's peak memory in GiB after `/`.", "",
             "| question | " + " | ".join(engines) + " | kask/fastest |",
             "|---|" + "---:|" * (len(engines) + 1)]
    met, finished = 0, 0
    for row in rows:
        res, cells, bests = row["engines"], [f"{row['kind']} {row['q']}"], {}
        for e in engines:
            r = res.get(e) or {}
            b = best(r.get("times") or [])
            ok = b is not None and r.get("check", {}).get("status") in ("ok", "unchecked", None)
            peak = r.get("peak_bytes")
            mem = f" / {peak / 2 ** 30:.2f}" if peak else ""
            cells.append(("n/a" if r.get("na") else "✗") + mem if not ok else f"{b:.2f}{mem}")
            if ok:
                bests[e] = b
        k = bests.get("kask")
        if k is not None:
            finished += 1
        fastest = min(bests.values()) if bests else None
        if k is None or fastest is None:
            cells.append("—")
        else:
            ratio = k / fastest
            met += ratio <= 1.5 + 1e-12
            cells.append(f"{ratio:.2f} {'✓' if ratio <= 1.5 + 1e-12 else '✗'}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Kask finished {finished} of {len(rows)} questions under the cap; within 1.5x of the fastest "
              f"finisher on {met}."]
    return "\n".join(lines) + "\n", {"kask_finished": finished, "within_1_5x_of_fastest": met}


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kask", default=default_kask(),
                    help="the kask binary (default: ${CARGO_TARGET_DIR:-$HOME/.cache/kask/target}/release/kask)")
    ap.add_argument("--kask-arg", action="append", default=[], metavar="ARG",
                    help="an extra argument for `kask run` (repeatable), e.g. --kask-arg=--parallelism=2")
    ap.add_argument("--data", default=os.path.join(CACHE, "bench-data"),
                    help="data directory (default: ${KASK_CACHE:-$HOME/.cache/kask}/bench-data)")
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows of the groupby table and of x (default 1e7)")
    ap.add_argument("--groups", type=int, default=100, help="K, groups of id1/id2/id4/id5 (default 100)")
    ap.add_argument("--partitions", type=int, default=8, help="files per generated table (default 8)")
    ap.add_argument("--gen", choices=["kask", "python"], default="kask",
                    help="what makes missing data: `kask gen` (default) or bench/pygen.py (same layout)")
    ap.add_argument("--regen", action="store_true", help="remake the data even if it is there")
    ap.add_argument("--questions", nargs="+", metavar="KIND[:Q,...]",
                    help="e.g. `groupby:q1,q2 join:q1`, `groupby`, `all` (default: all)")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated (default {','.join(ENGINES)})")
    ap.add_argument("--runs", type=int, default=2, help="runs per question and engine (default 2)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run before it counts as failed (default 1800)")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    ap.add_argument("--markdown", metavar="PATH", help="also write the table here")
    ap.add_argument("--workdir", help="where jobs and results go (default: a temporary directory, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--memory-cap", metavar="SIZE",
                    help="run every engine in a cgroup with this memory limit (e.g. 2Gi), each told its limit "
                         "(kask --memory, DuckDB memory_limit, Polars' streaming engine, a Dask worker's "
                         "memory_limit); a run killed at the cap counts as not finished. Default questions "
                         "then: groupby, join and sort")
    a = ap.parse_args(argv)
    a.cap = None
    if a.memory_cap:
        try:
            a.memory_cap_bytes = parse_size(a.memory_cap)
        except ValueError as e:
            ap.error(f"--memory-cap: {e}")
    a.engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    for e in a.engines:
        if e not in ENGINES:
            ap.error(f"--engines: unknown engine {e!r} (known: {', '.join(ENGINES)})")
    default = all_questions() + [("sort", q) for q in SORT] if a.memory_cap else None
    a.questions = parse_questions(a.questions, default)
    a.data = os.path.abspath(a.data)
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    return a


def main(argv):
    a = parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if "kask" in a.engines or a.gen == "kask":
        if not os.path.exists(a.kask):
            fallback = os.path.join(REPO, "target", "release", "kask")
            if os.path.exists(fallback):
                a.kask = fallback
            else:
                need = "kask" if "kask" in a.engines else "--gen kask"
                raise SystemExit(f"{need} needs the kask binary, not found at {a.kask} (nor {fallback}); build it "
                                 f"with `cargo build --release --bin kask`, or pass --kask PATH"
                                 + ("" if "kask" in a.engines else ", or use --gen python"))
        a.kask = os.path.abspath(a.kask)

    warnings = []
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        warnings.append(f"load average {load1:.2f} at the start: something else is using the CPU, so timings are noisy")
        log("warning: " + warnings[-1])

    kinds = sorted({data_kind(k) for k, _ in a.questions}, key=["groupby", "join"].index)
    data = {k: ensure_data(k, a, log) for k in kinds}
    dirs = {k: data[data_kind(k)] for k, _ in a.questions}
    if a.memory_cap:
        a.cap = MemoryCap(a.memory_cap_bytes, f"kask-bench-{os.getpid()}")
    log(f"reading the input once ({preread_parquet(data.values()) / 2 ** 20:.0f} MiB) so that every engine starts warm")

    import dask
    meta = {
        "rows": a.rows, "rows_sci": sci(a.rows), "groups": a.groups, "partitions": a.partitions, "runs": a.runs,
        "memory_cap": a.memory_cap_bytes if a.memory_cap else None,
        "data": {k: d for k, d in data.items()}, "machine": machine(), "versions": package_versions(["polars", "duckdb", "dask", "daft", "pysail", "pyspark-client", "pandas", "pyarrow"]),
        "python": platform.python_version(), "engines": a.engines,
        "dask_scheduler": ("distributed LocalCluster: one worker process, every core, memory_limit 0.9 x the cap"
                           if a.memory_cap else
                           dask.config.get("scheduler", None) or "default threaded (no distributed Client)"),
        "kask": a.kask if "kask" in a.engines else None, "kask_args": a.kask_arg,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_average_at_start": load1,
    }
    if "kask" in a.engines:
        try:
            meta["kask_version"] = subprocess.run([a.kask, "--version"], capture_output=True, text=True,
                                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            meta["kask_version"] = None

    workdir = a.workdir or tempfile.mkdtemp(prefix="kask-bench-")
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    log(f"work directory: {workdir}")
    rows = []
    try:
        for kind, q in a.questions:
            title = TABLES[kind][q]["title"]
            log(f"{kind} {q}: {title}")
            row = {"kind": kind, "q": q, "title": title, "engines": {}}
            for e in a.engines:
                if e == "kask":
                    got = run_kask(a, kind, q, dirs[kind], workdir, log)
                    if got is None:
                        row["engines"][e] = {"na": True, "times": [], "errors": []}
                        log(f"  {kind} {q:<4} kask    n/a (not expressible in a kask pipeline yet)")
                        continue
                else:
                    got = run_python_engine(a, e, kind, q, dirs[kind], workdir, log)
                times, errors, out, extra = got
                row["engines"][e] = {"times": times, "errors": errors, "best": best(times), "out": out, **extra}
            # Check the answers of the last successful run of every engine.
            summaries = {}
            for e, r in row["engines"].items():
                if r.get("na"):
                    continue
                if best(r["times"]) is None:
                    summaries[e] = {"error": "no successful run: " + (next((x for x in r["errors"] if x), "") or "")}
                    continue
                try:
                    summaries[e] = summarize(e, r["out"])
                except Exception as ex:  # noqa: BLE001 - an unreadable result is a finding
                    summaries[e] = {"error": f"cannot read the result: {type(ex).__name__}: {ex}"[:300]}
            checks = check_answers(summaries)
            for e, c in checks.items():
                row["engines"][e]["check"] = c
                row["engines"][e]["answer"] = summaries[e]
                if c["status"] == "mismatch":
                    log(f"  {kind} {q:<4} {e:<7} ANSWER MISMATCH: {c['detail']}")
            if not (a.keep or a.workdir):
                # Checked: at 1e8 rows a join's results take gigabytes per engine, and the
                # next question needs the disk for its shuffles and spills.
                for r in row["engines"].values():
                    if r.get("out"):
                        shutil.rmtree(r["out"], ignore_errors=True)
            rows.append(row)
    finally:
        if a.cap:
            a.cap.close()
        kept = a.keep or a.workdir
        if kept:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    meta["warnings"] = warnings
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    table, summary = build_report(meta, rows, a.engines)
    if a.cap:
        capped, summary["capped"] = cap_report(meta, rows, a.engines)
        table += capped
    print(table, end="")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table)
    if a.json:
        if not kept:
            for row in rows:
                for r in row["engines"].values():
                    r.pop("out", None)
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "summary": summary, "results": rows}, f, indent=2)
            f.write("\n")
        log(f"wrote {a.json}")
    bad = [f"{r['kind']} {r['q']} {e}" for r in rows for e, x in r["engines"].items()
           if x.get("check", {}).get("status") == "mismatch"]
    return 2 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_worker":
        worker_main(sys.argv[2])
    else:
        sys.exit(main(sys.argv[1:]))
