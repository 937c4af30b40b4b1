# shellcheck shell=bash
# Helpers of the tests that run DaskJobs on the test bed (tests/e2e/run, tests/chart/run):
# results, MinIO through curl, DaskJobs as JSON, waits, and an example job checked against
# `kask run`. The sourcing script sets KASK, NS, PREFIX, STORAGE_URL and WORK, and the
# environment of `tests/cluster/cluster env`.
# shellcheck disable=SC2034  # passed and failed are the caller's counters

passed=0
failed=0
ok() {
  printf '%s: ok    %s\n' "${SUITE:-e2e}" "$1"
  passed=$((passed + 1))
}
fail() {
  printf '%s: FAIL  %s: %s\n' "${SUITE:-e2e}" "$1" "$2"
  # What kubectl and helm said on stderr since the last failure, which the suites keep.
  if [[ -n "${STDERR:-}" && -s "$STDERR" ]]; then
    tail -n 10 "$STDERR" | sed 's/^/    stderr: /'
    : >"$STDERR"
  fi
  kubectl --namespace "$NS" get daskjobs,jobs,pods -o wide 2>&1 | sed 's/^/    /'
  kubectl --namespace kask-system logs deployment/kask-operator --tail=15 2>&1 | sed 's/^/    /'
  failed=$((failed + 1))
}

# --- object storage through curl's SigV4 --------------------------------------------------------

s3() {
  curl -sS --fail --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"
}
s3_put() { # FILE KEY
  s3 -H "x-amz-content-sha256: $(sha256sum "$1" | cut -d' ' -f1)" -X PUT --data-binary "@$1" \
    "$KASK_S3_ENDPOINT/$KASK_S3_BUCKET/$2" >/dev/null
}
s3_keys() { # PREFIX: the keys under it, one per line
  local enc
  enc=$(jq -rn --arg p "$1" '$p | @uri')
  s3 "$KASK_S3_ENDPOINT/$KASK_S3_BUCKET?list-type=2&max-keys=1000&prefix=$enc" |
    grep -oE '<Key>[^<]+</Key>' | sed 's/<Key>//; s/<\/Key>//'
}
s3_get() { s3 "$KASK_S3_ENDPOINT/$KASK_S3_BUCKET/$1"; }
# The rows of a committed CSV output under the storage prefix, sorted, without headers.
output_rows() {
  local key
  for key in $(s3_keys "$PREFIX/$1/part-"); do
    s3_get "$key" | tail -n +2
  done | sort
}
committed() { s3_keys "$PREFIX/$1/_SUCCESS" | grep -q _SUCCESS; }

upload_dir() { # LOCAL-DIR KEY-PREFIX
  local f
  while IFS= read -r f; do
    s3_put "$1/$f" "$PREFIX/$2/$f" || return 1
  done < <(cd "$1" && find . -type f -printf '%P\n')
}

# --- jobs ---------------------------------------------------------------------------------------

# job_json FILE NAME OUTPUT [JQ-EXPR]: the DaskJob in FILE (YAML) as JSON, renamed, in the test
# namespace, on MinIO with the storage Secret, writing CSV to OUTPUT (a job graph, whose
# outputs JQ-EXPR places, passes ""), then JQ-EXPR applied.
job_json() {
  kubectl create --dry-run=client -o json -f "$1" | jq \
    --arg name "$2" --arg ns "$NS" --arg out "$3" --arg url "$STORAGE_URL" \
    --arg ep "$KASK_S3_ENDPOINT" "
    .metadata = {name: \$name, namespace: \$ns}
    | .spec.storage = {url: \$url, endpoint: \$ep, region: \"us-east-1\", allowHttp: true,
                       secretRef: {name: \"lake\"}}
    | if \$out == \"\" then . else .spec.output = {path: \$out, format: \"csv\", mode: \"overwrite\"} end
    | ${4:-.}"
}

apply_job() { # NAME FILE JQ-EXPR: job_json's job, applied
  kubectl apply -f - <<<"$(job_json "$2" "$1" "out/$1" "$3")" >/dev/null
}

dj_field() { kubectl --namespace "$NS" get daskjob "$1" -o jsonpath="$2" 2>/dev/null; }

# Waits up to $2 seconds for DaskJob $1 to reach a phase matching $3 (a regex).
wait_phase() {
  local deadline=$((SECONDS + $2)) phase
  while ((SECONDS < deadline)); do
    phase=$(dj_field "$1" '{.status.phase}')
    [[ "$phase" =~ ^($3)$ ]] && return 0
    sleep 0.3
  done
  return 1
}

# Waits up to $2 seconds until job $1 has committed a task (its first stage is under way),
# writing to out/$1.
first_commit() {
  local uid deadline=$((SECONDS + $2))
  uid=$(dj_field "$1" '{.metadata.uid}')
  until s3_keys "$PREFIX/out/$1/_kask/$uid/tasks/0/" | grep -q json; do
    ((SECONDS > deadline)) && return 1
    sleep 0.05
  done
}

# Waits up to $3 seconds for a pod of DaskJob $1's stage $2 to be Running (on node $4, when
# given); prints its name.
running_pod() {
  local deadline=$((SECONDS + $3)) pod fields=status.phase=Running
  [[ -n "${4:-}" ]] && fields+=",spec.nodeName=$4"
  while ((SECONDS < deadline)); do
    pod=$(kubectl --namespace "$NS" get pods -l "kask.dev/job=$1,kask.dev/stage=$2" \
      --field-selector="$fields" -o name 2>/dev/null | head -n1)
    [[ -n "$pod" ]] && { echo "$pod"; return 0; }
    sleep 0.1
  done
  return 1
}

# The same job run by `kask run` on this host, writing to local/NAME; prints nothing, fails
# on error.
run_locally() { # JSON NAME
  jq --arg out "local/$2" '.spec.output.path = $out | del(.spec.storage.secretRef)' \
    <<<"$1" >"$WORK/$2.json"
  "$KASK" run "$WORK/$2.json" >/dev/null
}

# An example job end to end: applied, Complete, and its output row for row the same as
# `kask run`'s. JQ-EXPR adjusts the job (default: two workers, tasks of 4 KiB).
example() { # FILE NAME [JQ-EXPR]
  local name=$2 json start=$SECONDS
  json=$(job_json "$1" "$name" "out/$name" "${3:-.spec.workers = 2 | .spec.targetTaskBytes = 4096}")
  kubectl apply -f - <<<"$json" >/dev/null || { fail "$name" "apply failed"; return; }
  if ! kubectl --namespace "$NS" wait --for=condition=Complete "daskjob/$name" --timeout=180s >/dev/null; then
    fail "example $1" "not Complete: $(dj_field "$name" '{.status.message}')"
    return
  fi
  local took=$((SECONDS - start))
  run_locally "$json" "$name" || { fail "example $1" "kask run failed"; return; }
  output_rows "out/$name" >"$WORK/$name.cluster"
  output_rows "local/$name" >"$WORK/$name.local"
  local rows tasks
  rows=$(wc -l <"$WORK/$name.cluster")
  tasks=$(dj_field "$name" '{.status.progress}')
  if [[ "$rows" -gt 0 ]] && cmp -s "$WORK/$name.cluster" "$WORK/$name.local"; then
    ok "example $1: $rows rows, same as kask run (tasks $tasks, ${took}s)"
  else
    fail "example $1" "output differs from kask run ($rows rows): $(diff "$WORK/$name.cluster" "$WORK/$name.local" | head -n 5)"
  fi
}

# big_job ROWS PARTITIONS TASK-BYTES: a generated groupby table of ROWS rows in PARTITIONS CSV
# files, uploaded under big/, and a DaskJob over it in tasks of TASK-BYTES, written to
# $WORK/big.yaml: long enough that pods can be killed mid-stage. Sets big_rows.
big_job() {
  local rows=$1 parts=$2 task_bytes=$3 dir
  "$KASK" gen groupby --rows "$rows" --groups 100 --partitions "$parts" --format csv \
    --out "$WORK/big" >/dev/null || return 1
  upload_dir "$WORK/big" big || return 1
  dir=$(cd "$WORK/big" && dirname "$(find . -type f -printf '%P\n' | head -n1)")
  rm -rf "$WORK/big"
  big_rows=$rows
  cat >"$WORK/big.yaml" <<EOF2
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: big}
spec:
  workers: 1
  targetTaskBytes: $task_bytes
  dataframe:
    inputs:
      g: {path: "big/$dir/*.csv", format: csv}
    pipeline:
      - source: g
      - groupby: {by: [id1], aggs: {v1: [sum, count]}}
  output: {path: out/big}
EOF2
}

# watch_jobs FILE: records every Job event of the test namespace as "TYPE NAME UID" lines in FILE,
# in the background (its pid in watch_pid); the first lines list the Jobs already there.
watch_jobs() {
  kubectl --namespace "$NS" get jobs --watch --output-watch-events \
    -o jsonpath='{.type} {.object.metadata.name} {.object.metadata.uid}{"\n"}' >"$1" &
  watch_pid=$!
}

# created_once EVENTS DASKJOB: prints what is wrong with the DaskJob's child Jobs in the watch
# log EVENTS: each of its plan, stage and commit Jobs must have been created exactly once (one
# UID), and no other Job of its name.
created_once() {
  local events=$1 job=$2 stages child created extra
  stages=$(dj_field "$job" '{.status.stages[*].name}' | wc -w)
  for child in "$job-plan" $(seq -f "$job-s%g" 0 $((stages - 1))) "$job-commit"; do
    created=$(awk -v n="$child" '$1 == "ADDED" && $2 == n {print $3}' "$events" | sort -u | wc -l)
    ((created == 1)) || printf ' Job %s created %s times;' "$child" "$created"
  done
  extra=$(awk -v p="$job-" '$1 == "ADDED" && index($2, p) == 1 {print $2}' "$events" | sort -u |
    grep -cvE -- "-(plan|s[0-9]+|commit)$" || true)
  ((extra == 0)) || printf ' %s has %s unexpected Jobs;' "$job" "$extra"
}

# --- nodes ---------------------------------------------------------------------------------------

# How many nodes are Ready.
ready_nodes() {
  kubectl get nodes -o json |
    jq -r '[.items[] | select(any(.status.conditions[]; .type == "Ready" and .status == "True"))] | length'
}

# The nodes the pods of DaskJob $1's stage $2 ran on, sorted and unique, space-separated.
stage_nodes() {
  kubectl --namespace "$NS" get pods -l "kask.dev/job=$1,kask.dev/stage=$2" \
    -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | xargs
}

# The sum of the count column of the big job's output: every input row exactly once.
counted_rows() { # OUTPUT
  output_rows "$1" | awk -F, '{s += $NF} END {printf "%d", s}'
}

# The files of a committed output under the storage prefix (names relative to it, with their
# SHA-256), without the manifest, which records the job id and time, and with the job id taken
# out of part names (part-00000-<job id>.csv is part-00000.csv here).
output_files() { # OUTPUT
  local key name
  for key in $(s3_keys "$PREFIX/$1/"); do
    case "$key" in */_SUCCESS | */_kask/*) continue ;; esac
    name=$(sed -E 's/^(part-[0-9]+)-[^.]+/\1/' <<<"${key#"$PREFIX/$1/"}")
    printf '%s %s\n' "$name" "$(s3_get "$key" | sha256sum | cut -d' ' -f1)"
  done | sort
}

# An array or bag example end to end through worker pods: Complete, and every output file
# (Zarr chunks and zarr.json, or JSON-lines parts) byte for byte the same as `kask run`'s.
example_files() { # FILE NAME
  local name=$2 json start=$SECONDS
  json=$(job_json "$1" "$name" "out/$name" \
    ".spec.workers = 2 | .spec.output.format = \"$3\" | .spec.targetTaskBytes = ${4:-4096}")
  kubectl apply -f - <<<"$json" >/dev/null || { fail "$name" "apply failed"; return; }
  if ! kubectl --namespace "$NS" wait --for=condition=Complete "daskjob/$name" --timeout=180s >/dev/null; then
    fail "example $1" "not Complete: $(dj_field "$name" '{.status.message}')"
    return
  fi
  local took=$((SECONDS - start))
  run_locally "$json" "$name" || { fail "example $1" "kask run failed"; return; }
  output_files "out/$name" >"$WORK/$name.cluster"
  output_files "local/$name" >"$WORK/$name.local"
  local files tasks
  files=$(wc -l <"$WORK/$name.cluster")
  tasks=$(dj_field "$name" '{.status.progress}')
  if [[ "$files" -gt 0 ]] && cmp -s "$WORK/$name.cluster" "$WORK/$name.local"; then
    ok "example $1: $files files, byte for byte as kask run (tasks $tasks, ${took}s)"
  else
    fail "example $1" "output differs from kask run: $(diff "$WORK/$name.cluster" "$WORK/$name.local" | head -n 5)"
  fi
}

# --- lanes: tests that run side by side ---------------------------------------------------------

# Most tests spend their time waiting for pods to start and Jobs to finish, not computing, so
# independent ones run at once. lane NAME CMD...: CMD (a test function, or `source FILE`) in the
# background, with counters of its own and its output kept until join_lanes prints it.
lane_names=()
lane_pids=()
lane() {
  local name=$1
  shift
  mkdir -p "$WORK/lanes"
  # shellcheck disable=SC2030  # the lane's own counters, which join_lanes adds up
  (
    passed=0 failed=0 lane_start=$SECONDS
    "$@"
    printf 'lane-result %s %s %s\n' "$passed" "$failed" "$((SECONDS - lane_start))"
  ) >"$WORK/lanes/$name.log" 2>&1 &
  lane_names+=("$name")
  lane_pids+=($!)
}

# join_lanes: waits for every lane, printing each one's output as it ends and adding its counts
# to passed and failed; a lane that ends without its counts (the shell itself failed) is a
# failure of its own.
join_lanes() {
  local i done_pid status result log p f s
  local -A name_of=()
  for i in "${!lane_pids[@]}"; do name_of[${lane_pids[$i]}]=${lane_names[$i]}; done
  while ((${#name_of[@]} > 0)); do
    done_pid=""
    wait -n -p done_pid "${!name_of[@]}"
    status=$?
    [[ -n "$done_pid" ]] || break
    log="$WORK/lanes/${name_of[$done_pid]}.log"
    grep -v '^lane-result ' "$log"
    result=$(grep '^lane-result ' "$log" | tail -n 1)
    if [[ -n "$result" ]]; then
      read -r _ p f s <<<"$result"
      # shellcheck disable=SC2031  # these are the caller's counters, not the lane's
      { passed=$((passed + p)); failed=$((failed + f)); }
      printf '%s: lane %s: %s passed, %s failed in %ss\n' "${SUITE:-e2e}" "${name_of[$done_pid]}" "$p" "$f" "$s"
    else
      fail "lane ${name_of[$done_pid]}" "ended without its counts (exit status $status)"
    fi
    unset "name_of[$done_pid]"
  done
  lane_names=()
  lane_pids=()
}
