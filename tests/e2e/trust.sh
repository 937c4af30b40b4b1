# shellcheck shell=bash
# End-to-end tests of the output protocol on the test bed, sourced by tests/e2e/run as a lane of
# its own (it sets KASK, NS, PREFIX and WORK): an invalid spec gets no pod, and a commit killed
# after `_SUCCESS` or whose Job is deleted still ends Succeeded. The operator killed again and
# again is in disruptive.sh.

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
