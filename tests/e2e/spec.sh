# shellcheck shell=bash
# What a DaskJob's spec controls, sourced by tests/e2e/run as a lane of its own (it sets KASK,
# NS, PREFIX and WORK): suspend, activeDeadlineSeconds, ttlSecondsAfterFinished and the history
# that outlives it, the spec's immutability, what the API server checks and kubectl shows, the
# pod template and service account, and the storage Secret's allow-listed keys. The suspended
# job, once resumed and complete, is the finished groupby job that the later tests read.

# --- suspend and resume --------------------------------------------------------------------------

name="a suspended job runs no pods; resumed, it completes"
json=$(job_json examples/groupby.yaml suspended out/suspended '.spec.suspend = true')
kubectl apply -f - <<<"$json" >/dev/null
if wait_phase suspended 60 Suspended; then
  sleep 2
  pods=$(kubectl --namespace "$NS" get pods -l kask.dev/job=suspended -o name | wc -l)
  kubectl --namespace "$NS" patch daskjob suspended --type=merge -p '{"spec":{"suspend":false}}' >/dev/null
  if ((pods == 0)) && kubectl --namespace "$NS" wait --for=condition=Complete daskjob/suspended --timeout=120s >/dev/null; then
    ok "$name"
  else
    fail "$name" "$pods pods while suspended; phase $(dj_field suspended '{.status.phase}')"
  fi
else
  fail "$name" "not Suspended: phase $(dj_field suspended '{.status.phase}')"
fi

# --- activeDeadlineSeconds ----------------------------------------------------------------------

name="a job past activeDeadlineSeconds fails and its pods stop"
json=$(job_json "$WORK/big.yaml" deadline out/deadline '.spec.activeDeadlineSeconds = 3')
kubectl apply -f - <<<"$json" >/dev/null
if kubectl --namespace "$NS" wait --for=condition=Failed daskjob/deadline --timeout=60s >/dev/null; then
  reason=$(dj_field deadline '{.status.conditions[?(@.type=="Failed")].reason}')
  # Its pods are told to stop; under the lanes' load their termination can take seconds.
  for _ in $(seq 60); do
    running=$(kubectl --namespace "$NS" get pods -l kask.dev/job=deadline --field-selector=status.phase=Running -o name | wc -l)
    ((running == 0)) && break
    sleep 1
  done
  if [[ "$reason" == DeadlineExceeded ]] && ((running == 0)); then
    ok "$name"
  else
    fail "$name" "reason '$reason', $running pods still running"
  fi
else
  fail "$name" "not Failed: phase $(dj_field deadline '{.status.phase}')"
fi

# --- ttlSecondsAfterFinished --------------------------------------------------------------------

name="ttlSecondsAfterFinished deletes a finished job and its Jobs"
json=$(job_json examples/groupby.yaml ttl out/ttl '.spec.ttlSecondsAfterFinished = 2')
kubectl apply -f - <<<"$json" >/dev/null
if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/ttl --timeout=120s >/dev/null &&
  kubectl --namespace "$NS" wait --for=delete daskjob/ttl --timeout=60s >/dev/null; then
  jobs=$(kubectl --namespace "$NS" get jobs -l kask.dev/job=ttl -o name | wc -l)
  deadline=$((SECONDS + 30))
  while ((jobs > 0 && SECONDS < deadline)); do
    sleep 0.5
    jobs=$(kubectl --namespace "$NS" get jobs -l kask.dev/job=ttl -o name | wc -l)
  done
  if ((jobs == 0)); then ok "$name"; else fail "$name" "$jobs Jobs left"; fi
  # The job's history outlives it: its report and its pods' logs, from the storage alone.
  name="after the TTL, kask report and kask logs read the job's history from its storage"
  where=(--endpoint "$KASK_S3_ENDPOINT" --region us-east-1 --allow-http)
  attempts=$(s3_keys "$PREFIX/out/ttl/_kask/history/" | grep -c '/attempts/' || true)
  if "$KASK" report "$STORAGE_URL/out/ttl" "${where[@]}" -o "$WORK/ttl-report.html" >/dev/null &&
    "$KASK" logs "$STORAGE_URL/out/ttl" "${where[@]}" >"$WORK/ttl-logs.txt"; then
    bars=$(grep -o '<rect class="attempt ' "$WORK/ttl-report.html" | wc -l)
    pods=$(grep -c '^==> ' "$WORK/ttl-logs.txt" || true)
    if ((attempts > 0 && bars == attempts && pods >= 3)) &&
      grep -q 'data-outcome="succeeded"' "$WORK/ttl-report.html" &&
      grep -q 'running a task group' "$WORK/ttl-logs.txt"; then
      ok "$name ($bars attempts, logs of $pods pods)"
    else
      fail "$name" "$bars bars for $attempts attempt records; logs of $pods pods"
    fi
  else
    fail "$name" "kask report or kask logs failed"
  fi
else
  fail "$name" "not Complete then deleted: phase $(dj_field ttl '{.status.phase}')"
fi

# --- the spec is immutable ----------------------------------------------------------------------

name="a spec change after creation is refused"
out=$(kubectl --namespace "$NS" patch daskjob suspended --type=merge -p '{"spec":{"workers":7}}' 2>&1)
if [[ $? -ne 0 && "$out" == *"cannot change after creation"* ]]; then
  ok "$name"
else
  fail "$name" "patch answered: $out"
fi

# --- what the API server checks, and what kubectl shows ---------------------------------------

name="the API server refuses two job kinds and a step with two keys, saying which rule"
two_kinds=$(job_json examples/groupby.yaml two-kinds out/two-kinds \
  '.spec.bag = {inputs: {b: {path: "x/*.jsonl"}}, steps: [{source: "b"}]}' |
  kubectl --namespace "$NS" create --dry-run=server -f - 2>&1)
two_keys=$(job_json examples/groupby.yaml two-keys out/two-keys \
  '.spec.dataframe.pipeline[0].filter = "amount > 1"' |
  kubectl --namespace "$NS" create --dry-run=server -f - 2>&1)
good=$(job_json examples/groupby.yaml fine out/fine | kubectl --namespace "$NS" create --dry-run=server -f - 2>&1)
if [[ "$two_kinds" == *"sets exactly one of spec.dataframe, spec.sql, spec.array, spec.bag"* &&
  "$two_keys" == *"each step of spec.dataframe.pipeline sets exactly one of"* &&
  "$good" == *"created (server dry run)"* ]]; then
  ok "$name"
else
  fail "$name" "two kinds: $two_kinds; two keys: $two_keys; a good job: $good"
fi

name="kubectl explain gives each field's own text, kubectl get the job's workers, rows and duration"
# kubectl wraps descriptions: compare them with their lines joined.
explain=$({ kubectl explain daskjob; kubectl explain daskjob.spec.output.format; } 2>&1 | tr -s ' \n' '  ')
row=$(kubectl --namespace "$NS" get daskjob suspended -o wide --no-headers 2>&1)
read -r _ phase _ workers rows _ duration _ <<<"$row"
if [[ "$explain" == *"A partitioned data job run by Kask"* && "$explain" != *"Auto-generated"* &&
  "$explain" == *"Default: parquet for dataframe jobs"* && "$phase" == Succeeded &&
  "$workers" =~ ^[0-9]+$ && "$rows" =~ ^[0-9]+$ && "$duration" =~ ^[0-9]+(s|m[0-9]+s)$ ]]; then
  ok "$name ($row)"
else
  fail "$name" "kubectl get: $row; explain: $(head -c 600 <<<"$explain")"
fi

# --- a pod template and a service account -----------------------------------------------------

name="a job's pod template and service account reach every pod, under Kask's own fields"
kubectl --namespace "$NS" create serviceaccount lake-reader >/dev/null
json=$(job_json examples/groupby.yaml shaped out/shaped '.spec.serviceAccountName = "lake-reader"
  | .spec.podTemplate = {labels: {team: "risk"}, annotations: {"example.com/owner": "risk"},
                         env: [{name: "KASK_LOG", value: "debug"}]}')
kubectl apply -f - <<<"$json" >/dev/null
if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/shaped --timeout=180s >/dev/null; then
  # Every pod: the template's label, annotation and variable, the account with its token, and
  # Kask's own label, annotation and security context beside them.
  odd=$(kubectl --namespace "$NS" get pods -l kask.dev/job=shaped -o json | jq -r '.items[]
    | select(.metadata.labels.team != "risk" or .metadata.annotations["example.com/owner"] != "risk"
      or .metadata.annotations["kask.dev/daskjob"] == null
      or .spec.serviceAccountName != "lake-reader" or .spec.automountServiceAccountToken != true
      or ([.spec.containers[0].env[] | select(.name == "KASK_LOG") | .value] != ["debug"])
      or .spec.containers[0].securityContext.allowPrivilegeEscalation != false)
    | .metadata.name')
  pods=$(kubectl --namespace "$NS" get pods -l kask.dev/job=shaped -o name | wc -l)
  rows=$(dj_field shaped '{.status.outputRows}')
  want=$(dj_field suspended '{.status.outputRows}')
  if ((pods >= 3)) && [[ -z "$odd" && -n "$rows" && "$rows" == "$want" ]]; then
    ok "$name ($pods pods, $rows rows)"
  else
    fail "$name" "$pods pods; not shaped: ${odd:-none}; $rows rows, want $want"
  fi
else
  fail "$name" "not Complete: phase $(dj_field shaped '{.status.phase}'): $(dj_field shaped '{.status.message}')"
fi

# --- the Secret's keys ---------------------------------------------------------------------------

name="worker pods get only the allow-listed keys of the storage Secret"
env_names=$(kubectl --namespace "$NS" get jobs -l kask.dev/job=suspended -o json |
  jq -r '[.items[].spec.template.spec.containers[].env[]? | select(.valueFrom.secretKeyRef) | .name] | unique | join(",")')
if [[ "$env_names" == *AWS_SECRET_ACCESS_KEY* && "$env_names" != *NOT_ALLOWED* ]]; then
  ok "$name"
else
  fail "$name" "secret env: $env_names"
fi

