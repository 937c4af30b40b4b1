# shellcheck shell=bash
# The node's processes: each component is a background process with its log in $RUN/logs and
# its pid in $RUN/pids, started in dependency order and checked before the next one starts.
# Sourced by tests/cluster/cluster.

# spawn NAME PROGRAM ARGS...: starts PROGRAM in its own session (so a Ctrl-C of the caller does
# not reach it) and records "pid program" for `down`.
spawn() {
  local name=$1 pid want
  shift
  setsid "$@" </dev/null >"$RUN/logs/$name.log" 2>&1 &
  pid=$!
  echo "$pid $1" >"$RUN/pids/$name"
  # Until the background shell has exec'd the program, its pid runs bash or setsid, and
  # component_pid would take the component for dead: wait for the exec (or the exit).
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
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --enable-aggregator-routing=true --cert-dir="$RUN/apiserver" --profiling=false --v=1
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
    --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false --v=1
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

# A containerd of our own (own root, state, socket and CRI config) beside any system one.
start_containerd() {
  mkdir -p "$RUN/cni/net.d"
  # One bridge network; host-local keeps its leases in the run dir, so `down` forgets them.
  jq -n --arg subnet "$POD_CIDR" --arg data "$RUN/cni/ipam" --arg bridge "$BRIDGE" '{
    cniVersion: "1.0.0", name: "kask",
    plugins: [
      {type: "bridge", bridge: $bridge, isGateway: true, ipMasq: true, hairpinMode: true,
       ipam: {type: "host-local", ranges: [[{subnet: $subnet}]], routes: [{dst: "0.0.0.0/0"}],
              dataDir: $data}},
      {type: "portmap", capabilities: {portMappings: true}}
    ]}' >"$RUN/cni/net.d/10-kask.conflist"

  cat >"$RUN/config/containerd.toml" <<EOF
version = 2
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$RUN/containerd/ttrpc.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  # Our own pause image, imported before the kubelet starts: CRI never pulls it.
  sandbox_image = "$PAUSE_IMAGE"
  # This machine has no hugetlb cgroup.
  tolerate_missing_hugetlb_controller = true
  # These VMs withhold CAP_SYS_RESOURCE even from root, so the negative oom_score_adj the
  # kubelet asks for sandboxes (-998) fails in runc ("can't get final child's PID"). Clamp it
  # to containerd's own score instead, as rootless setups do.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroupfs, as the kubelet: PID 1 here is not systemd.
        SystemdCgroup = false
        # runc's state beside ours, not in the system containerd's /run/containerd/runc.
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
    max_conf_num = 1
EOF
  spawn containerd /usr/bin/containerd --config "$RUN/config/containerd.toml"
  wait_until 30 "containerd's socket" containerd \
    ctr --address "$CONTAINERD_SOCK" version
}

start_kubelet() {
  cat >"$RUN/config/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
# No systemd here: cgroupfs, matching containerd's SystemdCgroup = false.
cgroupDriver: cgroupfs
# The host uses cgroup v1 (hybrid); Kubernetes 1.35+ would refuse it without this.
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
rotateCertificates: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
# Imported images cannot be pulled again: never garbage-collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
podLogsDir: $RUN/pod-logs
# Status changes reach the API server sooner, which is most of a short test's wall time.
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
serializeImagePulls: false
EOF
  spawn kubelet "$KUBE_BIN/kubelet" --config="$RUN/config/kubelet.yaml" \
    --kubeconfig="$PKI/kubelet.kubeconfig" --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" --root-dir="$RUN/kubelet" \
    --volume-plugin-dir="$RUN/kubelet/volume-plugins" --v=1
  wait_until 60 "kubelet healthz" kubelet curl -fsS http://127.0.0.1:10248/healthz
  wait_until 90 "node $NODE_NAME Ready" kubelet \
    admin_kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
}

# kube-proxy in iptables mode, so Service IPs work: pods reach the API server at 10.96.0.1.
start_kube_proxy() {
  cat >"$RUN/config/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $PKI/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Zeros: leave the host's conntrack sysctls alone (as kind and local-up-cluster do).
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  minSyncPeriod: 1s
EOF
  spawn kube-proxy "$KUBE_BIN/kube-proxy" --config="$RUN/config/kube-proxy.yaml" --v=1
  wait_until 30 "kube-proxy healthz" kube-proxy curl -fsS http://127.0.0.1:10256/healthz
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
