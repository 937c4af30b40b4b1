# shellcheck shell=bash
# Kueue on the test bed: its manager built from the Go module proxy (pinned, cached like the
# other components), an image made from it, and Kueue's own Helm chart (which comes with the
# module) installed with only the batch/Job integration, the one Kask's Jobs go through.
# Sourced by tests/cluster/cluster.

readonly KUEUE_VERSION="v0.17.0"
readonly KUEUE_BIN="$CACHE/bin/kueue-$KUEUE_VERSION-$GO_VERSION"
readonly KUEUE_IMAGE_REPO="localhost/kueue"
readonly KUEUE_NAMESPACE=kueue-system

# The manager, and the chart from the same module (its source is in the module cache).
build_kueue() {
  local tmp="$KUEUE_BIN.tmp" dir
  rm -rf "$tmp" "$KUEUE_BIN"
  mkdir -p "$tmp"
  go_env GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION" || return 1
  dir=$(go_env go mod download -json "sigs.k8s.io/kueue@$KUEUE_VERSION" | jq -r .Dir) || return 1
  cp -r "$dir/charts/kueue" "$tmp/chart"
  chmod -R u+w "$tmp/chart"
  mv "$tmp" "$KUEUE_BIN"
}

# The manager's image: the static binary at /manager, where the chart runs it.
image_kueue() {
  local rootfs out="$IMAGE_DIR/kueue.tar"
  rootfs=$(mktemp -d)
  base_rootfs "$rootfs"
  put_program "$rootfs" "$KUEUE_BIN/kueue" /manager
  write_oci "$KUEUE_IMAGE_REPO:$KUEUE_VERSION" "$rootfs" "$out" '["/manager"]' "$IMAGE_UID:$IMAGE_UID"
  rm -rf "$rootfs"
  echo "$out"
}

cmd_install_kueue() {
  cluster_up || die "install-kueue: the cluster is not up: run '$0 up'"
  once "$KUEUE_BIN" "Kueue $KUEUE_VERSION" build_kueue
  mkdir -p "$IMAGE_DIR"
  cmd_load_image "$(image_kueue)"
  # Only batch/Job: the other integrations watch kinds this cluster lacks. One replica, so no
  # leader election.
  local values="$RUN/config/kueue-values.yaml" probe="$RUN/config/kueue-probe.yaml"
  cat >"$values" <<EOF
controllerManager:
  replicas: 1
  manager:
    image: {repository: $KUEUE_IMAGE_REPO, tag: $KUEUE_VERSION, pullPolicy: IfNotPresent}
managerConfig:
  controllerManagerConfigYaml: |-
    apiVersion: config.kueue.x-k8s.io/v1beta2
    kind: Configuration
    health: {healthProbeBindAddress: ":8081"}
    metrics: {bindAddress: ":8443"}
    webhook: {port: 9443}
    leaderElection: {leaderElect: false}
    controller:
      groupKindConcurrency: {Job.batch: 5, Workload.kueue.x-k8s.io: 5, LocalQueue.kueue.x-k8s.io: 1, ClusterQueue.kueue.x-k8s.io: 1, ResourceFlavor.kueue.x-k8s.io: 1}
    clientConnection: {qps: 50, burst: 100}
    integrations:
      frameworks: ["batch/job"]
EOF
  if ! admin_helm upgrade --install kueue "$KUEUE_BIN/chart" --namespace "$KUEUE_NAMESPACE" \
    --create-namespace --values "$values" --wait --timeout 180s >/dev/null; then
    admin_kubectl --namespace "$KUEUE_NAMESPACE" get pods -o wide >&2 || true
    admin_kubectl --namespace "$KUEUE_NAMESPACE" logs deployment/kueue-controller-manager --tail=30 >&2 || true
    die "install-kueue: Kueue did not become ready"
  fi
  # Its webhooks answer only once the manager has made its certificate: wait until an
  # admission passes through them.
  printf 'apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: kask-probe}\n' >"$probe"
  wait_until 120 "Kueue's webhooks" kube-apiserver admin_kubectl create --dry-run=server -f "$probe"
  log "Kueue $KUEUE_VERSION installed with Helm: release kueue in namespace $KUEUE_NAMESPACE"
}

cmd_uninstall_kueue() {
  cluster_up || die "uninstall-kueue: the cluster is not up"
  # Kueue's objects first, while its manager still runs to remove their finalizers: the chart
  # deletes the CRDs, which would wait for ever on an object the manager can no longer free.
  local kind
  for kind in localqueues workloads; do
    admin_kubectl delete "$kind.kueue.x-k8s.io" --all --all-namespaces --ignore-not-found \
      --timeout=60s >/dev/null 2>&1 || true
  done
  for kind in clusterqueues resourceflavors workloadpriorityclasses cohorts topologies; do
    admin_kubectl delete "$kind.kueue.x-k8s.io" --all --ignore-not-found --timeout=60s >/dev/null 2>&1 || true
  done
  admin_helm uninstall kueue --namespace "$KUEUE_NAMESPACE" --ignore-not-found --wait \
    --timeout 120s >/dev/null || die "uninstall-kueue: helm uninstall failed"
  admin_kubectl delete namespace "$KUEUE_NAMESPACE" --ignore-not-found --timeout=60s >/dev/null
  log "Kueue uninstalled"
}
