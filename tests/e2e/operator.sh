# shellcheck shell=bash
# shellcheck disable=SC2154  # big_rows is the sourcing run's
# End-to-end tests of how the operator fails, retries and explains, sourced by tests/e2e/run
# (which sets KASK, NS, PREFIX, WORK, big_rows and $WORK/big.yaml): pods that cannot start, an
# OOM kill, an eviction, a storage outage, odd input names, another controller's finalizer and
# a Helm upgrade in the middle of a job.

# condition_reason JOB TYPE: the reason of the DaskJob's condition TYPE when it is True.
condition_reason() {
  dj_field "$1" "{.status.conditions[?(@.type==\"$2\")].status} {.status.conditions[?(@.type==\"$2\")].reason}" |
    awk '$1 == "True" {print $2}'
}

# --- jobs that run side by side -----------------------------------------------------------------

# Each of these waits on something else (a deadline, a kill), so they start together.
apply_job() { # NAME FILE JQ
  kubectl apply -f - <<<"$(job_json "$2" "$1" "out/$1" "$3")" >/dev/null
}
apply_job unschedulable examples/groupby.yaml \
  '.spec.startupDeadlineSeconds = 20 | .spec.resources = {requests: {cpu: "64"}}'
apply_job no-image examples/groupby.yaml \
  '.spec.startupDeadlineSeconds = 20 | .spec.image = "localhost/kask:no-such-version"'
apply_job oom "$WORK/big.yaml" \
  '.spec.retries = 0 | .spec.resources = {requests: {memory: "16Mi"}, limits: {memory: "16Mi"}}'
apply_job finalizers examples/groupby.yaml '.metadata.finalizers = ["example.com/keep"]'
sed -e 's/^      orders:/      _:/; s/^      regions:/      "数据":/' \
  -e 's/source: orders/source: _/; s/right: regions/right: "数据"/' \
  examples/merge-groupby.yaml >"$WORK/odd-names.yaml"

# Both are watched at once from their start: each must show Stalled within 30 s.
declare -A stalled_reason=() stalled_after=()
stall_start=$SECONDS
while ((SECONDS - stall_start < 30 && ${#stalled_reason[@]} < 2)); do
  for job in unschedulable no-image; do
    [[ -n "${stalled_reason[$job]:-}" ]] && continue
    reason=$(condition_reason "$job" Stalled)
    [[ -n "$reason" ]] && stalled_reason[$job]=$reason stalled_after[$job]=$((SECONDS - stall_start))
  done
  sleep 0.5
done
for what in "unschedulable:a request no node can satisfy:Unschedulable" \
  "no-image:an image that does not exist:ErrImagePull|ImagePullBackOff"; do
  IFS=: read -r job desc reasons <<<"$what"
  name="$desc: the job says why within 30s and fails with it at its startup deadline"
  reason=${stalled_reason[$job]:-}
  if [[ -z "$reason" ]]; then
    fail "$name" "no Stalled condition within 30s"
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

# --- failing fast, retrying what can succeed ----------------------------------------------------

name="a malformed input fails the job after exactly one pod"
# The malformed-input test earlier left Job bad: its pods tell how many attempts it took.
failed_pods=$(kubectl --namespace "$NS" get pods -l kask.dev/job=bad \
  --field-selector=status.phase=Failed -o name | wc -l)
job_reason=$(kubectl --namespace "$NS" get jobs -l kask.dev/job=bad \
  -o jsonpath='{.items[*].status.conditions[?(@.type=="Failed")].reason}')
if ((failed_pods == 1)) && [[ "$job_reason" == PodFailurePolicy ]]; then
  ok "$name (retries: 3; the stage Job failed by its $job_reason)"
else
  fail "$name" "$failed_pods failed pods, stage Job failed by '$job_reason'"
fi

name="a pod evicted through the Eviction API does not count as a retry"
# retries 0: a counted failure would fail the job.
apply_job evicted "$WORK/big.yaml" \
  '.spec.retries = 0 | .spec.resources = {requests: {cpu: "100m"}, limits: {cpu: "200m"}}'
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
