# shellcheck shell=bash
# The kask CLI against the test bed, sourced by tests/e2e/run as a lane of its own (it sets
# KASK, NS, PREFIX and WORK): submit --watch, status, logs, list, delete and the dashboard.

name="kask submit --watch, kask status and kask logs"
job_json examples/groupby.yaml cli out/cli >"$WORK/cli.json"
if out=$("$KASK" submit "$WORK/cli.json" --namespace "$NS" --watch 2>&1) &&
  [[ "$out" == *"daskjob/cli succeeded: wrote 40 rows"* ]]; then
  table=$("$KASK" status cli --namespace "$NS" 2>&1)
  logs=$("$KASK" logs cli --namespace "$NS" --stage s0-scan-orders --task 0 2>&1)
  if [[ "$table" == *"Phase:      Succeeded"* && "$table" == *"s0-scan-orders"* &&
    "$logs" == "==> pod/cli-s0-"* && "$logs" == *"running a task group"* ]]; then
    ok "$name"
  else
    fail "$name" "status: ${table:0:300}; logs: ${logs:0:300}"
  fi
else
  fail "$name" "submit --watch: ${out:0:300}"
fi

name="kask dashboard lists the cluster's DaskJobs and shows a job's status and history"
where=(--endpoint "$KASK_S3_ENDPOINT" --region us-east-1 --allow-http)
"$KASK" dashboard --listen 127.0.0.1:0 "${where[@]}" 2>"$WORK/dashboard.log" &
dashboard=$!
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's|^dashboard: \(http://[^ ]*\).*|\1|p' "$WORK/dashboard.log")
  [[ -n "$url" ]] && break
  sleep 0.1
done
attempts=$(s3_keys "$PREFIX/out/cli/_kask/history/" | grep -c '/attempts/' || true)
if [[ -n "$url" ]] && listed=$(curl -fsS "${url}api/jobs") &&
  view=$(curl -fsS "${url}view/jobs/$NS/cli") && page=$(curl -fsS "${url}jobs/$NS/cli"); then
  phase=$(jq -r --arg ns "$NS" '.[] | select(.namespace == $ns and .name == "cli") | .phase' <<<"$listed")
  bars=$(grep -o '<rect class="attempt ' <<<"$view" | wc -l)
  missing=$(curl -s -o /dev/null -w '%{http_code}' "${url}view/jobs/$NS/no-such-job")
  if [[ "$phase" == Succeeded && "$page" == *'data-src="/view/jobs/'"$NS"'/cli"'* ]] &&
    ((attempts > 0 && bars == attempts)) && [[ "$view" == *'data-outcome="succeeded"'* &&
    "$view" == *'<table class="stages">'* && "$missing" == 404 ]]; then
    ok "$name ($(jq length <<<"$listed") jobs listed; $bars attempts drawn)"
  else
    fail "$name" "phase '$phase'; $bars bars for $attempts attempts; missing job: HTTP $missing; view: ${view:0:300}"
  fi
else
  fail "$name" "no answer from the dashboard at '$url': $(cat "$WORK/dashboard.log")"
fi
kill "$dashboard" 2>/dev/null
wait "$dashboard" 2>/dev/null

name="kask submit of a name that exists says what to do; kask list shows the job; kask delete removes it"
again=$("$KASK" submit "$WORK/cli.json" --namespace "$NS" 2>&1)
again_rc=$?
listed=$("$KASK" list --namespace "$NS" 2>&1)
row=$(grep '^cli ' <<<"$listed")
everywhere=$("$KASK" list -A 2>&1)
if ((again_rc != 0)) && [[ "$again" == *"already exists"* && "$again" == *"kask delete cli -n $NS"* &&
  "$listed" == "NAME "*" PHASE "* && "$row" == *" Succeeded "*" 40 "* &&
  "$everywhere" == *"$NS "*"cli "* ]] &&
  "$KASK" delete cli --namespace "$NS" >/dev/null &&
  kubectl --namespace "$NS" wait --for=delete daskjob/cli --timeout=60s >/dev/null; then
  ok "$name"
else
  fail "$name" "submit again ($again_rc): ${again:0:300}; list: ${listed:0:300}"
fi

name="kask submit --watch of a failing job exits non-zero with the status message"
job_json examples/groupby.yaml cli-bad out/cli-bad '.spec.dataframe.inputs.orders.path = "bad/orders/*.csv"' >"$WORK/cli-bad.json"
if out=$("$KASK" submit "$WORK/cli-bad.json" --namespace "$NS" --watch 2>&1); then
  fail "$name" "exit 0: ${out:0:300}"
elif [[ "$out" == *"failed: stage s0-scan-orders"*"bad/orders/bad.csv"* ]]; then
  ok "$name"
else
  fail "$name" "output: ${out:0:400}"
fi
