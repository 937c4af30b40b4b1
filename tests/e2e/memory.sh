# shellcheck shell=bash
# Worker pods with a 256 MiB memory limit over generated data, sourced by tests/e2e/run (which
# sets KASK, NS, PREFIX and WORK): a groupby with a group per two or three rows, a merge with
# both sides shuffled, a global sort and bag frequencies over millions of distinct words. Each
# job must succeed with no pod OOMKilled, its result equal to `kask run`'s on the same files
# (a digest of the sorted rows; of the rows in part order for the sort), and every stage's
# peak memory in status.stages[] under the limit.
#
# KASK_E2E_MEMORY_ROWS sets the rows of the generated tables (default 1,000,000: about 30 MB
# of Parquet, enough to check the mechanics within CI's budget). bench/memory-bed/run runs the
# same jobs with 40,000,000 rows (over 2 GiB of input).

mem_rows=${KASK_E2E_MEMORY_ROWS:-1000000}
readonly mem_limit=256Mi mem_limit_bytes=$((256 << 20))
# Small tables in tasks of 4 MB, so that every job has several tasks and shuffles; large ones
# in the default 128 MiB.
mem_task_bytes=$((mem_rows < 10000000 ? 4000000 : 134217728))

# mem_upload KIND ARGS...: `kask gen KIND ARGS... --out DIR` and the files uploaded under
# mem/KIND/; prints the directory of the generated table (or files) relative to mem/.
mem_upload() {
  local kind=$1 dir
  shift
  rm -rf "$WORK/mem"
  "$KASK" gen "$kind" "$@" --out "$WORK/mem" >/dev/null || return 1
  upload_dir "$WORK/mem" "mem/$kind" || return 1
  dir=$(cd "$WORK/mem" && find . -mindepth 1 -maxdepth 1 -type d -printf '/%P\n' | head -n1)
  rm -rf "$WORK/mem"
  echo "$kind$dir"
}

# The digest of a committed output's rows: sorted, or in part order (`ordered`); CSV parts lose
# their header, JSON-lines parts (`json`) have none.
mem_digest() { # OUTPUT [ordered|json]
  local key skip=2
  [[ "${2:-}" == json ]] && skip=1
  for key in $(s3_keys "$PREFIX/$1/part-"); do s3_get "$key" | tail -n +$skip; done |
    if [[ "${2:-}" == ordered ]]; then cat; else sort; fi | sha256sum | cut -d' ' -f1
}

# mem_job NAME SPEC-JQ: a DaskJob whose spec is the jq program SPEC-JQ (over $g, $j and $t: the
# generated tables' directories), with workers held to $mem_limit, writing CSV to out/NAME.
mem_job() {
  jq -n --arg name "$1" --arg g "$mem_g" --arg j "$mem_j" --arg t "$mem_t" \
    "{apiVersion: \"kask.dev/v1alpha1\", kind: \"DaskJob\", metadata: {name: \$name}, spec: ($2)}" \
    >"$WORK/$1.yaml" || return 1
  job_json "$WORK/$1.yaml" "$1" "" \
    ".spec.output = {path: \"out/$1\", mode: \"overwrite\",
                     format: (if .spec.bag then \"json\" else \"csv\" end)}
     | .spec.workers = 2 | .spec.retries = 0 | .spec.targetTaskBytes = $mem_task_bytes
     | .spec.resources = {requests: {memory: \"$mem_limit\"}, limits: {memory: \"$mem_limit\"}}"
}

mem_start=$SECONDS
if mem_g=$(mem_upload groupby --rows "$mem_rows" --groups 2 --partitions 4) &&
  mem_j=$(mem_upload join --rows "$mem_rows" --partitions 4) &&
  mem_t=$(mem_upload text --bytes $((mem_rows * 40)) --files 4 --vocabulary "$mem_rows")
then
  echo "e2e: memory tests' data ($mem_rows rows) generated and uploaded in $((SECONDS - mem_start))s"
  # shellcheck disable=SC2016 # jq programs, with jq's own variables
  declare -A mem_specs=(
    [mem-groupby]='{dataframe: {inputs: {g: {path: "mem/\($g)/*.parquet"}},
      pipeline: [{source: "g"}, {groupby: {by: ["id3"], aggs: {v1: ["sum", "count"], v2: ["max"]}}}]}}'
    [mem-merge]='{broadcastBytes: 0, dataframe: {inputs: {x: {path: "mem/\($j)/x/*.parquet"},
      big: {path: "mem/\($j)/big/*.parquet"}}, pipeline: [{source: "x"},
      {merge: {right: "big", on: ["id1", "id2", "id3"]}},
      {groupby: {by: ["id5_x"], aggs: {v1: ["count", "max"], v2: ["min"]}}}]}}'
    [mem-sort]='{dataframe: {inputs: {g: {path: "mem/\($g)/*.parquet"}},
      pipeline: [{source: "g"}, {select: ["id6", "v3", "v1"]}, {sort: {by: ["id6", "v3", "v1"]}}]}}'
    [mem-frequencies]='{bag: {inputs: {w: {path: "mem/\($t)/*.txt", format: "text"}},
      steps: [{source: "w"}, {split: {}}, {frequencies: {}}]}}'
  )
  for name in "${!mem_specs[@]}"; do
    if ! { mem_job "$name" "${mem_specs[$name]}" >"$WORK/$name.json" &&
      kubectl apply -f "$WORK/$name.json" >/dev/null; }; then
      fail "$name" "apply failed"
    fi
  done
  for name in mem-groupby mem-merge mem-sort mem-frequencies; do
    what="${name#mem-} with workers limited to $mem_limit equals kask run"
    if ! wait_phase "$name" 900 'Succeeded|Failed' || [[ "$(dj_field "$name" '{.status.phase}')" != Succeeded ]]; then
      fail "$what" "not Succeeded: $(dj_field "$name" '{.status.message}')"
      continue
    fi
    oom=$(kubectl --namespace "$NS" get pods -l "kask.dev/job=$name" \
      -o jsonpath='{..terminated.reason}' | tr ' ' '\n' | grep -c OOMKilled)
    peaks=$(dj_field "$name" '{.status.stages[*].peakMemoryBytes}')
    spilled=$(dj_field "$name" '{.status.stages[*].spilledBytes}')
    over=0
    for p in $peaks; do ((p < mem_limit_bytes)) || over=1; done
    if ! run_locally "$(<"$WORK/$name.json")" "$name" 2>"$WORK/$name.err"; then
      fail "$what" "kask run failed: $(tail -n 3 "$WORK/$name.err")"
      continue
    fi
    how=""
    [[ "$name" == mem-sort ]] && how=ordered
    [[ "$name" == mem-frequencies ]] && how=json
    here=$(mem_digest "out/$name" $how)
    there=$(mem_digest "local/$name" $how)
    rows=$(dj_field "$name" '{.status.outputRows}')
    max_peak=$(tr ' ' '\n' <<<"$peaks" | sort -n | tail -n1)
    if ((oom == 0 && over == 0 && ${max_peak:-0} > 0)) && [[ "$here" == "$there" ]]; then
      ok "$what ($rows rows; peak memory per stage $((max_peak >> 20)) MiB at most; spilled per stage: $spilled; tasks $(dj_field "$name" '{.status.progress}'))"
    else
      fail "$what" "OOMKilled pods $oom; peaks '$peaks' (limit $mem_limit_bytes); $rows rows; digest $here against kask run's $there"
    fi
  done
  echo "e2e: the memory tests took $((SECONDS - mem_start))s"
else
  fail "memory tests" "generating or uploading their data failed"
fi
