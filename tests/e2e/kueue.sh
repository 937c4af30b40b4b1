# shellcheck shell=bash
# shellcheck disable=SC2154  # big_rows is the sourcing run's
# Kueue admits DaskJobs: installed on the bed for these tests and removed after them (its Job
# webhook would otherwise see every Job of the later tests). A ClusterQueue with CPU for two
# worker pods; DaskJobs that each want two run in turn, and a higher-priority job preempts a
# lower one, which resumes and completes without redoing its committed tasks.
# Sourced by tests/e2e/run after the big table is uploaded; uses its helpers and variables.

cluster=tests/cluster/cluster
queue_ns="$NS-queue"

# A DaskJob in the queue: JSON of FILE renamed NAME, in the queue's namespace, with PRIORITY,
# two workers of half a core each; JQ-EXPR adds to it.
queued_job() { # FILE NAME PRIORITY [JQ-EXPR]
  job_json "$1" "$2" "out/$2" ".metadata.namespace = \"$queue_ns\"
    | .metadata.labels = {\"kueue.x-k8s.io/queue-name\": \"kask\", \"kueue.x-k8s.io/priority-class\": \"$3\"}
    | .spec.workers = 2 | .spec.resources = {requests: {cpu: \"500m\"}, limits: {cpu: \"500m\"}}
    | ${4:-.}"
}

qfield() { kubectl --namespace "$queue_ns" get daskjob "$1" -o jsonpath="$2" 2>/dev/null; }

# The most worker pods of the queue's namespace running at once, sampled until the file
# $WORK/queue-stop appears; written to $WORK/queue-max.
sample_running() {
  local most=0 n
  until [[ -e "$WORK/queue-stop" ]]; do
    n=$(kubectl --namespace "$queue_ns" get pods -l kask.dev/job-uid \
      --field-selector=status.phase=Running -o name 2>/dev/null | wc -l)
    ((n > most)) && most=$n
    sleep 0.5
  done
  echo "$most" >"$WORK/queue-max"
}

if ! "$cluster" install-kueue >"$WORK/kueue-install.log" 2>&1; then
  fail "Kueue installs on the bed" "$(tail -n 15 "$WORK/kueue-install.log")"
else
  kubectl create namespace "$queue_ns" >/dev/null
  kubectl label namespace "$queue_ns" pod-security.kubernetes.io/enforce=restricted >/dev/null
  kubectl --namespace "$queue_ns" create secret generic lake \
    --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
    --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" >/dev/null
  kubectl apply -f - >/dev/null <<EOF
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: kask-e2e}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: kask-e2e}
spec:
  namespaceSelector: {}
  preemption: {withinClusterQueue: LowerPriority}
  resourceGroups:
    - coveredResources: [cpu]
      flavors:
        - name: kask-e2e
          resources: [{name: cpu, nominalQuota: "1"}]
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {name: kask, namespace: $queue_ns}
spec: {clusterQueue: kask-e2e}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: WorkloadPriorityClass
metadata: {name: low}
value: 100
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: WorkloadPriorityClass
metadata: {name: high}
value: 1000
EOF

  name="three DaskJobs that each want two workers share a queue with room for two: in turn, each exact"
  rm -f "$WORK/queue-stop"
  sample_running &
  sampler=$!
  for q in q1 q2 q3; do
    kubectl apply -f - <<<"$(queued_job examples/groupby.yaml "$q" low '.spec.targetTaskBytes = 4096')" >/dev/null
  done
  all=1
  for q in q1 q2 q3; do
    kubectl --namespace "$queue_ns" wait --for=condition=Complete "daskjob/$q" --timeout=300s >/dev/null || all=0
  done
  touch "$WORK/queue-stop"
  wait "$sampler"
  most=$(cat "$WORK/queue-max")
  json=$(queued_job examples/groupby.yaml q1 low '.spec.targetTaskBytes = 4096')
  if ((all)) && run_locally "$json" q1; then
    output_rows local/q1 >"$WORK/q.local"
    same=0
    for q in q1 q2 q3; do
      output_rows "out/$q" | cmp -s - "$WORK/q.local" && same=$((same + 1))
    done
    waited=$(kubectl --namespace "$queue_ns" get events --field-selector reason=Queued -o name | wc -l)
    if ((same == 3 && most <= 2 && waited > 0)); then
      ok "$name (at most $most worker pods at once; $waited Queued events)"
    else
      fail "$name" "$same of 3 outputs equal kask run's; $most worker pods ran at once (quota: 2); $waited Queued events"
    fi
  else
    fail "$name" "not all Complete: $(for q in q1 q2 q3; do printf '%s %s; ' "$q" "$(qfield "$q" '{.status.phase} {.status.message}')"; done)"
  fi

  name="a higher-priority job preempts a lower one, which resumes and completes without redoing committed tasks"
  # Slower, and small enough that the high-priority job's first pod must take its place.
  slow='.spec.resources = {requests: {cpu: "300m"}, limits: {cpu: "300m"}}'
  kubectl apply -f - <<<"$(queued_job "$WORK/big.yaml" low-prio low "$slow")" >/dev/null
  uid=""
  deadline=$((SECONDS + 180))
  # Under way: its first stage has committed tasks.
  until [[ -n "$uid" ]] && s3_keys "$PREFIX/out/low-prio/_kask/$uid/tasks/0/" | grep -q json; do
    ((SECONDS > deadline)) && break
    uid=$(qfield low-prio '{.metadata.uid}')
    sleep 0.2
  done
  # The tasks committed so far (their markers are tasks/0/<task>.json).
  markers="$WORK/low-prio-markers"
  s3_keys "$PREFIX/out/low-prio/_kask/$uid/tasks/0/" | sed -n 's|.*/\([0-9]*\)\.json$|\1|p' >"$markers"
  kubectl apply -f - <<<"$(queued_job examples/groupby.yaml high-prio high '.spec.targetTaskBytes = 4096')" >/dev/null
  # Preempted: Kueue suspends the low job's stage Job.
  preempted=0
  deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)); do
    if [[ "$(kubectl --namespace "$queue_ns" get job low-prio-s0 -o jsonpath='{.spec.suspend}' 2>/dev/null)" == true ]]; then
      preempted=1
      break
    fi
    sleep 0.3
  done
  if ! [[ -s "$markers" ]]; then
    fail "$name" "the low-priority job committed no task within 180s: $(qfield low-prio '{.status.phase} {.status.message}')"
  elif ((!preempted)); then
    fail "$name" "the low-priority job's stage was not preempted within 120s"
  elif ! kubectl --namespace "$queue_ns" wait --for=condition=Complete daskjob/high-prio --timeout=300s >/dev/null; then
    fail "$name" "the high-priority job did not complete: $(qfield high-prio '{.status.phase} {.status.message}')"
  elif ! kubectl --namespace "$queue_ns" wait --for=condition=Complete daskjob/low-prio --timeout=400s >/dev/null; then
    fail "$name" "the low-priority job did not complete after it: $(qfield low-prio '{.status.phase} {.status.message}')"
  else
    got=$(counted_rows out/low-prio)
    # The job's history has a record per task attempt, <stage>-<task>-<attempt>.json: a task
    # committed before the preemption has exactly one.
    s3_keys "$PREFIX/out/low-prio/_kask/history/" | grep -oE '/attempts/0-[0-9]+-' >"$WORK/low-prio-attempts"
    once=0
    while read -r task; do
      (($(grep -c -- "/attempts/0-$task-" "$WORK/low-prio-attempts") == 1)) && once=$((once + 1))
    done <"$markers"
    before=$(wc -l <"$markers")
    all=$(wc -l <"$WORK/low-prio-attempts")
    if [[ "$got" == "$big_rows" ]] && ((once == before)); then
      ok "$name ($got rows; the $before tasks committed before the preemption ran once; $all attempts in stage 0)"
    else
      fail "$name" "counted $got rows (expected $big_rows); $once of the $before tasks committed before the preemption ran once"
    fi
  fi

  kubectl delete namespace "$queue_ns" --wait=true --timeout=120s >/dev/null 2>&1
  kubectl delete clusterqueue kask-e2e >/dev/null 2>&1
  "$cluster" uninstall-kueue >/dev/null 2>&1 || fail "Kueue uninstalls from the bed" "uninstall-kueue failed"
fi
