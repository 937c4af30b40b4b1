# shellcheck shell=bash
# The bed's processes and its control plane: each component is a background process with its
# log in $RUN/logs and its pid in $RUN/pids, started in dependency order and checked before the
# next one starts. The nodes' own components are in node.sh. Sourced by tests/cluster/cluster.

# spawn NAME PROGRAM ARGS...: starts PROGRAM in its own session (so a Ctrl-C of the caller does
# not reach it) and records "pid program" for `down`.
spawn() { spawn_in "" "$@"; }

# spawn_in NETNS NAME PROGRAM ARGS...: spawn, inside the network namespace NETNS unless it is
# empty. Only the network is entered: a node's kubelet and containerd must share the host's
# mounts (`ip netns exec` would give each its own, and the kubelet's volume mounts would not
# reach the containers).
spawn_in() {
  local netns=$1 name=$2 pid want log
  shift 2
  # Appended, not replaced: a node started again (node-start) keeps the log of the run that
  # died, which is the one a failure needs.
  log="$RUN/logs/$name.log"
  echo "--- $name started at $(date -u +%FT%TZ)" >>"$log"
  if [[ -n "$netns" ]]; then
    setsid nsenter --net="/var/run/netns/$netns" -- "$@" </dev/null >>"$log" 2>&1 &
  else
    setsid "$@" </dev/null >>"$log" 2>&1 &
  fi
  pid=$!
  echo "$pid $1" >"$RUN/pids/$name"
  # Until the background shell has exec'd the program, its pid runs bash, setsid or nsenter,
  # and component_pid would take the component for dead: wait for the exec (or the exit).
  want=$(readlink -f "$1")
  for _ in $(seq 1 100); do
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$want" ]] && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.02
  done
}

# The pid of component NAME if it still runs the program it was started with (a recycled pid
# belonging to something else is never signalled).
component_pid() {
  local pid prog
  [[ -f "$RUN/pids/$1" ]] || return 1
  read -r pid prog <"$RUN/pids/$1"
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$(readlink -f "$prog")" ]] || return 1
  echo "$pid"
}

# wait_until SECONDS WHAT COMPONENT COMMAND...: polls COMMAND every 0.2 s; fails with the
# component's log tail when it does not succeed in time or the component died.
wait_until() {
  local limit=$1 what=$2 comp=$3 deadline
  shift 3
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ! component_pid "$comp" >/dev/null; then
      tail -n 25 "$RUN/logs/$comp.log" >&2 || true
      die "$comp exited while waiting for $what (log: $RUN/logs/$comp.log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 25 "$RUN/logs/$comp.log" >&2 || true
      die "timed out after ${limit}s waiting for $what (log: $RUN/logs/$comp.log)"
    fi
    sleep 0.2
  done
}

admin_kubectl() { kubectl --kubeconfig "$PKI/admin.kubeconfig" "$@"; }
admin_helm() { "$HELM_BIN/helm" --kubeconfig "$PKI/admin.kubeconfig" "$@"; }

start_etcd() {
  # Disposable data: no fsync, which is most of etcd's latency on a shared disk.
  spawn etcd "$ETCD_BIN/etcd" --name "$NODE_NAME" --data-dir "$RUN/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$NODE_NAME=http://127.0.0.1:2380" --unsafe-no-fsync
  wait_until 30 "etcd health" etcd curl -fsS http://127.0.0.1:2379/health
}

start_apiserver() {
  # Node,RBAC: the operator's roles are enforced as on a real cluster. Kubelet serving certs
  # are verified against our CA, at the node's IP (there is no DNS for its name). Aggregator
  # routing sends webhook calls to pod IPs directly.
  spawn kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --advertise-address="$NODE_IP" --bind-address=0.0.0.0 --secure-port=6443 \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --service-account-issuer="$SA_ISSUER" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --enable-aggregator-routing=true \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --cert-dir="$RUN/apiserver" --profiling=false --v=1
  wait_until 60 "the API server's /readyz" kube-apiserver admin_kubectl get --raw /readyz
}

start_controller_manager() {
  spawn kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true --leader-elect=false --bind-address=127.0.0.1 \
    --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false --v=1 \
    --node-monitor-grace-period="${NODE_GRACE_SECONDS}s"
}

start_scheduler() {
  cat >"$RUN/config/scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $PKI/scheduler.kubeconfig
leaderElection:
  leaderElect: false
EOF
  spawn kube-scheduler "$KUBE_BIN/kube-scheduler" --config="$RUN/config/scheduler.yaml" \
    --authentication-kubeconfig="$PKI/scheduler.kubeconfig" \
    --authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --profiling=false --v=1
}

# stop_component NAME: TERM, then KILL after 10 s; quiet when it is not running.
stop_component() {
  local pid i
  pid=$(component_pid "$1") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    # Gone, or a zombie (no exe link) that only its long-gone parent could have reaped.
    [[ -n "$(readlink "/proc/$pid/exe" 2>/dev/null)" ]] || return 0
    sleep 0.1
  done
  log "$1 (pid $pid) still up 10s after TERM; killing"
  kill -KILL "$pid" 2>/dev/null || true
}
