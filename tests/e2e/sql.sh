# shellcheck shell=bash
# SQL jobs on the test bed, sourced by tests/e2e/run (which sets KASK, NS, PREFIX and WORK):
# TPC-H queries at scale 0.1 through worker pods, each result row for row the same as `kask
# run`'s on the same files in MinIO (which tests/sql/run compares with DuckDB).

if tpch=$(tests/sql/tpchgen 0.1); then
  for t in lineitem orders customer part partsupp supplier nation region; do
    s3_put "$tpch/$t.parquet" "$PREFIX/tpch/$t.parquet" || fail "TPC-H upload" "$t"
  done
  for q in q01 q03 q05 q09 q13 q18; do
    # Tasks of about 4 MB: lineitem (~25 MB at this scale) is read by several pods.
    jq -n --rawfile query "tests/sql/tpch/$q.sql" '
      {apiVersion: "kask.dev/v1alpha1", kind: "DaskJob", metadata: {name: "q"},
       spec: {sql: {query: $query, tables: ([
                "lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation",
                "region"] | map({key: ., value: {path: "tpch/\(.).parquet"}}) | from_entries)},
              output: {path: "out"}}}' >"$WORK/tpch-$q.json"
    example "$WORK/tpch-$q.json" "tpch-$q" '.spec.workers = 2 | .spec.targetTaskBytes = 4000000'
  done
else
  fail "TPC-H at scale 0.1" "tests/sql/tpchgen 0.1 failed"
fi
