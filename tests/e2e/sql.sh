# shellcheck shell=bash
# SQL jobs on the test bed, sourced by tests/e2e/run (which sets KASK, NS, PREFIX and WORK):
# TPC-H queries at scale 0.1 through worker pods, all six jobs at once, each result row for
# row the same as `kask run`'s on the same files in MinIO (which tests/sql/run compares with
# DuckDB).

tpch_queries=(q01 q03 q05 q09 q13 q18)
if tpch=$(tests/sql/tpchgen 0.1); then
  for t in lineitem orders customer part partsupp supplier nation region; do
    s3_put "$tpch/$t.parquet" "$PREFIX/tpch/$t.parquet" || fail "TPC-H upload" "$t"
  done
  start_tpch=$SECONDS
  for q in "${tpch_queries[@]}"; do
    # Tasks of about 4 MB: lineitem (~25 MB at this scale) is read by several pods.
    jq -n --rawfile query "tests/sql/tpch/$q.sql" '
      {apiVersion: "kask.dev/v1alpha1", kind: "DaskJob", metadata: {name: "q"},
       spec: {sql: {query: $query, tables: ([
                "lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation",
                "region"] | map({key: ., value: {path: "tpch/\(.).parquet"}}) | from_entries)},
              output: {path: "out"}}}' >"$WORK/tpch-$q.yaml"
    job_json "$WORK/tpch-$q.yaml" "tpch-$q" "out/tpch-$q" \
      '.spec.workers = 2 | .spec.targetTaskBytes = 4000000' >"$WORK/tpch-$q.json"
    kubectl apply -f "$WORK/tpch-$q.json" >/dev/null || fail "TPC-H $q" "apply failed"
  done
  for q in "${tpch_queries[@]}"; do
    name="TPC-H $q at scale 0.1 through worker pods equals kask run"
    if ! kubectl --namespace "$NS" wait --for=condition=Complete "daskjob/tpch-$q" --timeout=300s >/dev/null; then
      fail "$name" "not Complete: $(dj_field "tpch-$q" '{.status.message}')"
      continue
    fi
    if ! run_locally "$(<"$WORK/tpch-$q.json")" "tpch-$q" 2>"$WORK/tpch-$q.err"; then
      fail "$name" "kask run failed: $(tail -n 3 "$WORK/tpch-$q.err")"
      continue
    fi
    output_rows "out/tpch-$q" >"$WORK/tpch-$q.cluster"
    output_rows "local/tpch-$q" >"$WORK/tpch-$q.local"
    rows=$(wc -l <"$WORK/tpch-$q.cluster")
    if [[ "$rows" -gt 0 ]] && cmp -s "$WORK/tpch-$q.cluster" "$WORK/tpch-$q.local"; then
      ok "$name ($rows rows, tasks $(dj_field "tpch-$q" '{.status.progress}'))"
    else
      fail "$name" "differs from kask run ($rows rows): $(diff "$WORK/tpch-$q.cluster" "$WORK/tpch-$q.local" | head -n 5)"
    fi
  done
  echo "e2e: the six TPC-H jobs took $((SECONDS - start_tpch))s together"
else
  fail "TPC-H at scale 0.1" "tests/sql/tpchgen 0.1 failed"
fi

# A job graph on the test bed: two outputs over one view, both committed, the view's stage
# feeding both in the status, and each output row for row the same as `kask run`'s.
name="a job graph (examples/sql-reports.yaml) through worker pods equals kask run"
# shellcheck disable=SC2016 # a jq program, with jq's own variables
graph_paths='.spec.sql.outputs |= with_entries(.value.path = "\($root)/graph/\(.key)")'
if job_json examples/sql-reports.yaml graph "" \
  ".spec.workers = 2 | .spec.targetTaskBytes = 4096
   | .spec.sql.outputs |= with_entries(.value.path = \"out/graph/\(.key)\")" >"$WORK/graph.json" &&
  kubectl apply -f "$WORK/graph.json" >/dev/null; then
  if ! kubectl --namespace "$NS" wait --for=condition=Complete daskjob/graph --timeout=180s >/dev/null; then
    fail "$name" "not Complete: $(dj_field graph '{.status.message}')"
  else
    graph_status=$(kubectl --namespace "$NS" get daskjob graph -o json)
    feeds=$(jq -r '.status.stages[] | select(.name | test("-view-paid$")) | .feeds | join(",")' <<<"$graph_status")
    outputs=$(jq -r '.status.outputs | map(split(":")[0]) | join(",")' <<<"$graph_status")
    jq --arg root local 'del(.spec.storage.secretRef) | '"$graph_paths" \
      "$WORK/graph.json" >"$WORK/graph-local.json"
    if [[ "$feeds" != "by_region,top_customers" ]]; then
      fail "$name" "the view's stage feeds '$feeds' in the status"
    elif [[ "$outputs" != "by_region,top_customers" ]]; then
      fail "$name" "the status lists the outputs '$outputs'"
    elif ! "$KASK" run "$WORK/graph-local.json" >/dev/null 2>"$WORK/graph.err"; then
      fail "$name" "kask run failed: $(tail -n 3 "$WORK/graph.err")"
    else
      differs=""
      for out in by_region top_customers; do
        output_rows "out/graph/$out" >"$WORK/graph-$out.cluster"
        output_rows "local/graph/$out" >"$WORK/graph-$out.local"
        if [[ ! -s "$WORK/graph-$out.cluster" ]] || ! cmp -s "$WORK/graph-$out.cluster" "$WORK/graph-$out.local"; then
          differs+=" $out"
        fi
      done
      if [[ -z "$differs" ]]; then
        ok "$name (tasks $(dj_field graph '{.status.progress}'))"
      else
        fail "$name" "outputs differ from kask run:$differs"
      fi
    fi
  fi
else
  fail "$name" "apply failed"
fi
