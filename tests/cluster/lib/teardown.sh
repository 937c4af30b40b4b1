# shellcheck shell=bash
# Host preparation at `up` and the complete undo at `down`: processes, pods, network, mounts,
# cgroups and sysctls. `down` works from whatever state a failed `up` or test left, and is
# quiet about what is already gone. Sourced by tests/cluster/cluster.

prepare_host() {
  # Pods route through the bridge into the host and out again: forwarding must be on. The old
  # value is put back at `down`.
  sysctl -n net.ipv4.ip_forward >"$RUN/host/ip_forward"
  sysctl -qw net.ipv4.ip_forward=1
  # CNI creates pod network namespaces here; the ones present now are not ours to remove.
  ls /var/run/netns 2>/dev/null >"$RUN/host/netns-before" || true
  if grep -qE '^nameserver 127\.' /etc/resolv.conf; then
    log "warning: /etc/resolv.conf names a loopback resolver, which pods cannot reach"
  fi
}

# The current node's pods go through the CRI, so CNI's DEL releases their addresses, veths and
# iptables rules.
remove_pods() {
  [[ -S "$NODE_SOCK" ]] && component_pid "containerd$NODE_SUFFIX" >/dev/null || return 0
  [[ -x "$CRICTL_BIN/crictl" ]] || return 0
  crictl_node rmp --all --force >/dev/null 2>&1 ||
    log "crictl rmp failed on $NODE_K_NAME; killing containers directly"
}

# stop_node K: node K's kubelet first (so nothing restarts the pods being removed), its pods,
# its containerd and kube-proxy; for an extra node also its network namespace (with its bridge,
# veth and iptables rules) and its cgroup root.
stop_node() {
  node_env "$1"
  stop_component "kubelet$NODE_SUFFIX"
  remove_pods
  stop_component "kube-proxy$NODE_SUFFIX"
  stop_component "containerd$NODE_SUFFIX"
  [[ -n "$NODE_NETNS" ]] || return 0
  local pid
  for pid in $(node_pids | sort -u); do kill -KILL "$pid" 2>/dev/null || true; done
  ip netns delete "$NODE_NETNS" 2>/dev/null || true
  ip link delete "kaskv$NODE_K" 2>/dev/null || true
  local d
  for d in $(find /sys/fs/cgroup/*"$NODE_CGROUP_ROOT" -depth -type d 2>/dev/null); do
    rmdir "$d" 2>/dev/null || true
  done
}

# Whatever the CRI could not remove: containers by runc's own state, then any process still
# naming the run dir (shims, stray children).
kill_leftovers() {
  local id pid root
  for root in "$RUN/runc/k8s.io" "$RUN"/nodes/*/runc/k8s.io; do
    [[ -d "$root" ]] || continue
    for id in $(runc --root "$root" list -q 2>/dev/null); do
      runc --root "$root" kill --all "$id" KILL 2>/dev/null || true
      runc --root "$root" delete --force "$id" 2>/dev/null || true
    done
  done
  for pid in $(grep -lsF "$RUN/" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
    kill -KILL "$pid" 2>/dev/null || true
  done
}

remove_network() {
  # KUBE-* chains and rules; the flag does only that and exits.
  [[ -x "$KUBE_BIN/kube-proxy" ]] && "$KUBE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  # The bridge plugin's masquerade rules name the network ("kask") in their comment; remove
  # any whose pod was not torn down through CNI, and the per-pod chains they jump to.
  local rule chain
  { iptables -t nat -S POSTROUTING 2>/dev/null | grep -F 'name: \"kask\"' || true; } | while read -r rule; do
    chain=$(grep -oE -- '-j CNI-[0-9a-f]+' <<<"$rule" | cut -d' ' -f2)
    eval "iptables -t nat ${rule/-A /-D }" 2>/dev/null || true
    if [[ -n "$chain" ]]; then
      iptables -t nat -F "$chain" 2>/dev/null || true
      iptables -t nat -X "$chain" 2>/dev/null || true
    fi
  done
  # What kube-proxy's cleanup leaves: the kubelet's canary and masquerade-mark chains.
  local ipt table r
  for ipt in iptables ip6tables; do
    for table in nat filter mangle; do
      { "$ipt" -t "$table" -S 2>/dev/null | grep -E '^-A .*KUBE-' || true; } | while read -r r; do
        eval "$ipt -t $table ${r/-A /-D }" 2>/dev/null || true
      done
      { "$ipt" -t "$table" -S 2>/dev/null | grep -E '^-N KUBE-' || true; } | while read -r _ chain; do
        "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  local ns
  for ns in $(ls /var/run/netns 2>/dev/null); do
    [[ "$ns" == cni-* ]] || continue
    grep -qxF "$ns" "$RUN/host/netns-before" 2>/dev/null && continue
    ip netns delete "$ns" 2>/dev/null || true
  done
  ip link show kask0 >/dev/null 2>&1 && ip link delete kask0
  return 0
}

# Mounts under the run dir (the kubelet's shared root, pod volumes, overlay snapshots, netns
# and shm bind mounts), deepest first.
unmount_all() {
  local m
  for m in $(awk -v run="$RUN" 'index($5, run) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
}

# The kubelet's cgroups (kubepods and its QoS levels), in every v1 hierarchy; rmdir only
# succeeds on empty ones, so nothing live is touched.
remove_cgroups() {
  local d
  for d in $(find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods -depth -type d 2>/dev/null); do
    rmdir "$d" 2>/dev/null || true
  done
}

cmd_down() {
  [[ -e "$RUN" ]] || {
    log "not up"
    return 0
  }
  [[ -f "$RUN/.kask-cluster" ]] || die "$RUN was not made by this script; not touching it"
  local start=$SECONDS c k

  # The extra nodes, then the host's, then the control plane.
  for ((k = $(node_count); k >= 1; k--)); do stop_node "$k"; done
  # Network namespaces of extra nodes the recorded count does not cover.
  for k in $(ls /var/run/netns 2>/dev/null | sed -n 's/^kask-node-\([0-9]\)$/\1/p'); do
    stop_node "$k"
  done
  for c in $(tr ' ' '\n' <<<"$CONTROL_PLANE" | tac); do
    stop_component "$c"
  done
  minio stop >/dev/null 2>&1 || true
  kill_leftovers
  remove_network
  unmount_all
  remove_cgroups
  # The kubelet links every container log into /var/log/containers.
  find /var/log/containers -maxdepth 1 -lname "$RUN/*" -delete 2>/dev/null || true
  if [[ -f "$RUN/host/ip_forward" ]]; then
    sysctl -qw "net.ipv4.ip_forward=$(<"$RUN/host/ip_forward")"
  fi

  # The logs outlive the run dir, for a look after a failed CI run.
  local keep="$CACHE/cluster-logs"
  rm -rf "$keep"
  [[ -d "$RUN/logs" ]] && cp -r "$RUN/logs" "$keep"
  rm -rf "$RUN"
  log "down in $((SECONDS - start))s (component logs kept in $keep)"
}
