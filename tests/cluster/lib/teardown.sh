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

crictl_node() { "$CRICTL_BIN/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 20s "$@"; }

# Pods go through the CRI, so CNI's DEL releases their addresses, veths and iptables rules.
remove_pods() {
  [[ -S "$CONTAINERD_SOCK" ]] && component_pid containerd >/dev/null || return 0
  [[ -x "$CRICTL_BIN/crictl" ]] || return 0
  crictl_node rmp --all --force >/dev/null 2>&1 || log "crictl rmp failed; killing containers directly"
}

# Whatever the CRI could not remove: containers by runc's own state, then any process still
# naming the run dir (shims, stray children).
kill_leftovers() {
  local id pid
  if [[ -d "$RUN/runc" ]]; then
    for id in $(runc --root "$RUN/runc/k8s.io" list -q 2>/dev/null); do
      runc --root "$RUN/runc/k8s.io" kill --all "$id" KILL 2>/dev/null || true
      runc --root "$RUN/runc/k8s.io" delete --force "$id" 2>/dev/null || true
    done
  fi
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
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
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
  local start=$SECONDS c

  # The kubelet first, so nothing restarts the pods being removed.
  stop_component kubelet
  remove_pods
  for c in $(tr ' ' '\n' <<<"$COMPONENTS" | tac); do
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
