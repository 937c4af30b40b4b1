#!/usr/bin/env python3
"""TPC-H: the 22 queries on Kask, DuckDB, Polars (SQLContext) and DataFusion (Python bindings).

Run through bench/tpch/run, which provides the pinned engines in a venv and the data (one
Parquet file per table, from tests/sql/tpchgen). Every query runs --runs times per engine, end to
end (read the Parquet tables, run the query, write the result as Parquet), query by query so that
all engines see the same machine state. The answers are checked against DuckDB's (row count and
the sum of every numeric result column), then a Markdown table of each engine's best time and
Kask's ratios is printed, and the figures are written as JSON with --json.

How each engine is timed:
  kask        `kask run JOB.json` as a subprocess, wall clock: process start to exit.
  duckdb      a fresh in-memory connection, a view per table over read_parquet(...), then
              COPY (query) TO '...' (FORMAT parquet).
  polars      a fresh pl.SQLContext with every table registered as pl.scan_parquet(...),
              execute(query) (lazy), collect(), write_parquet.
  datafusion  a fresh SessionContext, register_parquet per table, sql(query), write_parquet.
Each Python engine runs each query in a fresh worker process; the import happens before the clock
starts, so the Python engines' times exclude interpreter start-up and imports, while Kask's include
its process start-up.

The goal: Kask's total within 1.5x of DuckDB's total, and no query more than 3x slower than the
fastest engine for that query (with an answer that agrees with DuckDB's).
"""

import argparse
import glob
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import (best, default_kask, machine, output_files, package_versions,  # noqa: E402
                      preread_parquet, run_timed)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
QUERY_DIR = os.path.join(REPO, "tests", "sql", "tpch")
ENGINES = ["kask", "duckdb", "polars", "datafusion"]
PY_ENGINES = ["duckdb", "polars", "datafusion"]
TABLES = ["lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region"]
ALL_QUERIES = [f"q{i:02d}" for i in range(1, 23)]

# The goal.
TOTAL_LIMIT = 1.5  # Kask's total / DuckDB's total
QUERY_LIMIT = 3.0  # Kask / the fastest engine, per query

# Answer check: relative tolerance of a column's sum. avg columns are looser: an avg of a decimal
# is a decimal rounded to 6 places in DataFusion (so Kask), a double in DuckDB and Polars.
TOL, LOOSE_TOL = 1e-6, 1e-4
LOOSE = re.compile(r"^avg", re.IGNORECASE)

# The reference for the answer check: DuckDB, or the first of these that has an answer.
REFERENCE_ORDER = ["duckdb", "datafusion", "polars", "kask"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Queries and data
# ---------------------------------------------------------------------------------------------

def parse_queries(spec):
    """`all`, `1,3,q05`, `1-6` (and lists of those, comma or space separated) -> ["q01", ...]."""
    if not spec or spec.strip() in ("", "all"):
        return list(ALL_QUERIES)
    out = []
    for part in re.split(r"[,\s]+", spec.strip()):
        if not part:
            continue
        if part == "all":
            out += ALL_QUERIES
            continue
        m = re.fullmatch(r"q?(\d+)(?:-q?(\d+))?", part, re.IGNORECASE)
        if not m:
            raise SystemExit(f"--queries: cannot read {part!r} (e.g. all, 1,3,q05, 1-6)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        for i in range(lo, hi + 1):
            if not 1 <= i <= 22:
                raise SystemExit(f"--queries: TPC-H has queries 1 to 22, not {i}")
            out.append(f"q{i:02d}")
    seen = set()
    return [q for q in out if not (q in seen or seen.add(q))]


def query_text(q, scale):
    """The query's text as the SQL tests run it at SF1, with Q11's FRACTION scaled as the TPC-H
    specification says (0.0001 / SF): kept at SF1's value, Q11 finds no rows at SF10."""
    with open(os.path.join(QUERY_DIR, f"{q}.sql")) as f:
        text = f.read().strip().rstrip(";")
    if q == "q11":
        fraction = f"{0.0001 / float(scale):.10f}".rstrip("0")
        scaled = text.replace("* 0.0001", f"* {fraction}")
        if scaled == text:
            raise SystemExit("q11.sql: expected its FRACTION written as '* 0.0001'")
        text = scaled
    return text


def table_files(data):
    """{table: (relative path or glob inside data, absolute path or glob)} as tpchgen-cli laid
    the tables out: one file per table, or a directory of part files."""
    tables = {}
    for t in TABLES:
        if os.path.isfile(os.path.join(data, f"{t}.parquet")):
            rel = f"{t}.parquet"
        elif glob.glob(os.path.join(data, t, "*.parquet")):
            rel = f"{t}/*.parquet"
        else:
            raise SystemExit(f"no table {t} in {data} (expected {t}.parquet or {t}/*.parquet)")
        tables[t] = (rel, os.path.join(data, rel))
    return tables


class OtherCpu:
    """The CPU time other processes than this runner and its children used, from the machine's
    busy time (/proc/stat) less our own (getrusage): how much the machine was shared while a
    query ran, in cores (CPU seconds per wall second). None where /proc/stat is missing."""

    @staticmethod
    def machine_busy():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal (guest is counted in user already)
        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def ours():
        t = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            r = resource.getrusage(who)
            t += r.ru_utime + r.ru_stime
        return t

    def __init__(self):
        self.t0, self.busy0, self.ours0 = time.monotonic(), self.machine_busy(), self.ours()

    def cores(self):
        busy = self.machine_busy()
        wall = time.monotonic() - self.t0
        if busy is None or self.busy0 is None or wall <= 0:
            return None
        return max(0.0, (busy - self.busy0) - (self.ours() - self.ours0)) / wall


# ---------------------------------------------------------------------------------------------
# Kask: a job file per query, run as a subprocess.
# ---------------------------------------------------------------------------------------------

def kask_job(a, q, storage, link_name, tables):
    return {
        "apiVersion": "kask.dev/v1alpha1",
        "kind": "DaskJob",
        "metadata": {"name": f"tpch-{q}"},
        "spec": {
            "storage": {"url": f"file://{storage}"},
            "sql": {"tables": {t: {"path": f"{link_name}/{rel}"} for t, (rel, _) in tables.items()},
                    "query": query_text(q, a.scale)},
            "workers": a.kask_workers,
            "output": {"path": f"out/{q}", "format": "parquet", "mode": "overwrite"},
        },
    }


def run_kask(a, q, tables, workdir):
    """Times `kask run` --runs times. Returns {times, errors, out, job, kask_reported_seconds}."""
    storage = os.path.join(workdir, "kask")
    os.makedirs(storage, exist_ok=True)
    # The job's storage root holds a symlink to the data and the outputs (out/qNN), so the
    # output is never inside a table's path and the data directory stays untouched.
    link_name = os.path.basename(os.path.normpath(a.data)) or "data"
    link = os.path.join(storage, link_name)
    if not os.path.islink(link):
        os.symlink(a.data, link)
    job = kask_job(a, q, storage, link_name, tables)
    path = os.path.join(storage, f"{q}.json")
    with open(path, "w") as f:
        json.dump(job, f, indent=1)
    out = os.path.join(storage, "out", q)
    times, errors, reported, stages = [], [], [], None
    for r in range(1, a.runs + 1):
        if any(e == "timeout" for e in errors):
            # A run that timed out is not repeated: the next would most likely time out too.
            times.append(None)
            errors.append("skipped after a timeout")
            reported.append(None)
            continue
        logf = os.path.join(storage, f"{q}.run{r}.log")
        cmd = [a.kask, "run", path] + a.kask_arg
        with open(logf, "w") as lf:
            rc, dt = run_timed(cmd, a.timeout, stdout=lf, stderr=subprocess.STDOUT)
        with open(logf, errors="replace") as lf:
            text = lf.read().strip()
        if rc == 0:
            times.append(dt)
            errors.append(None)
            # Kask's own summary: `wrote N rows to URL (F files) in S s: X stages, Y tasks`.
            m = None
            for line in text.splitlines():
                m = re.match(r"wrote \d+ rows .* in ([0-9.]+)s(?:: (\d+) stages?, (\d+) tasks?)?", line) or m
            reported.append(float(m.group(1)) if m else None)
            if m and m.group(2):
                stages = [int(m.group(2)), int(m.group(3))]
            log(f"  {q} kask       run{r} {dt:8.3f}s")
        else:
            times.append(None)
            if rc == "timeout":
                msg = "timeout"
            else:
                msg = f"exit {rc}: " + " | ".join(text.splitlines()[-3:])[-500:]
            errors.append(msg)
            reported.append(None)
            log(f"  {q} kask       run{r} FAILED {msg} (log: {logf})")
    return {"times": times, "errors": errors, "out": out, "job": job, "kask_reported_seconds": reported,
            "kask_stages_tasks": stages}


# ---------------------------------------------------------------------------------------------
# Python engines: a worker process per (query, engine), reporting each run on its stdout.
# ---------------------------------------------------------------------------------------------

def run_python_engine(a, engine, q, tables, workdir):
    """Runs a worker for one query on one engine. Returns {times, errors, out}."""
    outroot = os.path.join(workdir, engine, q)
    os.makedirs(outroot, exist_ok=True)
    spec = {"engine": engine, "q": q, "query": query_text(q, a.scale), "runs": a.runs, "outroot": outroot,
            "tables": {t: absolute for t, (_, absolute) in tables.items()}}
    spec_path = os.path.join(outroot, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    logf = os.path.join(outroot, "worker.log")
    got = {}
    timed_out = False
    with open(logf, "w") as lf:
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_worker", spec_path],
                             stdout=subprocess.PIPE, stderr=lf, start_new_session=True, text=True)
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        # Each run gets --timeout seconds; the first also the import (generously).
        deadline = time.monotonic() + a.timeout + 60
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                os.killpg(p.pid, signal.SIGKILL)
                break
            if not sel.select(timeout=left):
                continue
            line = p.stdout.readline()
            if not line:
                break  # the worker is done (or died)
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            got[rec["run"]] = rec
            deadline = time.monotonic() + a.timeout
        sel.close()
        p.stdout.close()
        p.wait()
    times, errors, out = [], [], None
    for r in range(1, a.runs + 1):
        rec = got.get(r)
        if rec and rec.get("seconds") is not None:
            times.append(rec["seconds"])
            errors.append(None)
            out = rec["out"]
            log(f"  {q} {engine:<10} run{r} {rec['seconds']:8.3f}s")
            continue
        times.append(None)
        if rec:
            msg = rec["error"]
        elif timed_out:
            msg = "timeout" if not any(e == "timeout" for e in errors) else "skipped after a timeout"
        elif any(e for e in errors):
            msg = "skipped after an error"
        else:
            with open(logf, errors="replace") as lf:
                tail = lf.read().strip().splitlines()[-3:]
            msg = f"worker exit {p.returncode}: " + " | ".join(tail)[-500:]
        errors.append(msg)
        log(f"  {q} {engine:<10} run{r} FAILED {msg} (log: {logf})")
    return {"times": times, "errors": errors, "out": out}


class DuckDBEngine:
    def __init__(self):
        import duckdb
        self.duckdb = duckdb

    @staticmethod
    def lit(s):
        return "'" + s.replace("'", "''") + "'"

    def run(self, query, tables, out):
        con = self.duckdb.connect()
        try:
            for t, path in tables.items():
                con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet({self.lit(path)})")
            con.execute(f"COPY ({query}) TO {self.lit(out)} (FORMAT parquet)")
        finally:
            con.close()


class PolarsEngine:
    def __init__(self):
        import polars as pl
        self.pl = pl

    def run(self, query, tables, out):
        pl = self.pl
        ctx = pl.SQLContext({t: pl.scan_parquet(path) for t, path in tables.items()})
        ctx.execute(query, eager=False).collect().write_parquet(out)


class DataFusionEngine:
    def __init__(self):
        import datafusion
        self.datafusion = datafusion

    def run(self, query, tables, out):
        ctx = self.datafusion.SessionContext()
        for t, path in tables.items():
            if any(ch in path for ch in "*?["):
                # A directory of part files: DataFusion lists the directory itself.
                path = os.path.dirname(path) + "/"
            ctx.register_parquet(t, path)
        # A path ending in .parquet is written as that one file.
        ctx.sql(query).write_parquet(out)


def worker_main(spec_path):
    """Runs one query on one engine --runs times; prints one JSON line per run on stdout."""
    with open(spec_path) as f:
        spec = json.load(f)
    report = sys.stdout
    sys.stdout = sys.stderr  # anything the engines print goes to the log
    impl = {"duckdb": DuckDBEngine, "polars": PolarsEngine, "datafusion": DataFusionEngine}[spec["engine"]]()
    for r in range(1, spec["runs"] + 1):
        rundir = os.path.join(spec["outroot"], f"run{r}")
        shutil.rmtree(rundir, ignore_errors=True)
        os.makedirs(rundir)
        out = os.path.join(rundir, "result.parquet")
        rec = {"run": r, "out": rundir}
        failed = False
        try:
            t0 = time.perf_counter()
            impl.run(spec["query"], spec["tables"], out)
            rec["seconds"] = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - reported in the table
            traceback.print_exc()
            failed = True
            text = str(e).strip()
            rec["seconds"] = None
            rec["error"] = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"[:400]
        report.write(json.dumps(rec) + "\n")
        report.flush()
        if failed:
            break  # the same query fails the same way again
        # Only the last run's result is checked; the earlier ones need not take up the disk.
        if r > 1:
            shutil.rmtree(os.path.join(spec["outroot"], f"run{r - 1}"), ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Answer checks
# ---------------------------------------------------------------------------------------------

def summarize(engine, out):
    """{rows, columns, numeric: [[column, sum], ...]} of a result (nulls and NaN skipped)."""
    import polars as pl
    files, problem = output_files(engine, out)
    if files is None:
        return {"error": problem}
    if not files:
        return {"error": "no result files"}
    df = pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed") if len(files) > 1 \
        else pl.read_parquet(files[0])
    numeric = []
    for c, t in df.schema.items():
        if t.is_numeric():
            s = df[c].cast(pl.Float64)
            numeric.append([c, float(s.fill_nan(None).sum() or 0.0)])
    summary = {"rows": df.height, "columns": df.columns, "numeric": numeric}
    if engine == "kask":
        try:
            with open(os.path.join(out, "_SUCCESS")) as f:
                m = json.load(f)
            if m.get("rows") is not None and m["rows"] != df.height:
                problem = (problem + "; " if problem else "") + f"manifest says {m['rows']} rows, files hold {df.height}"
        except (ValueError, OSError):
            pass
    if problem:
        summary["problem"] = problem
    return summary


def compare(got, ref):
    """Differences of a summary from the reference's, [] when they agree. Numeric columns are
    compared by position (engines may name an expression differently), with the reference's
    names in the messages."""
    diffs = []
    if got["rows"] != ref["rows"]:
        diffs.append(f"{got['rows']} rows, reference {ref['rows']}")
    if len(got["numeric"]) != len(ref["numeric"]):
        diffs.append(f"numeric columns {[c for c, _ in got['numeric']]}, reference {[c for c, _ in ref['numeric']]}")
        return diffs
    for (_, x), (name, y) in zip(got["numeric"], ref["numeric"]):
        tol = LOOSE_TOL if LOOSE.search(name) else TOL
        if not abs(x - y) <= tol * max(abs(x), abs(y)) + 1e-9:
            diffs.append(f"sum({name}) {x:.12g}, reference {y:.12g}")
    return diffs


def check_answers(summaries):
    """summaries: {engine: summary or {"error"}} -> {engine: {status, detail, reference}} where
    status is ok, mismatch, error (no answer) or unchecked (no reference)."""
    res = {}
    good = {e: s for e, s in summaries.items() if "error" not in s}
    for e, s in summaries.items():
        if "error" in s:
            res[e] = {"status": "error", "detail": s["error"]}
    ref = next((e for e in REFERENCE_ORDER if e in good), None)
    for e, s in good.items():
        d = [] if e == ref or len(good) < 2 else compare(s, good[ref])
        if s.get("problem"):
            d.append(s["problem"])
        if d:
            res[e] = {"status": "mismatch", "detail": "; ".join(d), "reference": ref}
        elif len(good) < 2:
            res[e] = {"status": "unchecked", "detail": "no other engine to compare with"}
        else:
            res[e] = {"status": "ok", "detail": "" if e != ref else "reference", "reference": ref}
    return res


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def usable(r):
    """Whether an engine's result counts: a successful run and an answer that agrees."""
    return r is not None and best(r["times"]) is not None and r.get("check", {}).get("status") in ("ok", "unchecked")


def cell(engine, r):
    if r is None:
        return "—"
    b = best(r["times"])
    if b is None:
        err = next((e for e in r["errors"] if e), "")
        if engine == "polars" and err != "timeout":
            return "n/a"
        return "timeout" if err == "timeout" else "error"
    c = r.get("check", {})
    mark = {"ok": "✓", "mismatch": "✗", "error": "✗", "unchecked": "?"}.get(c.get("status"), "?")
    if c.get("status") == "ok" and c.get("detail") == "reference":
        mark = "(ref)"
    return f"{b:.3f} {mark}"


def fmt_ratio(x):
    return "—" if x is None else f"{x:.2f}"


def analyse(rows, engines):
    """Adds each query's ratios and goal to its row; returns each engine's totals: the sum of its
    best runs, the queries it failed (no successful run) and those it answered wrongly."""
    totals = {e: {"seconds": 0.0, "failed": [], "wrong": []} for e in engines}
    for row in rows:
        res = row["engines"]
        for e in engines:
            r = res.get(e)
            b = best(r["times"]) if r else None
            if b is None:
                totals[e]["failed"].append(row["q"])
                continue
            totals[e]["seconds"] += b
            if not usable(r):
                totals[e]["wrong"].append(row["q"])
        times = {e: best(r["times"]) for e, r in res.items() if usable(r)}
        fastest = min(times, key=times.get) if times else None
        k = res.get("kask")
        kb = times.get("kask")
        d = times.get("duckdb")
        row["fastest"] = fastest
        row["kask_vs_duckdb"] = kb / d if kb is not None and d else None
        row["kask_vs_fastest"] = kb / times[fastest] if kb is not None and fastest else None
        row["goal_met"] = row["kask_vs_fastest"] is not None and row["kask_vs_fastest"] <= QUERY_LIMIT + 1e-12
        row["kask_status"] = ("not run" if k is None else "failed" if best(k["times"]) is None
                              else "wrong" if not usable(k) else "ok")
    return totals


def build_report(meta, rows, engines):
    totals = analyse(rows, engines)
    lines = []
    lines.append(f"## TPC-H SF{meta['scale']}: best of {meta['runs']} run{'s' if meta['runs'] > 1 else ''}, "
                 f"{meta['machine']}")
    lines.append("")
    lines.append("Seconds, best run, end to end: read the Parquet tables, run the query, write the result as "
                 "Parquet. After a time: ✓ the answer agrees with the reference's (DuckDB's: row count and the "
                 "sum of every numeric column), ✗ it does not (see answers), (ref) the reference. kask/fastest "
                 f"compares with the fastest engine whose answer agrees; goal: ≤ {QUERY_LIMIT:g}. other CPU: the cores "
                 "that processes other than the benchmark's used on average while the query ran (the machine was "
                 "shared; 0 is a quiet machine).")
    lines.append("")
    head = ["query"] + engines
    if "kask" in engines:
        head += ["kask/duckdb", "kask/fastest", "goal"]
    head += ["other CPU", "answers"]
    lines.append("| " + " | ".join(head) + " |")
    aligns = ["---"] + ["---:"] * len(engines) + (["---:", "---:", "---"] if "kask" in engines else []) + ["---:", "---"]
    lines.append("|" + "|".join(aligns) + "|")
    for row in rows:
        res = row["engines"]
        cells = [row["q"]] + [cell(e, res.get(e)) for e in engines]
        if "kask" in engines:
            cells.append(fmt_ratio(row["kask_vs_duckdb"]))
            cells.append(fmt_ratio(row["kask_vs_fastest"])
                         + (f" ({row['fastest']})" if row["kask_vs_fastest"] is not None else ""))
            cells.append("✓" if row["goal_met"] else "✗")
        notes = []
        for e in engines:
            r = res.get(e)
            if r is None:
                continue
            c = r.get("check", {})
            if c.get("status") == "mismatch":
                notes.append(f"**MISMATCH {e}**: {c['detail']}")
            elif best(r["times"]) is None:
                err = next((x for x in r["errors"] if x), "")
                notes.append(f"{e} {'n/a' if e == 'polars' and err != 'timeout' else 'failed'}: {err[:200]}")
            elif c.get("status") == "error":
                notes.append(f"**{e}**: {c['detail']}")
        agree = [e for e in engines if res.get(e, {}).get("check", {}).get("status") == "ok"]
        if not notes:
            notes.append(f"ok ({len(agree)} agree)")
        oc = row.get("other_cpu_cores")
        cells.append("—" if oc is None else f"{oc:.2f}")
        cells.append("; ".join(notes).replace("|", "\\|").replace("\n", " "))
        lines.append("| " + " | ".join(cells) + " |")
    # Totals: the sum of the best runs of the queries an engine ran.
    tcells = ["**total**"]
    for e in engines:
        t = totals[e]
        tcells.append(f"**{t['seconds']:.2f}**" + (f" (+{len(t['failed'])} failed)" if t["failed"] else ""))
    kt, dt = totals.get("kask"), totals.get("duckdb")
    # Over all queries, so only when both ran them all (the summary line covers the other case).
    total_ratio = (kt["seconds"] / dt["seconds"] if kt and dt and dt["seconds"] and not kt["failed"]
                   and not dt["failed"] else None)
    total_met = False
    if "kask" in engines:
        # Kask's total counts only when it answered every query right and DuckDB ran them all.
        total_met = (total_ratio is not None and total_ratio <= TOTAL_LIMIT + 1e-12 and not kt["failed"]
                     and not kt["wrong"] and not dt["failed"])
        complete = {e: totals[e]["seconds"] for e in engines if not totals[e]["failed"] and not totals[e]["wrong"]}
        fastest_total = min(complete, key=complete.get) if complete else None
        fr = kt["seconds"] / complete[fastest_total] if fastest_total and complete[fastest_total] \
            and not kt["failed"] else None
        tcells.append(f"**{fmt_ratio(total_ratio)}**")
        tcells.append(f"**{fmt_ratio(fr)}**" + (f" ({fastest_total})" if fr is not None else ""))
        tcells.append("✓" if total_met else "✗")
    others = [r["other_cpu_cores"] for r in rows if r.get("other_cpu_cores") is not None]
    mean_other = sum(others) / len(others) if others else None
    if "kask" in engines:
        tcells.append("—" if mean_other is None else f"{mean_other:.2f} (mean)")
        tcells.append(f"goal: kask total ≤ {TOTAL_LIMIT:g}× duckdb total")
    else:
        tcells += ["—" if mean_other is None else f"{mean_other:.2f} (mean)", ""]
    lines.append("| " + " | ".join(tcells) + " |")
    lines.append("")
    summary = {"queries": len(rows)}
    if "kask" in engines:
        met = [r["q"] for r in rows if r["goal_met"]]
        missed = [r for r in rows if not r["goal_met"]]
        miss_txt = []
        for r in missed:
            if r["kask_status"] == "ok":
                miss_txt.append(f"{r['q']} {r['kask_vs_fastest']:.2f}× {r['fastest']}")
            else:
                miss_txt.append(f"{r['q']} kask {r['kask_status']}")
        if "duckdb" not in engines:
            total_txt = "not measured (duckdb not run)"
        elif kt["failed"] or kt["wrong"] or dt["failed"]:
            why = []
            if kt["failed"]:
                why.append(f"kask failed {', '.join(kt['failed'])}")
            if kt["wrong"]:
                why.append(f"kask answered {', '.join(kt['wrong'])} wrongly")
            if dt["failed"]:
                why.append(f"duckdb failed {', '.join(dt['failed'])}")
            both = [r for r in rows if best(r["engines"]["kask"]["times"]) is not None
                    and best(r["engines"]["duckdb"]["times"]) is not None]
            ks = sum(best(r["engines"]["kask"]["times"]) for r in both)
            ds = sum(best(r["engines"]["duckdb"]["times"]) for r in both)
            total_txt = (f"**not met** ({'; '.join(why)}; kask/duckdb over the {len(both)} queries both ran: "
                         f"{fmt_ratio(ks / ds if ds else None)})")
        else:
            total_txt = f"kask/duckdb **{total_ratio:.2f}** — **{'met' if total_met else 'not met'}**"
        lines.append(f"**Goal**: per query (kask ≤ {QUERY_LIMIT:g}× the fastest engine, answer agrees): "
                     f"**{len(met)}/{len(rows)}**" + (f" (missed: {'; '.join(miss_txt)})" if miss_txt else "")
                     + f". Total (kask ≤ {TOTAL_LIMIT:g}× DuckDB): {total_txt}.")
        lines.append("")
        summary.update({
            "per_query_goal_met": len(met), "per_query_goal_missed": [r["q"] for r in missed],
            "total_ratio_kask_duckdb": total_ratio, "total_goal_met": total_met,
            "kask_failed": [r["q"] for r in rows if r["kask_status"] == "failed"],
            "kask_wrong": [r["q"] for r in rows if r["kask_status"] == "wrong"],
        })
    summary["totals"] = totals
    v = meta["versions"]
    parts = []
    if meta.get("kask_version"):
        parts.append(f"{meta['kask_version']} ({meta['kask']}"
                     + (f", DataFusion {meta['kask_datafusion']} per Cargo.lock" if meta.get("kask_datafusion") else "")
                     + f", workers {meta['kask_workers']})")
    parts += [f"{k} {v[k]}" for k in v]
    lines.append("Versions: " + ", ".join(parts) + f", Python {meta['python']}. Data: {meta['data']} "
                 f"(tpchgen-cli, one Parquet file per table). Machine: {meta['machine']}, {meta['cpu']}. "
                 f"Load average {meta['load_average_at_start']:.2f} at the start, "
                 f"{meta['load_average_at_end']:.2f} at the end. {meta['started']}.")
    if meta.get("warnings"):
        lines.append("")
        for w in meta["warnings"]:
            lines.append(f"Warning: {w}")
    return "\n".join(lines) + "\n", summary


# ---------------------------------------------------------------------------------------------
# Machine and versions
# ---------------------------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def kask_datafusion():
    """The DataFusion version in the repo's Cargo.lock (what the binary was most likely built with)."""
    try:
        with open(os.path.join(REPO, "Cargo.lock")) as f:
            m = re.search(r'name = "datafusion"\nversion = "([^"]+)"', f.read())
        return m.group(1) if m else None
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/tpch/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="the directory of the TPC-H tables (bench/tpch/run passes it)")
    ap.add_argument("--scale", default="10", help="the TPC-H scale factor (default 10)")
    ap.add_argument("--queries", default="all", help="e.g. all (default), 1,3,q05, 1-6")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated (default {','.join(ENGINES)})")
    ap.add_argument("--runs", type=int, default=2, help="runs per query and engine; the best counts (default 2)")
    ap.add_argument("--kask", default=default_kask(),
                    help="the kask binary (default: ${CARGO_TARGET_DIR:-$HOME/.cache/kask/target}/release/kask)")
    ap.add_argument("--kask-arg", action="append", default=[], metavar="ARG",
                    help="an extra argument for `kask run` (repeatable), e.g. --kask-arg=--parallelism=2")
    ap.add_argument("--kask-workers", type=int, default=os.cpu_count() or 2,
                    help="spec.workers of the Kask jobs: tasks at once and shuffle partitions (default: the cores)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds per run before it counts as failed; a run that times out is not repeated "
                         "(default 600)")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    ap.add_argument("--markdown", metavar="PATH", help="also write the table here")
    ap.add_argument("--workdir", help="where jobs and results go (default: a temporary directory, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args(argv)
    a.engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    for e in a.engines:
        if e not in ENGINES:
            ap.error(f"--engines: unknown engine {e!r} (known: {', '.join(ENGINES)})")
    if not a.engines:
        ap.error("--engines: none given")
    a.queries = parse_queries(a.queries)
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    if not a.data:
        ap.error("--data DIR is needed (bench/tpch/run generates the data and passes it)")
    a.data = os.path.abspath(a.data)
    if not os.path.isdir(a.data):
        ap.error(f"--data: {a.data} is not a directory")
    return a


def main(argv):
    a = parse_args(argv)
    if "kask" in a.engines:
        if not os.path.exists(a.kask):
            raise SystemExit(f"kask binary not found at {a.kask}; build it with `cargo build --release --bin kask` "
                             "or pass --kask PATH")
        a.kask = os.path.abspath(a.kask)

    warnings = []
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        warnings.append(f"load average {load1:.2f} at the start: something else is using the CPU, so timings are noisy")
        log("warning: " + warnings[-1])

    tables = table_files(a.data)
    t0 = time.perf_counter()
    n = preread_parquet([a.data])
    log(f"read the tables once ({n / 2 ** 20:.0f} MiB in {time.perf_counter() - t0:.1f}s) so that every engine "
        "starts warm")

    meta = {
        "scale": a.scale, "runs": a.runs, "queries": a.queries, "engines": a.engines, "data": a.data,
        "machine": machine(), "cpu": cpu_model(), "kernel": platform.release(), "versions": package_versions(["duckdb", "polars", "datafusion", "pyarrow"]),
        "python": platform.python_version(), "timeout": a.timeout,
        "kask": a.kask if "kask" in a.engines else None, "kask_args": a.kask_arg,
        "kask_workers": a.kask_workers, "kask_datafusion": kask_datafusion() if "kask" in a.engines else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_average_at_start": load1,
    }
    if "kask" in a.engines:
        try:
            meta["kask_version"] = subprocess.run([a.kask, "--version"], capture_output=True, text=True,
                                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            meta["kask_version"] = None

    workdir = os.path.abspath(a.workdir or tempfile.mkdtemp(prefix="kask-tpch-"))
    os.makedirs(workdir, exist_ok=True)
    log(f"work directory: {workdir}")
    rows = []
    kept = a.keep or a.workdir
    try:
        for q in a.queries:
            load = os.getloadavg()[0]
            log(f"{q} (load average {load:.2f})")
            row = {"q": q, "load_average_before": load, "engines": {}}
            other = OtherCpu()
            for e in a.engines:
                if e == "kask":
                    row["engines"][e] = run_kask(a, q, tables, workdir)
                else:
                    row["engines"][e] = run_python_engine(a, e, q, tables, workdir)
                row["engines"][e]["best"] = best(row["engines"][e]["times"])
            row["other_cpu_cores"] = other.cores()
            if row["other_cpu_cores"] is not None:
                log(f"  {q} other processes used {row['other_cpu_cores']:.2f} cores meanwhile")
            summaries = {}
            for e, r in row["engines"].items():
                if r["best"] is None:
                    summaries[e] = {"error": "no successful run: " + (next((x for x in r["errors"] if x), "") or "")}
                    continue
                try:
                    summaries[e] = summarize(e, r["out"])
                except Exception as ex:  # noqa: BLE001 - an unreadable result is a finding
                    summaries[e] = {"error": f"cannot read the result: {type(ex).__name__}: {ex}"[:300]}
            for e, c in check_answers(summaries).items():
                row["engines"][e]["check"] = c
                row["engines"][e]["answer"] = summaries[e]
                if c["status"] == "mismatch":
                    log(f"  {q} {e:<10} ANSWER MISMATCH: {c['detail']}")
            rows.append(row)
            if not kept:
                # The results are summarized; free the disk for the next query.
                for e in a.engines:
                    shutil.rmtree(os.path.join(workdir, e, q), ignore_errors=True)
                shutil.rmtree(os.path.join(workdir, "kask", "out", q), ignore_errors=True)
    finally:
        if kept:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    meta["load_average_at_end"] = os.getloadavg()[0]
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    busy = [(r["q"], r["other_cpu_cores"]) for r in rows if (r.get("other_cpu_cores") or 0) > 0.2]
    if busy:
        warnings.append(f"other processes used more than 0.2 cores while {len(busy)} of {len(rows)} queries ran "
                        f"(up to {max(c for _, c in busy):.2f} cores, in {max(busy, key=lambda x: x[1])[0]}): "
                        "their timings are noisy")
        log("warning: " + warnings[-1])
    meta["warnings"] = warnings
    table, summary = build_report(meta, rows, a.engines)
    print(table, end="")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table)
        log(f"wrote {a.markdown}")
    if a.json:
        for row in rows:
            for r in row["engines"].values():
                if not kept:
                    r.pop("out", None)
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "summary": summary, "results": rows}, f, indent=2)
            f.write("\n")
        log(f"wrote {a.json}")
    bad = [(r["q"], e) for r in rows for e, x in r["engines"].items() if x.get("check", {}).get("status") == "mismatch"]
    return 2 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_worker":
        worker_main(sys.argv[2])
    else:
        sys.exit(main(sys.argv[1:]))
