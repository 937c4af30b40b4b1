"""SQL jobs through `kask run`, each answer compared with DuckDB's on the same files.

    python sql.py KASK TPCH-DIR WORK-DIR QUERY-DIR [QUERY...]

QUERY is a TPC-H query (q01 ... q22), `graph` (a job graph), `windows` (window filters that
keep the first rows of each group), `hive` (Hive-partitioned folders read and written) or
`lowest` (a correlated `min` whose keys repeat); none runs them all.

TPCH-DIR holds the tables tpchgen-cli wrote. The jobs use its parent as their storage root,
read the tables from there and write their results under <root>/runs/<pid>, removed at the
end; the job files go to WORK-DIR. Values are compared exactly (text, integers, dates) or, for decimal and floating point
numbers, to 1e-9 relative or the scale of a decimal side (DataFusion's avg of a decimal keeps
six places where DuckDB's is a double); types by family.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import duckdb

KASK, TPCH, WORK, QUERIES = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
ONLY = set(sys.argv[5:])
TABLES = ["lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region"]

passed = 0
failed = 0


def ok(name, detail=""):
    global passed
    passed += 1
    print(f"sql: ok    {name}{f' ({detail})' if detail else ''}", flush=True)


def fail(name, why):
    global failed
    failed += 1
    print(f"sql: FAIL  {name}: {why}", flush=True)


def family(duck_type):
    """The kind of a DuckDB type name: what must agree between the two engines."""
    t = str(duck_type).upper()
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
             "UINTEGER", "UBIGINT"):
        return "integer"
    if t.startswith("DECIMAL") or t in ("FLOAT", "DOUBLE", "REAL"):
        return "number"
    if t in ("VARCHAR", "TEXT") or t.startswith("VARCHAR"):
        return "text"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    if t == "BOOLEAN":
        return "boolean"
    return t


def same_value(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (float, Decimal)) or isinstance(b, (float, Decimal)):
        x, y = float(a), float(b)
        # A decimal is exact to its scale: DataFusion's avg of DECIMAL(15,2) keeps 6 places
        # where DuckDB's is a DOUBLE.
        scales = [-v.as_tuple().exponent for v in (a, b) if isinstance(v, Decimal)]
        rounding = 10.0 ** -min(scales) if scales else 0.0
        return abs(x - y) <= max(rounding, 1e-9 * max(1.0, abs(x), abs(y)))
    return a == b


def sort_key(row):
    return tuple((v is None, str(v) if not isinstance(v, (int, float, Decimal)) else round(float(v), 6))
                 for v in row)


def compare(expected, got, ordered):
    """Why two results differ, or None. Rows are compared as multisets; when the query orders
    its rows, Kask's order must also agree with DuckDB's wherever DuckDB's rows differ."""
    (etypes, erows), (gtypes, grows) = expected, got
    ef, gf = [family(t) for t in etypes], [family(t) for t in gtypes]
    if ef != gf:
        return f"column types {gtypes} (DuckDB: {etypes})"
    if len(erows) != len(grows):
        return f"{len(grows)} rows (DuckDB: {len(erows)})"
    for i, (e, g) in enumerate(zip(sorted(erows, key=sort_key), sorted(grows, key=sort_key))):
        if not all(same_value(a, b) for a, b in zip(e, g)):
            return f"row {i} of the sorted rows: {g} (DuckDB: {e})"
    if ordered:
        for i, (e, g) in enumerate(zip(erows, grows)):
            if not all(same_value(a, b) for a, b in zip(e, g)):
                # Rows that tie on the ORDER BY keys may come in either order.
                if sort_key(e) != sort_key(g) and not tie(erows, i, g):
                    return f"row {i} in order: {g} (DuckDB: {e})"
    return None


def tie(rows, i, g):
    """Whether row `g` appears among DuckDB's rows near position `i` (a tie on the keys)."""
    window = rows[max(0, i - 50): i + 50]
    return any(all(same_value(a, b) for a, b in zip(r, g)) for r in window)


def kask_run(job, path):
    path.write_text(json.dumps(job))
    started = time.monotonic()
    p = subprocess.run([KASK, "run", str(path)], capture_output=True, text=True)
    return p, time.monotonic() - started


def result_of(con, out_dir):
    files = sorted(str(f) for f in Path(out_dir).glob("*.parquet"))
    if not files:
        return None
    rel = con.execute(f"SELECT * FROM read_parquet({files!r})")
    return [d[1] for d in rel.description], rel.fetchall()


def expected_of(con, query):
    """DuckDB's answer to `query`: its column names and rows."""
    ref = con.execute(query)
    return [d[1] for d in ref.description], ref.fetchall()


def check_output(label, expected, con, out_dir, ordered, detail):
    """Passes `label` if the Parquet files in `out_dir` hold `expected` (DuckDB's answer), in
    its order if `ordered`; `detail(rows)` says what passed."""
    got = result_of(con, out_dir)
    why = "no Parquet file in the output" if got is None else compare(expected, got, ordered)
    if why:
        fail(label, why)
    else:
        ok(label, detail(len(got[1])))


def tpch_tables(root_name):
    """Each table's path relative to the storage root, as tpchgen-cli laid them out."""
    tables = {}
    for t in TABLES:
        if (TPCH / f"{t}.parquet").is_file():
            tables[t] = {"path": f"{root_name}/{t}.parquet"}
        elif (TPCH / t).is_dir():
            tables[t] = {"path": f"{root_name}/{t}/*.parquet"}
        else:
            raise SystemExit(f"sql: no table {t} in {TPCH}")
    return tables


def duck_with_tpch(root):
    """A DuckDB connection with a view per TPC-H table, and the tables as a job names them."""
    con = duckdb.connect()
    tables = tpch_tables(TPCH.name)
    for t, spec in tables.items():
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{root / spec['path']}')")
    return con, tables


def sql_job(name, root, tables, query, out):
    """An SQL job over the TPC-H tables whose result goes to `out` as Parquet."""
    return {
        "apiVersion": "kask.dev/v1alpha1", "kind": "DaskJob",
        "metadata": {"name": name},
        "spec": {
            "storage": {"url": f"file://{root}"},
            "sql": {"tables": tables, "query": query},
            "workers": 2,
            "output": {"path": out, "format": "parquet"},
        },
    }


def tpch(root, runs):
    con, tables = duck_with_tpch(root)
    for q in sorted(QUERIES.glob("q*.sql")):
        name = q.stem
        if ONLY and name not in ONLY:
            continue
        text = q.read_text()
        started = time.monotonic()
        expected = expected_of(con, text)
        duck_s = time.monotonic() - started
        job = sql_job(f"tpch-{name}", root, tables, text, f"{runs}/{name}")
        p, secs = kask_run(job, WORK / f"{name}.json")
        label = f"TPC-H {name} equals DuckDB"
        if p.returncode != 0:
            fail(label, f"kask run exited {p.returncode}: {p.stderr.strip()[-600:]}")
            continue
        check_output(label, expected, con, root / runs / name, "order by" in text.lower(),
                     lambda n: f"{n} rows; kask {secs:.1f}s, duckdb {duck_s:.2f}s")


GRAPH_VIEWS = {
    "big_orders": "SELECT o_orderkey, o_custkey, o_orderpriority, o_totalprice FROM orders "
                  "WHERE o_totalprice > 300000",
    "shipped": "SELECT l_orderkey, l_extendedprice * (1 - l_discount) AS revenue, l_shipmode "
               "FROM lineitem JOIN big_orders ON l_orderkey = o_orderkey "
               "WHERE l_shipdate > DATE '1995-01-01'",
}
GRAPH_OUTPUTS = {
    "by_priority": "SELECT o_orderpriority, count(*) AS n, sum(o_totalprice) AS total "
                   "FROM big_orders GROUP BY o_orderpriority ORDER BY 1",
    "by_mode": "SELECT l_shipmode, sum(revenue) AS revenue, count(*) AS n FROM shipped "
               "GROUP BY l_shipmode ORDER BY 1",
    "top": "SELECT o_custkey, sum(revenue) AS revenue FROM shipped "
           "JOIN big_orders ON l_orderkey = o_orderkey "
           "GROUP BY o_custkey ORDER BY revenue DESC, o_custkey LIMIT 20",
}


def graph(root, runs):
    """A job graph: three outputs over two views that several of them use. Each view is
    computed once (from `kask explain`: one stage scans each table) and every output equals
    DuckDB's answer to the same query over the same views."""
    con, tables = duck_with_tpch(root)
    for name, q in GRAPH_VIEWS.items():
        con.execute(f"CREATE VIEW {name} AS {q}")
    job = {
        "apiVersion": "kask.dev/v1alpha1", "kind": "DaskJob",
        "metadata": {"name": "tpch-graph"},
        "spec": {
            "storage": {"url": f"file://{root}"},
            "sql": {
                "tables": tables,
                "views": GRAPH_VIEWS,
                "outputs": {n: {"query": q, "path": f"{runs}/graph/{n}"}
                            for n, q in GRAPH_OUTPUTS.items()},
            },
            "workers": 2,
        },
    }
    path = WORK / "graph.json"
    path.write_text(json.dumps(job))
    label = "a job graph computes each shared view once"
    p = subprocess.run([KASK, "explain", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        fail(label, f"kask explain exited {p.returncode}: {p.stderr.strip()[-600:]}")
    else:
        scans = {t: sum(1 for line in p.stdout.splitlines()
                        if line.strip().startswith("reads") and f"table {t}" in line)
                 for t in ("orders", "lineitem")}
        views = sorted(line.split()[1] for line in p.stdout.splitlines()
                       if line.startswith("stage ") and "-view-" in line)
        if scans != {"orders": 1, "lineitem": 1} or len(views) != 2:
            fail(label, f"stages scanning each table: {scans}; view stages: {views}")
        else:
            ok(label, f"view stages {', '.join(views)}")
    p, secs = kask_run(job, path)
    if p.returncode != 0:
        fail("a job graph's outputs equal DuckDB", f"kask run exited {p.returncode}: {p.stderr.strip()[-600:]}")
        return
    for name, q in GRAPH_OUTPUTS.items():
        check_output(f"job graph output {name} equals DuckDB", expected_of(con, q), con,
                     root / runs / "graph" / name, True,
                     lambda n: f"{n} rows; the whole graph in {secs:.1f}s")


# q02's shape: each part's suppliers at the part's lowest cost. Kask filters the correlated
# `min` by the parts the outer query keeps, and computes that filter as the outer query's own
# join of `part` and `partsupp`, once for both (a `min` ignores repeated rows). Every part is
# listed twice, so the keys repeat and the join repeats rows.
LOWEST_QUERY = """SELECT p_partkey, p_mfgr, ps_suppkey, ps_supplycost
FROM part, partsupp
WHERE p_partkey = ps_partkey AND p_size = 15 AND p_type LIKE '%BRASS'
  AND ps_supplycost = (SELECT min(ps_supplycost) FROM partsupp WHERE ps_partkey = p_partkey)
ORDER BY p_partkey, ps_suppkey"""


def lowest_cost(root, runs):
    """The query above with a small broadcast limit (so that, at SF1, the join is worth
    keeping): `partsupp` is scanned by one stage (from `kask explain`), and the answer equals
    DuckDB's over the same files."""
    twice = root / runs / "twice"
    twice.mkdir(parents=True, exist_ok=True)
    single = TPCH / "part.parquet"
    files = [single] if single.is_file() else sorted((TPCH / "part").glob("*.parquet"))
    for copy in ("a", "b"):
        for i, f in enumerate(files):
            shutil.copyfile(f, twice / f"{copy}{i}.parquet")
    con, tables = duck_with_tpch(root)
    tables["part"] = {"path": f"{runs}/twice/*.parquet"}
    con.execute(f"CREATE OR REPLACE VIEW part AS SELECT * FROM read_parquet('{twice}/*.parquet')")
    job = sql_job("lowest-cost", root, tables, LOWEST_QUERY, f"{runs}/lowest")
    job["spec"]["broadcastBytes"] = 1 << 20
    path = WORK / "lowest.json"
    path.write_text(json.dumps(job))
    label = "a semi join for a min is the join the query computes anyway"
    p = subprocess.run([KASK, "explain", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        fail(label, f"kask explain exited {p.returncode}: {p.stderr.strip()[-600:]}")
    else:
        scans = sum(1 for line in p.stdout.splitlines()
                    if line.strip().startswith("reads") and "table partsupp" in line)
        if scans != 1:
            fail(label, f"{scans} stages scan partsupp")
        else:
            ok(label, "one stage scans partsupp")
    label = "the lowest cost per part, every part twice, equals DuckDB"
    p, secs = kask_run(job, path)
    if p.returncode != 0:
        fail(label, f"kask run exited {p.returncode}: {p.stderr.strip()[-600:]}")
        return
    check_output(label, expected_of(con, LOWEST_QUERY), con, root / runs / "lowest", True,
                 lambda n: f"{n} rows in {secs:.1f}s")


WINDOW_QUERIES = {
    # Ties everywhere: every order of a customer's most urgent priority.
    "rank_ties": "SELECT o_custkey, o_orderkey, o_orderpriority FROM (SELECT *, rank() OVER "
                 "(PARTITION BY o_custkey ORDER BY o_orderpriority) AS r FROM orders) WHERE r <= 1",
    "row_number": "SELECT o_custkey, o_orderkey, o_totalprice, rn FROM (SELECT *, row_number() OVER "
                  "(PARTITION BY o_custkey ORDER BY o_totalprice DESC, o_orderkey) AS rn "
                  "FROM orders) WHERE rn <= 2",
    "dense_rank": "SELECT l_suppkey, l_quantity FROM (SELECT *, dense_rank() OVER "
                  "(PARTITION BY l_suppkey ORDER BY l_quantity DESC) AS d FROM lineitem) WHERE d <= 2",
}


def windows(root, runs):
    """The first rows of each group by a window filter, which Kask prunes before its sort and
    shuffle for row_number and rank (not dense_rank), equal to DuckDB's rows."""
    con, tables = duck_with_tpch(root)
    for name, q in WINDOW_QUERIES.items():
        label = f"window filter {name} equals DuckDB"
        job = sql_job(f"window-{name.replace('_', '-')}", root, tables, q, f"{runs}/window/{name}")
        path = WORK / f"window-{name}.json"
        path.write_text(json.dumps(job))
        p = subprocess.run([KASK, "explain", str(path)], capture_output=True, text=True)
        pruned = "GroupTopKExec" in p.stdout
        if p.returncode != 0 or pruned != (name != "dense_rank"):
            fail(label, f"kask explain exited {p.returncode}; GroupTopKExec in the plan: {pruned}")
            continue
        p, secs = kask_run(job, path)
        if p.returncode != 0:
            fail(label, f"kask run exited {p.returncode}: {p.stderr.strip()[-600:]}")
            continue
        check_output(label, expected_of(con, q), con, root / runs / "window" / name, False,
                     lambda n: f"{n} rows; kask {secs:.1f}s")


def hive(root, runs):
    """Hive-partitioned data both ways: DuckDB writes orders in year= and priority= folders,
    a Kask job reads them (the folders as columns, the years before 1995 skipped) and writes
    its result in folders by year, which DuckDB reads back; equal to DuckDB's answer on the
    plain table."""
    con, tables = duck_with_tpch(root)
    label = "hive folders read and written equal DuckDB"
    lake = root / runs / "hive" / "orders"
    lake.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        "COPY (SELECT o_orderkey, o_totalprice, year(o_orderdate) AS y, o_orderpriority AS p "
        f"FROM orders) TO '{lake}' (FORMAT PARQUET, PARTITION_BY (y, p))")
    query = ("SELECT y, p, count(*) AS n, sum(o_totalprice) AS total FROM o "
             "WHERE y >= 1995 AND p <> '5-LOW' GROUP BY y, p")
    job = sql_job("hive", root, {"o": {"path": f"{runs}/hive/orders", "partitioning": "hive"}},
                  query, f"{runs}/hive/out")
    job["spec"]["output"]["partitionBy"] = ["y"]
    p, secs = kask_run(job, WORK / "hive.json")
    if p.returncode != 0:
        fail(label, f"kask run exited {p.returncode}: {p.stderr.strip()[-600:]}")
        return
    expected = expected_of(
        con,
        "SELECT year(o_orderdate) AS y, o_orderpriority AS p, count(*) AS n, "
        "sum(o_totalprice) AS total FROM orders "
        "WHERE year(o_orderdate) >= 1995 AND o_orderpriority <> '5-LOW' GROUP BY ALL")
    out = root / runs / "hive" / "out"
    folders = sorted(d.name for d in out.iterdir() if d.is_dir() and not d.name.startswith("_"))
    years = sorted({f"y={r[0]}" for r in expected[1]})
    if folders != years:
        fail(label, f"folders {folders} (years: {years})")
        return
    rel = con.execute(f"SELECT y, p, n, total FROM read_parquet('{out}/*/*.parquet', "
                      "hive_partitioning = true)")
    got = ([d[1] for d in rel.description], rel.fetchall())
    why = compare(expected, got, False)
    if why:
        fail(label, why)
    else:
        ok(label, f"{len(got[1])} rows in {len(folders)} folders; kask {secs:.1f}s")


def main():
    root = TPCH.parent
    runs = f"runs/{os.getpid()}"
    try:
        if not ONLY or "graph" in ONLY:
            graph(root, runs)
        if not ONLY or "windows" in ONLY:
            windows(root, runs)
        if not ONLY or "hive" in ONLY:
            hive(root, runs)
        if not ONLY or "lowest" in ONLY:
            lowest_cost(root, runs)
        tpch(root, runs)
    finally:
        shutil.rmtree(root / runs, ignore_errors=True)
    print(f"sql: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


main()
