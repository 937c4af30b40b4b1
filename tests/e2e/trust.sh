# shellcheck shell=bash
# shellcheck disable=SC2154  # big_rows is the sourcing run's, watch_pid lib.sh's
# End-to-end tests of the output protocol on the test bed, sourced by tests/e2e/run (which sets
# KASK, NS, PREFIX, WORK, big_rows and $WORK/big.yaml): an invalid spec gets no pod, a commit
# killed after `_SUCCESS` or whose Job is deleted still ends Succeeded, and the operator
# SIGKILLed 50 times across several jobs loses, duplicates and strands nothing.

OPERATOR="$(dirname "$KASK")/kask-operator"

# --- an invalid spec ------------------------------------------------------------------------------

name="a spec whose output overlaps its input ends Failed/InvalidSpec with no pod"
json=$(job_json examples/groupby.yaml overlap data/orders '.spec.dataframe.inputs.orders.path = "data/orders/*.csv"')
kubectl apply -f - <<<"$json" >/dev/null
if kubectl --namespace "$NS" wait --for=condition=Failed daskjob/overlap --timeout=60s >/dev/null; then
  reason=$(dj_field overlap '{.status.conditions[?(@.type=="Failed")].reason}')
  msg=$(dj_field overlap '{.status.message}')
  jobs=$(kubectl --namespace "$NS" get jobs,pods -l kask.dev/job=overlap -o name | wc -l)
  if [[ "$reason" == InvalidSpec && "$msg" == *"spec.output.path"*"overlaps"* ]] && ((jobs == 0)); then
    ok "$name"
  else
    fail "$name" "reason '$reason', message '$msg', $jobs Jobs and pods"
  fi
else
  fail "$name" "not Failed: phase $(dj_field overlap '{.status.phase}')"
fi

# --- the commit killed after it wrote _SUCCESS ----------------------------------------------------

# commit_interrupted NAME HOW: runs the groupby example with its commit pods dying right after
# they write _SUCCESS (the failpoint after-manifest, a SIGKILL's exit at that exact step); with
# HOW=retry the commit Job runs another pod, with HOW=job the commit Job is deleted as well and
# the operator creates it again. Either way the job must end Succeeded with its whole result.
commit_interrupted() {
  local name=$1 how=$2 json deadline
  json=$(job_json examples/groupby.yaml "$name" "out/$name" \
    '.metadata.annotations = {"kask.dev/failpoint": "after-manifest"} | .spec.targetTaskBytes = 2048')
  kubectl apply -f - <<<"$json" >/dev/null
  deadline=$((SECONDS + 240))
  until kubectl --namespace "$NS" get pods -l "kask.dev/job=$name,kask.dev/stage=commit" \
    --field-selector=status.phase=Failed -o name 2>/dev/null | grep -q . || ((SECONDS > deadline)); do
    sleep 0.2
  done
  committed "out/$name" || { echo "no _SUCCESS, or no commit pod died"; return 1; }
  if [[ "$how" == job ]]; then
    kubectl --namespace "$NS" delete job "$name-commit" --wait=false >/dev/null
    echo "a commit pod died after _SUCCESS; deleted Job $name-commit"
  else
    echo "a commit pod died after _SUCCESS"
  fi
  kubectl --namespace "$NS" wait --for=condition=Complete "daskjob/$name" --timeout=180s >/dev/null
}

for how in retry job; do
  name="a commit pod killed right after _SUCCESS ($how) still ends Succeeded"
  if what=$(commit_interrupted "commit-$how" "$how"); then
    rows=$(output_rows "out/commit-$how" | wc -l)
    phase=$(dj_field "commit-$how" '{.status.phase}')
    out=$(dj_field "commit-$how" '{.status.output}')
    if [[ "$phase" == Succeeded && "$rows" == 40 && "$out" == *"out/commit-$how/_SUCCESS" ]]; then
      ok "$name ($what; $rows rows)"
    else
      fail "$name" "$what; phase $phase, $rows rows, output '$out'"
    fi
  else
    fail "$name" "$what; phase $(dj_field "commit-$how" '{.status.phase}'): $(dj_field "commit-$how" '{.status.message}')"
  fi
done

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
