# shellcheck shell=bash
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

# commit_interrupted NAME HOW: runs the groupby example, and the moment its _SUCCESS appears,
# kills the commit pod (HOW=pod) or deletes the commit Job (HOW=job); the job must still end
# Succeeded with its whole result.
commit_interrupted() {
  local name=$1 how=$2 json deadline pod
  # A slow commit pod (a tenth of a core) widens the window between _SUCCESS and its exit.
  json=$(job_json examples/groupby.yaml "$name" "out/$name" \
    '.spec.resources = {requests: {cpu: "50m"}, limits: {cpu: "100m"}} | .spec.targetTaskBytes = 2048')
  kubectl apply -f - <<<"$json" >/dev/null
  deadline=$((SECONDS + 240))
  until committed "out/$name" || ((SECONDS > deadline)); do sleep 0.05; done
  if ! committed "out/$name"; then
    echo "no _SUCCESS"
    return 1
  fi
  if [[ "$how" == pod ]]; then
    pod=$(kubectl --namespace "$NS" get pods -l "kask.dev/job=$name,kask.dev/stage=commit" \
      --field-selector=status.phase=Running -o name | head -n1)
    [[ -n "$pod" ]] && kubectl --namespace "$NS" delete "$pod" --grace-period=0 --force >/dev/null 2>&1
    echo "killed ${pod:-no pod (it had exited)}"
  else
    kubectl --namespace "$NS" delete job "$name-commit" --wait=false >/dev/null 2>&1
    echo "deleted Job $name-commit"
  fi
  kubectl --namespace "$NS" wait --for=condition=Complete "daskjob/$name" --timeout=180s >/dev/null
}

for how in pod job; do
  name="the commit interrupted right after _SUCCESS ($how) still ends Succeeded"
  if what=$(commit_interrupted "commit-$how" "$how"); then
    rows=$(output_rows "out/commit-$how" | wc -l)
    files=$(s3_keys "$PREFIX/out/commit-$how/part-" | wc -l)
    phase=$(dj_field "commit-$how" '{.status.phase}')
    if [[ "$phase" == Succeeded && "$rows" -gt 0 && "$files" -gt 0 ]]; then
      ok "$name ($what; $rows rows)"
    else
      fail "$name" "$what; phase $phase, $rows rows"
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
kubectl --namespace "$NS" get jobs --watch --output-watch-events \
  -o jsonpath='{.type} {.object.metadata.name} {.object.metadata.uid}{"\n"}' >"$WORK/job-events" 2>/dev/null &
watcher=$!
chaos_jobs=(chaos-a chaos-b chaos-c chaos-d)
for j in "${chaos_jobs[@]}"; do
  json=$(job_json "$WORK/big.yaml" "$j" "out/$j" \
    '.spec.workers = 2 | .spec.resources = {requests: {cpu: "100m"}, limits: {cpu: "400m"}}')
  kubectl apply -f - <<<"$json" >/dev/null
done
kills=0 commit_kills=0 until_done=$((SECONDS + 600))
start_operator() {
  "$OPERATOR" --leader-elect=false --namespaces "$NS" --http-addr 127.0.0.1:0 \
    --log-format text >>"$WORK/operator.log" 2>&1 &
  operator_pid=$!
}
commits_running() {
  kubectl --namespace "$NS" get pods -l kask.dev/stage=commit --field-selector=status.phase!=Succeeded \
    -o name 2>/dev/null | grep -c . || true
}
while ((kills < 50 && SECONDS < until_done)); do
  start_operator
  running=$(commits_running)
  if ((running > 0)); then
    sleep "0.$((RANDOM % 5 + 1))"
  else
    sleep "$((RANDOM % 2)).$((RANDOM % 10))"
  fi
  ((running > 0)) && commit_kills=$((commit_kills + 1))
  kill -9 "$operator_pid"
  wait "$operator_pid" 2>/dev/null
  kills=$((kills + 1))
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
  stages=$(dj_field "$j" '{.status.stages[*].name}' | wc -w)
  for child in "$j-plan" $(seq -f "$j-s%g" 0 $((stages - 1))) "$j-commit"; do
    created=$(awk -v n="$child" '$1 == "ADDED" && $2 == n {print $3}' "$WORK/job-events" | sort -u | wc -l)
    ((created == 1)) || problems+=" Job $child created $created times;"
  done
  extra=$(awk -v p="$j-" '$1 == "ADDED" && index($2, p) == 1 {print $2}' "$WORK/job-events" | sort -u |
    grep -cvE -- "-(plan|s[0-9]+|commit)$" || true)
  ((extra == 0)) || problems+=" $j has $extra unexpected Jobs;"
done
if ((done_jobs == ${#chaos_jobs[@]} && exact == ${#chaos_jobs[@]} && commit_kills >= 10)) && [[ -z "$problems" ]]; then
  ok "$name ($kills kills, $commit_kills while a commit ran)"
else
  fail "$name" "$done_jobs/${#chaos_jobs[@]} Complete, $exact exact, $kills kills ($commit_kills during commits):$problems"
  tail -n 20 "$WORK/operator.log" | sed 's/^/    /'
fi
kubectl --namespace kask-system rollout status deployment/kask-operator --timeout=120s >/dev/null
