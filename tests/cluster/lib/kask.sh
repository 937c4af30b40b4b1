# shellcheck shell=bash
# Kask on the running test bed: images built from the cargo build and imported, the CRD, and
# the operator from deploy/. Sourced by tests/cluster/cluster.

cmd_install_kask() {
  cluster_up || die "install-kask: the cluster is not up: run '$0 up'"
  local image
  for image in kask kask-operator; do
    cmd_load_image "$(cmd_image "$image")"
  done
  admin_kubectl apply -f "$ROOT/crds/" >/dev/null
  admin_kubectl wait --for=condition=Established crd/daskjobs.kask.dev --timeout=60s >/dev/null
  admin_kubectl apply -f "$ROOT/deploy/" >/dev/null
  # A new image under the same tag: restart so the pod runs it.
  admin_kubectl --namespace kask-system rollout restart deployment/kask-operator >/dev/null
  if ! admin_kubectl --namespace kask-system rollout status deployment/kask-operator --timeout=120s >/dev/null; then
    admin_kubectl --namespace kask-system get pods -o wide >&2 || true
    admin_kubectl --namespace kask-system logs deployment/kask-operator --tail=30 >&2 || true
    die "install-kask: the operator did not become ready"
  fi
  log "kask installed: CRD daskjobs.kask.dev, operator in namespace kask-system"
}

cmd_uninstall_kask() {
  cluster_up || die "uninstall-kask: the cluster is not up"
  # DaskJobs first, while the operator still runs their finalizers (scratch cleanup).
  if admin_kubectl get crd daskjobs.kask.dev >/dev/null 2>&1; then
    admin_kubectl delete daskjobs --all --all-namespaces --timeout=120s >/dev/null || true
  fi
  admin_kubectl delete -f "$ROOT/deploy/" --ignore-not-found --timeout=120s >/dev/null
  admin_kubectl delete -f "$ROOT/crds/" --ignore-not-found --timeout=60s >/dev/null
  log "kask uninstalled"
}
