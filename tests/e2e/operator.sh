# shellcheck shell=bash
# shellcheck disable=SC2154  # big_rows is the sourcing run's
# End-to-end tests of how the operator fails, retries and explains, sourced by tests/e2e/run as a
# lane of its own (it sets KASK, NS, PREFIX, WORK, big_rows and $WORK/big.yaml): pods that cannot
# start, an OOM kill, an eviction, odd input names and another controller's finalizer. A storage
# outage and a Helm upgrade mid-job are in disruptive.sh.

# condition_reason JOB TYPE: the reason of the DaskJob's condition TYPE when it is True.
condition_reason() {
  dj_field "$1" "{.status.conditions[?(@.type==\"$2\")].status} {.status.conditions[?(@.type==\"$2\")].reason}" |
    awk '$1 == "True" {print $2}'
}

# --- jobs that run side by side -----------------------------------------------------------------

# Each of these waits on something else (a deadline, a kill), so they start together. The two
# with a startup deadline are watched from their start: each must show Stalled within 45 s, and
# its Stalled condition lasts only until its 20 s deadline fails it, so the watch begins before
# the other jobs are applied. (Under the lanes' load one `kubectl apply` took 8 s, and the
# operator showed Stalled 15 s and 27 s after the applies began; alone it takes 0-6 s.)
stall_start=$SECONDS
apply_job unschedulable examples/groupby.yaml \
  '.spec.startupDeadlineSeconds = 20 | .spec.resources = {requests: {cpu: "64"}}'
apply_job no-image examples/groupby.yaml \
  '.spec.startupDeadlineSeconds = 20 | .spec.image = "localhost/kask:no-such-version"'
declare -A stalled_reason=() stalled_after=()
while ((SECONDS - stall_start < 45 && ${#stalled_reason[@]} < 2)); do
  for job in unschedulable no-image; do
    [[ -n "${stalled_reason[$job]:-}" ]] && continue
    reason=$(condition_reason "$job" Stalled)
    [[ -n "$reason" ]] && stalled_reason[$job]=$reason stalled_after[$job]=$((SECONDS - stall_start))
  done
  sleep 0.5
done
apply_job oom "$WORK/big.yaml" \
  '.spec.retries = 0 | .spec.resources = {requests: {memory: "16Mi"}, limits: {memory: "16Mi"}}'
apply_job finalizers examples/groupby.yaml '.metadata.finalizers = ["example.com/keep"]'
sed -e 's/^      orders:/      _:/; s/^      regions:/      "数据":/' \
  -e 's/source: orders/source: _/; s/right: regions/right: "数据"/' \
  examples/merge-groupby.yaml >"$WORK/odd-names.yaml"
for what in "unschedulable:a request no node can satisfy:Unschedulable" \
  "no-image:an image that does not exist:ErrImagePull|ImagePullBackOff"; do
  IFS=: read -r job desc reasons <<<"$what"
  name="$desc: the job says why within 45s and fails with it at its startup deadline"
  reason=${stalled_reason[$job]:-}
  if [[ -z "$reason" ]]; then
    fail "$name" "no Stalled condition within 45s"
    continue
  fi
  if kubectl --namespace "$NS" wait --for=condition=Failed "daskjob/$job" --timeout=90s >/dev/null; then
    failed_reason=$(condition_reason "$job" Failed)
    msg=$(dj_field "$job" '{.status.message}')
    pods=$(kubectl --namespace "$NS" get pods -l "kask.dev/job=$job" -o name | wc -l)
    if [[ "$reason" =~ ^($reasons)$ && "$failed_reason" =~ ^($reasons)$ &&
      "$msg" == *"startupDeadlineSeconds, 20s"* ]]; then
      ok "$name (Stalled: $reason after ${stalled_after[$job]}s; ${msg:0:120}; $pods pods left)"
    else
      fail "$name" "Stalled reason '$reason', Failed reason '$failed_reason', message '$msg'"
    fi
  else
    fail "$name" "not Failed: $(dj_field "$job" '{.status.phase}')"
  fi
done

name="pods a ResourceQuota refuses: the job names the quota and fails at its startup deadline"
# In a namespace of its own, whose quota allows no pod at all.
quota_ns="$NS-quota"
kubectl create namespace "$quota_ns" >/dev/null
kubectl label namespace "$quota_ns" pod-security.kubernetes.io/enforce=restricted >/dev/null
kubectl --namespace "$quota_ns" create quota no-pods --hard=pods=0 >/dev/null
kubectl get secret lake --namespace "$NS" -o json |
  jq --arg ns "$quota_ns" '.metadata = {name: "lake", namespace: $ns}' | kubectl apply -f - >/dev/null
kubectl apply -f - >/dev/null <<<"$(job_json examples/groupby.yaml quota out/quota \
  ".metadata.namespace = \"$quota_ns\" | .spec.startupDeadlineSeconds = 25")"
quota_field() { kubectl --namespace "$quota_ns" get daskjob quota -o jsonpath="$1" 2>/dev/null; }
if kubectl --namespace "$quota_ns" wait --for=condition=Failed daskjob/quota --timeout=120s >/dev/null; then
  msg=$(quota_field '{.status.message}')
  reason=$(quota_field '{.status.conditions[?(@.type=="Failed")].reason}')
  if [[ "$reason" == FailedCreate && "$msg" == *"exceeded quota: no-pods"* ]]; then
    ok "$name (${msg:0:150})"
  else
    fail "$name" "reason '$reason', message '$msg'"
  fi
else
  fail "$name" "not Failed: $(quota_field '{.status.phase}') $(quota_field '{.status.conditions}')"
fi
kubectl delete namespace "$quota_ns" --wait=false >/dev/null

name="a worker over its memory limit: the message says OOMKilled and what to change"
if kubectl --namespace "$NS" wait --for=condition=Failed daskjob/oom --timeout=180s >/dev/null; then
  msg=$(dj_field oom '{.status.message}')
  if [[ "$msg" == *OOMKilled*16Mi*spec.resources*targetTaskBytes* ]]; then
    ok "$name (${msg:0:150})"
  else
    fail "$name" "message '$msg'"
  fi
else
  fail "$name" "not Failed: $(dj_field oom '{.status.phase}') $(dj_field oom '{.status.message}')"
fi

example "$WORK/odd-names.yaml" odd-names

name="a finalizer added by another controller survives Kask's patches"
if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/finalizers --timeout=180s >/dev/null; then
  before=$(dj_field finalizers '{.metadata.finalizers[*]}')
  kubectl --namespace "$NS" delete daskjob finalizers --wait=false >/dev/null
  deadline=$((SECONDS + 60))
  until after=$(dj_field finalizers '{.metadata.finalizers[*]}') && [[ "$after" != *kask.dev/cleanup* ]] ||
    ((SECONDS > deadline)); do
    sleep 0.5
  done
  if [[ "$before" == "example.com/keep kask.dev/cleanup" && "$after" == example.com/keep ]]; then
    ok "$name (while running: $before; after deletion: $after)"
  else
    fail "$name" "finalizers while running '$before', after deletion '$after'"
  fi
  kubectl --namespace "$NS" patch daskjob finalizers --type=json \
    -p '[{"op": "remove", "path": "/metadata/finalizers"}]' >/dev/null 2>&1
else
  fail "$name" "not Complete: $(dj_field finalizers '{.status.message}')"
fi

name="a pod evicted through the Eviction API does not count as a retry"
# retries 0: a counted failure would fail the job.
apply_job evicted "$WORK/big.yaml" \
  '.spec.retries = 0 | .metadata.annotations = {"kask.dev/failpoint": "slow-tasks"}'
if pod=$(running_pod evicted s0-scan-g 120); then
  sleep 2
  kubectl create --raw "/api/v1/namespaces/$NS/pods/${pod#pod/}/eviction" -f - >/dev/null <<EOF
{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "${pod#pod/}", "namespace": "$NS"}}
EOF
  if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/evicted --timeout=240s >/dev/null; then
    got=$(counted_rows out/evicted)
    gone=$(kubectl --namespace "$NS" get "$pod" -o jsonpath='{.status.conditions[?(@.type=="DisruptionTarget")].reason}' 2>/dev/null)
    if [[ "$got" == "$big_rows" ]]; then
      ok "$name ($got rows; the evicted pod's DisruptionTarget: ${gone:-gone})"
    else
      fail "$name" "counted $got rows (expected $big_rows)"
    fi
  else
    fail "$name" "not Complete: $(dj_field evicted '{.status.message}')"
  fi
else
  fail "$name" "no running pod of stage s0-scan-g"
fi
