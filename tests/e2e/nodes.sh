# shellcheck shell=bash
# shellcheck disable=SC2154  # big_rows is the sourcing run's
# More than one machine: a node lost mid-stage and a node drained mid-stage, each job still
# exact (a stage's pods spreading over the nodes is spread.sh's). Needs a bed of two nodes or
# more (`tests/cluster/cluster up --nodes 2`, as tests/run starts it); node 2 is the one lost.
# Sourced by tests/e2e/run after the big table is uploaded; uses its helpers and variables.

readonly LOST_NODE=kask-node-2
cluster=tests/cluster/cluster

# Waits up to $1 seconds for node 2's Ready condition to leave True (it turns Unknown when the
# kubelet's heartbeats stop).
node_lost() {
  local deadline=$((SECONDS + $1))
  until [[ "$(kubectl get node "$LOST_NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" != True ]]; do
    ((SECONDS > deadline)) && return 1
    sleep 1
  done
}

# The node back as it was: running, schedulable, Ready, and its pods reachable from the host
# (the API server reaches webhooks and kubelets there).
restore_node() {
  # The bed's own restart, not Kask under test: a second try when the first fails, said aloud,
  # with what node-start printed (its kubelet's log tail) kept for the failure message.
  local try
  for try in 1 2; do
    "$cluster" node-start 2 >"$WORK/node-start.log" 2>&1 && break
    echo "e2e: node-start 2 failed (try $try): $(tail -n 8 "$WORK/node-start.log" | tr '\n' ' ' | cut -c1-600)"
    sleep 5
  done
  kubectl uncordon "$LOST_NODE" >/dev/null 2>&1 || true
  kubectl wait --for=condition=Ready "node/$LOST_NODE" --timeout=90s >/dev/null 2>&1 &&
    [[ "$(ip route get 10.244.1.1)" == *"via 10.250.2.2"* ]]
}

# A slow stage (a fifth of a core per pod) of two pods, so that one of them is on node 2 while
# it works; JQ-EXPR adds to it.
slow_big_job() { # NAME [JQ-EXPR]
  job_json "$WORK/big.yaml" "$1" "out/$1" \
    ".spec.workers = 2 | .spec.resources = {requests: {cpu: \"100m\"}, limits: {cpu: \"200m\"}} | ${2:-.}"
}

nodes=$(ready_nodes)
if ((nodes < 2)); then
  fail "the multi-node tests" "$nodes node(s) Ready: they need a bed of two or more (tests/cluster/cluster up --nodes 2)"
else
  name="a node lost mid-stage: its pods are evicted and released, its tasks run elsewhere, every row counted once"
  # Evicted 5 s after the node turns unreachable (the default is 300 s); no one acts on the
  # node: the operator must release the pods that its dead kubelet can never end.
  short='.spec.podTemplate.tolerations = [
    {key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute", tolerationSeconds: 5},
    {key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: 5}]'
  kubectl apply -f - <<<"$(slow_big_job lost-node "$short")" >/dev/null
  if pod=$(running_pod lost-node s0-scan-g 180 "$LOST_NODE") && first_commit lost-node 60; then
    lost_at=$SECONDS
    "$cluster" node-kill 2 >/dev/null
    if node_lost 90; then
      if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/lost-node --timeout=360s >/dev/null; then
        got=$(counted_rows out/lost-node)
        stranded=$(kubectl --namespace "$NS" get events --field-selector reason=PodStranded \
          -o jsonpath='{range .items[*]}{.note}{.message}{"\n"}{end}' | grep -c "${pod#pod/}" || true)
        if [[ "$got" == "$big_rows" && "$stranded" -ge 1 ]]; then
          ok "$name ($got rows; ${pod#pod/} lost with $LOST_NODE and released, done $((SECONDS - lost_at))s later)"
        else
          fail "$name" "counted $got rows (expected $big_rows); $stranded PodStranded event(s) for ${pod#pod/}"
        fi
      else
        fail "$name" "not Complete after the node was lost: $(dj_field lost-node '{.status.message}')"
      fi
    else
      fail "$name" "$LOST_NODE still Ready 90s after it was killed"
    fi
  else
    fail "$name" "no pod of stage s0-scan-g working on $LOST_NODE"
  fi
  restore_node || fail "node $LOST_NODE back after the loss" "not Ready: $("$cluster" status 2>&1 | tail -n 12)"

  name="a node drained mid-stage: its tasks move to another node, every row counted once"
  kubectl apply -f - <<<"$(slow_big_job drained)" >/dev/null
  if pod=$(running_pod drained s0-scan-g 180 "$LOST_NODE") && first_commit drained 60; then
    if kubectl drain "$LOST_NODE" --ignore-daemonsets --delete-emptydir-data --timeout=180s >/dev/null 2>&1; then
      if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/drained --timeout=300s >/dev/null; then
        got=$(counted_rows out/drained)
        failures=$(dj_field drained '{.status.stages[0].failed}')
        on=$(stage_nodes drained s0-scan-g)
        if [[ "$got" == "$big_rows" && "$on" != *"$LOST_NODE"* ]]; then
          ok "$name ($got rows; ${pod#pod/} evicted, stage s0 finished on $on, ${failures:-0} failed pod(s))"
        else
          fail "$name" "counted $got rows (expected $big_rows); stage s0's pods left on '$on'"
        fi
      else
        fail "$name" "not Complete after the drain: $(dj_field drained '{.status.message}')"
      fi
    else
      fail "$name" "kubectl drain $LOST_NODE did not finish"
    fi
  else
    fail "$name" "no pod of stage s0-scan-g working on $LOST_NODE"
  fi
  restore_node || fail "node $LOST_NODE back after the drain" "not Ready: $("$cluster" status 2>&1 | tail -n 12)"
fi
