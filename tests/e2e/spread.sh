# shellcheck shell=bash
# shellcheck disable=SC2154  # big_rows is the sourcing run's
# A stage's pods spread over the bed's nodes and the result exact, sourced by tests/e2e/run as a
# lane of its own (it sets KASK, NS, PREFIX, WORK, big_rows and $WORK/big.yaml). Needs a bed of
# two nodes or more (`tests/cluster/cluster up --nodes 2`, as tests/run starts it).

nodes=$(ready_nodes)
if ((nodes < 2)); then
  fail "a stage's pods spread over the nodes" "$nodes node(s) Ready: it needs a bed of two or more (tests/cluster/cluster up --nodes 2)"
else
  name="a stage's pods spread over the $nodes nodes; the result is exact"
  json=$(job_json "$WORK/big.yaml" spread out/spread '.spec.workers = 4')
  kubectl apply -f - <<<"$json" >/dev/null
  if kubectl --namespace "$NS" wait --for=condition=Complete daskjob/spread --timeout=240s >/dev/null; then
    got=$(counted_rows out/spread)
    on=$(stage_nodes spread s0-scan-g)
    if [[ "$got" == "$big_rows" && $(wc -w <<<"$on") -ge 2 ]]; then
      ok "$name ($got rows; stage s0 on $on)"
    else
      fail "$name" "counted $got rows (expected $big_rows); stage s0 ran on '$on'"
    fi
  else
    fail "$name" "not Complete: $(dj_field spread '{.status.message}')"
  fi
fi
