# shellcheck shell=bash
# Kask on the running test bed: images built from the cargo build (or a release's, from
# KASK_IMAGE_DIR) and imported, the CRD, and the operator installed with the Helm chart
# (charts/kask) as release "kask" in kask-system.
# Sourced by tests/cluster/cluster.

readonly KASK_NAMESPACE=kask-system

cmd_install_kask() {
  cluster_up || die "install-kask: the cluster is not up: run '$0 up'"
  local image tar digest=""
  for image in kask kask-operator; do
    # KASK_IMAGE_DIR: a release's images (release/build) instead of images built here.
    if [[ -n "${KASK_IMAGE_DIR:-}" ]]; then
      tar=$(compgen -G "$KASK_IMAGE_DIR/$image-[0-9]*.oci.tar" | head -n 1) ||
        die "install-kask: no $image-VERSION.oci.tar in $KASK_IMAGE_DIR"
    else
      tar=$(cmd_image "$image")
    fi
    cmd_load_image "$tar"
    digest+=$(sha256sum "$tar" | cut -c1-12)
  done
  # Helm installs CRDs only once; applying them keeps a changed CRD current.
  admin_kubectl apply -f "$ROOT/crds/" >/dev/null
  # Asked before the API server has written the new CRD's first conditions (a null list),
  # `kubectl wait` fails at once ("accessor error: <nil> ... expected []interface{}") instead
  # of waiting: a loaded machine met it. So it is asked again until the CRD is established.
  wait_until 60 "CRD daskjobs.kask.dev to be established" kube-apiserver \
    admin_kubectl wait --for=condition=Established crd/daskjobs.kask.dev --timeout=5s
  admin_kubectl create namespace "$KASK_NAMESPACE" --dry-run=client -o yaml | admin_kubectl apply -f - >/dev/null
  admin_kubectl label namespace "$KASK_NAMESPACE" --overwrite \
    pod-security.kubernetes.io/enforce=restricted >/dev/null
  # New images under the same tags: the annotation changes with them, so the pods restart.
  if ! admin_helm upgrade --install kask "$ROOT/charts/kask" \
    --namespace "$KASK_NAMESPACE" --wait --timeout 120s \
    --set-string "podAnnotations.kask\.dev/images=$digest" "$@" >/dev/null; then
    admin_kubectl --namespace "$KASK_NAMESPACE" get pods -o wide >&2 || true
    admin_kubectl --namespace "$KASK_NAMESPACE" logs deployment/kask-operator --tail=30 >&2 || true
    die "install-kask: the operator did not become ready"
  fi
  log "kask installed with Helm: CRD daskjobs.kask.dev, release kask in namespace $KASK_NAMESPACE"
}

cmd_uninstall_kask() {
  cluster_up || die "uninstall-kask: the cluster is not up"
  # DaskJobs first, while the operator still runs their finalizers (scratch cleanup).
  if admin_kubectl get crd daskjobs.kask.dev >/dev/null 2>&1; then
    admin_kubectl delete daskjobs --all --all-namespaces --timeout=120s >/dev/null || true
  fi
  admin_helm uninstall kask --namespace "$KASK_NAMESPACE" \
    --ignore-not-found --wait >/dev/null
  admin_kubectl delete -f "$ROOT/crds/" --ignore-not-found --timeout=60s >/dev/null
  log "kask uninstalled"
}
