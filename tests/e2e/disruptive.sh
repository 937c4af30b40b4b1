# shellcheck shell=bash
# shellcheck disable=SC2154  # big_rows is the sourcing run's, watch_pid lib.sh's
# The tests that change the cluster under every job on it, sourced by tests/e2e/run after the
# lanes, one after another (it sets KASK, NS, PREFIX, WORK, big_rows and $WORK/big.yaml): the
# operator's pod deleted mid-job, the operator SIGKILLed 50 times across several jobs, MinIO
# down mid-stage, and a Helm upgrade to a new worker image mid-job. Each job still ends exact,
# each child Job created once, each job on the image it started with.

OPERATOR="$(dirname "$KASK")/kask-operator"

# --- the operator killed mid-job ----------------------------------------------------------------

name="the operator's pod deleted mid-job: the job completes, each child Job created once"
json=$(job_json "$WORK/big.yaml" killed-operator out/killed-operator)
watch_jobs "$WORK/killed-operator-events"
kubectl apply -f - <<<"$json" >/dev/null
if running_pod killed-operator s0-scan-g 120 >/dev/null; then
  kubectl --namespace kask-system delete pod -l app.kubernetes.io/component=operator --wait=false >/dev/null
  if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/killed-operator --timeout=240s >/dev/null; then
    problems=$(created_once "$WORK/killed-operator-events" killed-operator)
    got=$(counted_rows out/killed-operator)
    if [[ -z "$problems" && "$got" == "$big_rows" ]]; then
      ok "$name ($got rows)"
    else
      fail "$name" "$got rows (want $big_rows);$problems"
    fi
  else
    fail "$name" "not Complete: $(dj_field killed-operator '{.status.message}')"
  fi
else
  fail "$name" "no running pod of stage s0-scan-g"
fi
kill "$watch_pid"
kubectl --namespace kask-system rollout status deployment/kask-operator --timeout=120s >/dev/null

# --- the operator SIGKILLed again and again ------------------------------------------------------

name="the operator SIGKILLed 50 times across 4 jobs: each ends exact, each child Job created once"
# The operator runs here, beside the cluster, so that a kill and a restart take milliseconds
# (a pod's restart would wait out a back-off); the Deployment steps aside meanwhile.
kubectl --namespace kask-system scale deployment/kask-operator --replicas=0 >/dev/null
kubectl --namespace kask-system wait --for=delete pod -l app.kubernetes.io/component=operator \
  --timeout=120s >/dev/null 2>&1
watch_jobs "$WORK/job-events"
watcher=$watch_pid
chaos_jobs=(chaos-a chaos-b chaos-c chaos-d)
apply_chaos() {
  local j json
  for j in "$@"; do
    json=$(job_json "$WORK/big.yaml" "$j" "out/$j" \
      '.spec.workers = 2 | .spec.resources = {requests: {cpu: "100m"}, limits: {cpu: "400m"}}
       | .metadata.annotations = {"kask.dev/failpoint": "slow-commit"}')
    kubectl apply -f - <<<"$json" >/dev/null
  done
}
# Two jobs start at once and two join mid-way, so kills land in every phase of some job.
apply_chaos chaos-a chaos-b
kills=0 commit_kills=0 until_done=$((SECONDS + 600))
start_operator() {
  "$OPERATOR" --leader-elect=false --namespaces "$NS" --http-addr 127.0.0.1:0 \
    --log-format text >>"$WORK/operator.log" 2>&1 &
  operator_pid=$!
}
chaos_finished() { # every chaos job Succeeded or Failed
  local phases
  phases=$(kubectl --namespace "$NS" get daskjobs "${chaos_jobs[@]}" \
    -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' 2>/dev/null) || return 1
  (($(grep -cE '^(Succeeded|Failed)$' <<<"$phases") == ${#chaos_jobs[@]}))
}
commits_running() { # the chaos jobs' commit pods that are pending or running
  kubectl --namespace "$NS" get pods \
    -l "kask.dev/stage=commit,kask.dev/job in ($(IFS=,; echo "${chaos_jobs[*]}"))" \
    --field-selector=status.phase!=Succeeded,status.phase!=Failed -o name | grep -c . || true
}
# At least 50 kills, and at least 10 of them while a commit runs: kills come quicker then, and
# the failpoint slow-commit holds each commit for a few seconds before it starts. Once every job
# has finished, more kills would test nothing: the kills must have come before.
while (((kills < 50 || commit_kills < 10) && SECONDS < until_done)); do
  start_operator
  running=$(commits_running)
  if ((running > 0)); then
    sleep "0.$((RANDOM % 5 + 1))"
  elif chaos_finished; then
    kill -9 "$operator_pid"
    wait "$operator_pid" 2>/dev/null
    break
  else
    sleep "0.$((RANDOM % 8 + 2))"
  fi
  ((running > 0)) && commit_kills=$((commit_kills + 1))
  kill -9 "$operator_pid"
  wait "$operator_pid" 2>/dev/null
  kills=$((kills + 1))
  ((kills == 20)) && apply_chaos chaos-c chaos-d
done
start_operator
done_jobs=0
for j in "${chaos_jobs[@]}"; do
  kubectl --namespace "$NS" wait --for=condition=Complete "daskjob/$j" --timeout=300s >/dev/null &&
    done_jobs=$((done_jobs + 1))
done
kill "$operator_pid" "$watcher" 2>/dev/null
wait "$operator_pid" "$watcher" 2>/dev/null
kubectl --namespace kask-system scale deployment/kask-operator --replicas=1 >/dev/null
exact=0 problems=""
for j in "${chaos_jobs[@]}"; do
  got=$(counted_rows "out/$j")
  [[ "$got" == "$big_rows" ]] && exact=$((exact + 1)) || problems+=" $j counted $got rows;"
  problems+=$(created_once "$WORK/job-events" "$j")
done
if ((done_jobs == ${#chaos_jobs[@]} && exact == ${#chaos_jobs[@]} && kills >= 50 && commit_kills >= 10)) && [[ -z "$problems" ]]; then
  ok "$name ($kills kills, $commit_kills while a commit ran)"
else
  fail "$name" "$done_jobs/${#chaos_jobs[@]} Complete, $exact exact, $kills kills ($commit_kills during commits):$problems"
  tail -n 20 "$WORK/operator.log" | sed 's/^/    /'
fi
kubectl --namespace kask-system rollout status deployment/kask-operator --timeout=120s >/dev/null

# --- MinIO down mid-stage -----------------------------------------------------------------------

name="MinIO down for 8s mid-stage: the job retries and ends exact"
apply_job outage "$WORK/big.yaml" \
  '.spec.resources = {requests: {cpu: "100m"}, limits: {cpu: "400m"}}'
if running_pod outage s0-scan-g 120 >/dev/null; then
  tests/cluster/cluster minio-outage 8 >/dev/null 2>&1
  if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/outage --timeout=300s >/dev/null; then
    got=$(counted_rows out/outage)
    attempts=$(kubectl --namespace "$NS" get pods -l kask.dev/job=outage --field-selector=status.phase=Failed -o name | wc -l)
    if [[ "$got" == "$big_rows" ]]; then
      ok "$name ($got rows; $attempts failed pods)"
    else
      fail "$name" "counted $got rows (expected $big_rows)"
    fi
  else
    fail "$name" "not Complete: $(dj_field outage '{.status.message}')"
  fi
else
  fail "$name" "no running pod of stage s0-scan-g"
fi

# --- one Kask version per job -------------------------------------------------------------------

name="a Helm upgrade to a new worker image mid-job: the job finishes on the image it started with"
old_image=$(kubectl --namespace kask-system get deployment kask-operator \
  -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="KASK_WORKER_IMAGE")].value}')
new_image="localhost/kask:upgrade-test"
apply_job upgraded "$WORK/big.yaml" \
  '.spec.resources = {requests: {cpu: "100m"}, limits: {cpu: "200m"}}'
if running_pod upgraded s0-scan-g 120 >/dev/null; then
  tests/cluster/cluster tag-image "$old_image" "$new_image" >/dev/null
  tests/cluster/cluster install-kask --set worker.image.tag=upgrade-test >/dev/null
  if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/upgraded --timeout=300s >/dev/null; then
    images=$(kubectl --namespace "$NS" get pods -l kask.dev/job=upgraded \
      -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | sort | uniq -c | xargs)
    pinned=$(dj_field upgraded '{.status.workerImage}')
    apply_job after-upgrade examples/groupby.yaml '.'
    kubectl --namespace "$NS" wait --for=condition=Complete daskjob/after-upgrade --timeout=120s >/dev/null
    later=$(dj_field after-upgrade '{.status.workerImage}')
    if [[ "$pinned" == "$old_image" && "$images" != *"$new_image"* && "$later" == "$new_image" ]]; then
      ok "$name (pods: $images; the next job: $later)"
    else
      fail "$name" "status.workerImage '$pinned', pods '$images', the next job's '$later'"
    fi
  else
    fail "$name" "not Complete: $(dj_field upgraded '{.status.message}')"
  fi
  tests/cluster/cluster install-kask >/dev/null
else
  fail "$name" "no running pod of stage s0-scan-g"
fi
