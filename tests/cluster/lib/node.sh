# shellcheck shell=bash
# The bed's nodes: each is a containerd, a kubelet and a kube-proxy of its own. Node 1 is the
# host itself, as it always was; nodes 2..N (`up --nodes N`) each live in a network namespace
# of their own (a veth to the host, the host routing between them), with their own containerd
# root, CNI bridge and pod range, and their own cgroup root, so that N kubelets share one
# machine without seeing each other's pods. Sourced by tests/cluster/cluster.

# Addresses: node k (k >= 2) is 10.250.k.2 behind the host's 10.250.k.1; its pods are
# 10.244.(k-1).0/24, routed by the host.
readonly CLUSTER_POD_CIDR="10.244.0.0/16"
readonly MAX_NODES=9

# node_env K: the NODE_* variables of node K (its name, address, directories, pod range,
# bridge, network namespace and cgroup root).
node_env() {
  local k=$1
  NODE_K=$k
  NODE_POD_CIDR="10.244.$((k - 1)).0/24"
  NODE_BRIDGE="kask$((k - 1))"
  if ((k == 1)); then
    NODE_K_NAME=$NODE_NAME
    NODE_K_IP=$NODE_IP
    NODE_DIR=$RUN
    NODE_SUFFIX=""
    NODE_NETNS=""
    NODE_CGROUP_ROOT="/"
  else
    NODE_K_NAME="$NODE_NAME-$k"
    NODE_K_IP="10.250.$k.2"
    NODE_DIR="$RUN/nodes/$k"
    NODE_SUFFIX="-$k"
    NODE_NETNS="kask-node-$k"
    NODE_CGROUP_ROOT="/kask-node-$k"
  fi
  NODE_SOCK="$NODE_DIR/containerd/containerd.sock"
}

# How many nodes this bed has (1 before `up` records it).
node_count() {
  if [[ -f "$RUN/node-count" ]]; then cat "$RUN/node-count"; else echo 1; fi
}

# in_node COMMAND...: COMMAND inside the current node's network (the host's for node 1).
in_node() {
  if [[ -n "$NODE_NETNS" ]]; then
    nsenter --net="/var/run/netns/$NODE_NETNS" -- "$@"
  else
    "$@"
  fi
}

crictl_node() { "$CRICTL_BIN/crictl" --runtime-endpoint "unix://$NODE_SOCK" --timeout 20s "$@"; }

# The node's network namespace, its veth to the host and the host's route to its pods.
add_node_network() {
  [[ -n "$NODE_NETNS" ]] || return 0
  local host_if="kaskv$NODE_K"
  ip netns add "$NODE_NETNS"
  ip link add "$host_if" type veth peer name eth0 netns "$NODE_NETNS"
  ip addr add "10.250.$NODE_K.1/24" dev "$host_if"
  ip link set "$host_if" up
  in_node ip link set lo up
  in_node ip addr add "$NODE_K_IP/24" dev eth0
  in_node ip link set eth0 up
  in_node sysctl -qw net.ipv4.ip_forward=1
  add_node_routes
}

# The node's default route through the host, and the host's route to its pods. A veth taken
# down (node-kill) loses its routes, so node-start sets them again.
add_node_routes() {
  in_node ip route replace default via "10.250.$NODE_K.1"
  ip route replace "$NODE_POD_CIDR" via "$NODE_K_IP"
}

# The node's cgroup root in every hierarchy; a new cpuset must be given its CPUs and memory
# nodes before anything can join it.
add_node_cgroups() {
  [[ "$NODE_CGROUP_ROOT" != / ]] || return 0
  local h
  for h in /sys/fs/cgroup/*/; do
    mountpoint -q "$h" || continue
    mkdir -p "$h${NODE_CGROUP_ROOT#/}"
  done
  if [[ -d /sys/fs/cgroup/cpuset ]]; then
    cp /sys/fs/cgroup/cpuset/cpuset.cpus "/sys/fs/cgroup/cpuset$NODE_CGROUP_ROOT/cpuset.cpus"
    cp /sys/fs/cgroup/cpuset/cpuset.mems "/sys/fs/cgroup/cpuset$NODE_CGROUP_ROOT/cpuset.mems"
  fi
}

# A containerd of the node's own (own root, state, socket and CRI config) beside any system one.
start_containerd() {
  mkdir -p "$NODE_DIR/cni/net.d" "$NODE_DIR/config"
  # One bridge network; host-local keeps its leases in the run dir, so `down` forgets them.
  jq -n --arg subnet "$NODE_POD_CIDR" --arg data "$NODE_DIR/cni/ipam" --arg bridge "$NODE_BRIDGE" '{
    cniVersion: "1.0.0", name: "kask",
    plugins: [
      {type: "bridge", bridge: $bridge, isGateway: true, ipMasq: true, hairpinMode: true,
       ipam: {type: "host-local", ranges: [[{subnet: $subnet}]], routes: [{dst: "0.0.0.0/0"}],
              dataDir: $data}},
      {type: "portmap", capabilities: {portMappings: true}}
    ]}' >"$NODE_DIR/cni/net.d/10-kask.conflist"

  cat >"$NODE_DIR/config/containerd.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$NODE_SOCK"

[ttrpc]
  address = "$NODE_DIR/containerd/ttrpc.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"

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
        Root = "$NODE_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
    max_conf_num = 1
EOF
  spawn_in "$NODE_NETNS" "containerd$NODE_SUFFIX" /usr/bin/containerd \
    --config "$NODE_DIR/config/containerd.toml"
  wait_until 30 "containerd's socket on $NODE_K_NAME" "containerd$NODE_SUFFIX" \
    ctr --address "$NODE_SOCK" version
}

start_kubelet() {
  local kubelet=kubelet serving=kubelet-serving
  if ((NODE_K > 1)); then
    kubelet="kubelet$NODE_SUFFIX"
    serving="kubelet-serving$NODE_SUFFIX"
  fi
  cat >"$NODE_DIR/config/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$NODE_SOCK
# No systemd here: cgroupfs, matching containerd's SystemdCgroup = false.
cgroupDriver: cgroupfs
# Each node's pods under a root of its own, so kubelets on one machine keep apart.
cgroupRoot: $NODE_CGROUP_ROOT
# The host uses cgroup v1 (hybrid); Kubernetes 1.35+ would refuse it without this.
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $PKI/$serving.crt
tlsPrivateKeyFile: $PKI/$serving.key
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
podLogsDir: $NODE_DIR/pod-logs
# Status changes reach the API server sooner, which is most of a short test's wall time.
nodeStatusUpdateFrequency: 4s
# A lease renewed every 5 s, so that a lost node is noticed within the controller manager's
# grace period of $NODE_GRACE_SECONDS s (not the default 50).
nodeLeaseDurationSeconds: 20
syncFrequency: 10s
serializeImagePulls: false
EOF
  spawn_in "$NODE_NETNS" "kubelet$NODE_SUFFIX" "$KUBE_BIN/kubelet" \
    --config="$NODE_DIR/config/kubelet.yaml" \
    --kubeconfig="$PKI/$kubelet.kubeconfig" --hostname-override="$NODE_K_NAME" \
    --node-ip="$NODE_K_IP" --root-dir="$NODE_DIR/kubelet" \
    --volume-plugin-dir="$NODE_DIR/kubelet/volume-plugins" --v=1
  wait_until 60 "kubelet healthz on $NODE_K_NAME" "kubelet$NODE_SUFFIX" \
    in_node curl -fsS http://127.0.0.1:10248/healthz
}

# kube-proxy in iptables mode, so Service IPs work: pods reach the API server at 10.96.0.1.
start_kube_proxy() {
  cat >"$NODE_DIR/config/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $PKI/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $CLUSTER_POD_CIDR
hostnameOverride: $NODE_K_NAME
bindAddress: $NODE_K_IP
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
  spawn_in "$NODE_NETNS" "kube-proxy$NODE_SUFFIX" "$KUBE_BIN/kube-proxy" \
    --config="$NODE_DIR/config/kube-proxy.yaml" --v=1
  wait_until 30 "kube-proxy healthz on $NODE_K_NAME" "kube-proxy$NODE_SUFFIX" \
    in_node curl -fsS http://127.0.0.1:10256/healthz
}

# start_node K: node K's network, containerd with the base images, kubelet and kube-proxy.
start_node() {
  node_env "$1"
  mkdir -p "$NODE_DIR"
  add_node_network
  add_node_cgroups
  start_containerd
  load_image_on_node "$(cmd_image pause)"
  load_image_on_node "$(cmd_image toolbox)"
  start_kubelet
  start_kube_proxy
}

wait_nodes_ready() {
  local k
  for ((k = 1; k <= $(node_count); k++)); do
    node_env "$k"
    wait_until 90 "node $NODE_K_NAME Ready" "kubelet$NODE_SUFFIX" \
      admin_kubectl wait --for=condition=Ready "node/$NODE_K_NAME" --timeout=2s
  done
}

# The node's processes: the kubelet, containerd, kube-proxy, every shim and every container.
node_pids() {
  local c pid
  for c in kubelet containerd kube-proxy; do
    component_pid "$c$NODE_SUFFIX" || true
  done
  # Shims name their containerd's socket; containers sit in the node's cgroups.
  grep -lsF "$NODE_DIR/containerd/" /proc/[0-9]*/cmdline | cut -d/ -f3 || true
  if [[ "$NODE_CGROUP_ROOT" != / ]]; then
    find "/sys/fs/cgroup/pids$NODE_CGROUP_ROOT" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  fi
}

# extra_node VERB K: K names one of the nodes that can be lost (not the first: it holds the
# control plane and MinIO).
extra_node() {
  if ! [[ "$2" =~ ^[0-9]+$ ]] || (($2 < 2 || $2 > $(node_count))); then
    die "$1: which node? (2..$(node_count); node 1 holds the control plane)"
  fi
}

# cmd_node_kill K: node K is lost as a machine is: every process of it killed at once and its
# network cut. The API server finds out only by the node's missing heartbeats.
cmd_node_kill() {
  local k=${1:-}
  extra_node node-kill "$k"
  node_env "$k"
  ip link set "kaskv$k" down
  local pid
  for pid in $(node_pids | sort -u); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  log "node $NODE_K_NAME killed: processes gone, network cut"
}

# cmd_node_start K: a killed node back: its network, then containerd, kubelet and kube-proxy.
cmd_node_start() {
  local k=${1:-}
  extra_node node-start "$k"
  node_env "$k"
  ip link set "kaskv$k" up
  add_node_routes
  component_pid "containerd$NODE_SUFFIX" >/dev/null || start_containerd
  component_pid "kubelet$NODE_SUFFIX" >/dev/null || start_kubelet
  component_pid "kube-proxy$NODE_SUFFIX" >/dev/null || start_kube_proxy
  wait_until 90 "node $NODE_K_NAME Ready" "kubelet$NODE_SUFFIX" \
    admin_kubectl wait --for=condition=Ready "node/$NODE_K_NAME" --timeout=2s
  log "node $NODE_K_NAME back and Ready"
}
