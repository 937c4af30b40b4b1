# shellcheck shell=bash
# shellcheck disable=SC2154  # big_rows is the sourcing run's
# Faults in one job's own pods and input, sourced by tests/e2e/run as a lane of its own (it sets
# KASK, NS, PREFIX, WORK, big_rows and $WORK/big.yaml): a malformed input fails after one pod and
# names the file, a worker pod killed mid-stage is retried with every row counted once, and a
# running job deleted leaves neither pods nor scratch objects.

# --- a malformed input --------------------------------------------------------------------------

name="malformed input fails, names the file, writes no _SUCCESS"
# bad/orders/bad.csv: the orders of the groupby example, the last row's amount not a number.
json=$(job_json examples/groupby.yaml bad out/bad '.spec.dataframe.inputs.orders.path = "bad/orders/*.csv"')
kubectl apply -f - <<<"$json" >/dev/null
if kubectl --namespace "$NS" wait --for=condition=Failed daskjob/bad --timeout=120s >/dev/null; then
  msg=$(dj_field bad '{.status.message}')
  if [[ "$msg" == *"bad/orders/bad.csv"* ]] && ! committed out/bad; then
    ok "$name (${msg:0:140})"
  else
    fail "$name" "message '$msg' (committed: $(committed out/bad && echo yes || echo no))"
  fi
else
  fail "$name" "not Failed: phase $(dj_field bad '{.status.phase}')"
fi

name="a malformed input fails the job after exactly one pod"
# Job bad's pods tell how many attempts it took.
failed_pods=$(kubectl --namespace "$NS" get pods -l kask.dev/job=bad \
  --field-selector=status.phase=Failed -o name | wc -l)
job_reason=$(kubectl --namespace "$NS" get jobs -l kask.dev/job=bad \
  -o jsonpath='{.items[*].status.conditions[?(@.type=="Failed")].reason}')
if ((failed_pods == 1)) && [[ "$job_reason" == PodFailurePolicy ]]; then
  ok "$name (retries: 3; the stage Job failed by its $job_reason)"
else
  fail "$name" "$failed_pods failed pods, stage Job failed by '$job_reason'"
fi

# --- a worker pod killed mid-stage ---------------------------------------------------------------

name="a worker pod killed mid-stage is retried; every row counted once"
# Each task waits a second first (the failpoint slow-tasks), so the kill lands inside the stage
# however busy the machine is.
json=$(job_json "$WORK/big.yaml" killed-worker out/killed-worker \
  '.metadata.annotations = {"kask.dev/failpoint": "slow-tasks"}')
kubectl apply -f - <<<"$json" >/dev/null
if pod=$(running_pod killed-worker s0-scan-g 120); then
  # Mid-stage: once the pod has committed its first task, and before it is done.
  first_commit killed-worker 60 || true
  # A plain delete: the container is stopped mid-task and the pod ends Failed, which the Job
  # counts against the task group's retries.
  kubectl --namespace "$NS" delete "$pod" --wait=false >/dev/null 2>&1
  if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/killed-worker --timeout=240s >/dev/null; then
    got=$(counted_rows out/killed-worker)
    failures=$(dj_field killed-worker '{.status.stages[0].failed}')
    if [[ "$got" == "$big_rows" && "$failures" -ge 1 ]]; then
      ok "$name ($got rows, $failures failed pod(s) in stage 0)"
    else
      fail "$name" "counted $got rows (expected $big_rows), $failures failed pods (expected at least 1)"
    fi
  else
    fail "$name" "not Complete: $(dj_field killed-worker '{.status.message}')"
  fi
else
  fail "$name" "no running pod of stage s0-scan-g"
fi

# --- deleting a running job ----------------------------------------------------------------------

name="deleting a running DaskJob removes its pods and its scratch prefix"
json=$(job_json "$WORK/big.yaml" deleted out/deleted '.metadata.annotations = {"kask.dev/failpoint": "slow-tasks"}')
kubectl apply -f - <<<"$json" >/dev/null
if running_pod deleted s0-scan-g 120 >/dev/null; then
  kubectl --namespace "$NS" delete daskjob deleted --timeout=120s >/dev/null
  deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    pods=$(kubectl --namespace "$NS" get pods -l kask.dev/job=deleted -o name | wc -l)
    # The job's history (its attempts, its pods' logs, why it ended) stays; nothing else.
    scratch=$(s3_keys "$PREFIX/out/deleted/_kask/" | { grep -vc '/_kask/history/' || true; })
    ((pods == 0 && scratch == 0)) && break
    sleep 0.5
  done
  if ((pods == 0 && scratch == 0)); then
    ok "$name"
  else
    fail "$name" "$pods pods and $scratch scratch objects left"
  fi
else
  fail "$name" "no running pod of stage s0-scan-g"
fi

