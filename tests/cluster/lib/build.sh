# shellcheck shell=bash
# Installs the Debian packages and builds the pinned binaries the test bed runs, from the Go
# module proxy only. Sourced by tests/cluster/cluster; every function is idempotent and every
# binary lands in the cache under a directory keyed by its version and the Go version, so a
# second run builds nothing.

# Kubernetes 1.33: the newest minor that still runs on these cgroup-v1 hosts without
# `failCgroupV1: false`, and one minor from the installed kubectl 1.32.
readonly KUBE_VERSION="1.33.13"
# kubeadm v1.33.13 names 3.5.24 as the etcd for this release (SupportedEtcdVersion[33] in
# cmd/kubeadm/app/constants/constants.go); Debian's 3.4.23 is below the supported floor.
readonly ETCD_VERSION="3.5.24"
readonly HELM_VERSION="v3.22.0"
# crictl tears pods down through the CRI at `down`, so CNI releases their addresses and rules.
readonly CRICTL_VERSION="v1.34.0"
readonly KUBE_COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"

readonly DEBIAN_PACKAGES="containerd runc containernetworking-plugins iptables conntrack socat jq \
openssl ca-certificates curl gcc libc6-dev busybox-static"

GO_VERSION="$(go env GOVERSION 2>/dev/null || echo unknown)"
readonly GO_VERSION
readonly KUBE_BIN="$CACHE/bin/kubernetes-v$KUBE_VERSION-$GO_VERSION"
readonly ETCD_BIN="$CACHE/bin/etcd-v$ETCD_VERSION-$GO_VERSION"
readonly HELM_BIN="$CACHE/bin/helm-$HELM_VERSION-$GO_VERSION"
readonly CRICTL_BIN="$CACHE/bin/crictl-$CRICTL_VERSION-$GO_VERSION"

# The Go environment of every build: module and build caches under the kask cache (shared with
# the MinIO build), the machine's Go (GOTOOLCHAIN=local: nothing else is fetched), static
# binaries, and a module cache a plain `rm -rf` can delete.
go_env() {
  env GOPATH="$CACHE/go" GOMODCACHE="$CACHE/go/pkg/mod" GOCACHE="$CACHE/go/cache" \
    GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-modcacherw" "$@"
}

# once DIR WHAT FUNCTION: runs FUNCTION, which fills DIR, unless DIR/.done (the finished
# marker) exists. An exclusive lock on DIR.lock makes two test runs at once share one build
# instead of racing in the same directory. The output goes to a log in $CACHE/build, shown
# when the build fails.
once() {
  local dir=$1 what=$2 fn=$3 blog start=$SECONDS
  local done="$dir/.done"
  [[ -e "$done" ]] && return 0
  mkdir -p "$(dirname "$dir")" "$CACHE/build"
  blog="$CACHE/build/$fn.log"
  (
    flock 9
    [[ -e "$done" ]] && exit 0
    log "building $what with $GO_VERSION (log: $blog)"
    "$fn" >"$blog" 2>&1 || exit 1
    touch "$done"
    log "built $what in $((SECONDS - start))s"
  ) 9>"$dir.lock" || {
    tail -n 30 "$blog" >&2
    die "building $what failed (log: $blog)"
  }
}

cmd_install() {
  local missing=() p
  for p in $DEBIAN_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v kubectl >/dev/null || die "kubectl is not installed (the machine image provides it)"
}

cmd_build() {
  cmd_install
  once "$KUBE_BIN" "Kubernetes v$KUBE_VERSION (cold: about 5 minutes)" build_kubernetes
  once "$ETCD_BIN" "etcd v$ETCD_VERSION" build_etcd
  once "$HELM_BIN" "helm $HELM_VERSION" build_helm
  once "$CRICTL_BIN" "crictl $CRICTL_VERSION" build_crictl
  once "$KUEUE_BIN" "Kueue $KUEUE_VERSION" build_kueue
  "$ROOT/tests/minio/minio" install
}

# k8s.io/kubernetes requires its staging modules at v0.0.0 and points them at ./staging with
# replace directives, which `go install` refuses. A throwaway main module requires it and
# replaces each staging module by its published v0.MINOR.PATCH. The list is read from the
# release's own go.mod, so a version bump needs no edit here.
build_kubernetes() {
  local minor patch work kjson kgomod
  minor=$(cut -d. -f2 <<<"$KUBE_VERSION")
  patch=$(cut -d. -f3 <<<"$KUBE_VERSION")
  work="$CACHE/build/kubernetes-v$KUBE_VERSION"
  rm -rf "$work" "$KUBE_BIN"
  mkdir -p "$work"
  (
    cd "$work"
    kjson=$(go_env go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION")
    kgomod=$(jq -r .GoMod <<<"$kjson")
    go_env go mod init kask.dev/testbed/kubernetes >/dev/null 2>&1
    go_env go mod edit -go="$(go_env go mod edit -json "$kgomod" | jq -r .Go)"
    # Runtime defaults (x509, HTTP, ...) as upstream shipped them: only the main module's
    # godebug lines count.
    go_env go mod edit -json "$kgomod" | jq -r '.Godebug[]? | "\(.Key)=\(.Value)"' |
      while read -r kv; do go_env go mod edit -godebug="$kv"; done
    go_env go mod edit -require="k8s.io/kubernetes@v$KUBE_VERSION"
    go_env go mod edit -json "$kgomod" |
      jq -r '.Replace[] | select(.New.Path | startswith("./staging/")) | .Old.Path' |
      while read -r m; do go_env go mod edit -replace="$m=$m@v0.$minor.$patch"; done
    local pkgs=() c
    for c in $KUBE_COMPONENTS; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    go_env go get "${pkgs[@]/%/@v$KUBE_VERSION}"
    # The version variables upstream's hack/lib/version.sh sets; without them every component
    # reports v0.0.0-master and kubectl warns about skew.
    local ld="-s -w" vp now
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    for vp in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $vp.gitVersion=v$KUBE_VERSION -X $vp.gitMajor=1 -X $vp.gitMinor=$minor"
      ld+=" -X $vp.gitTreeState=clean -X $vp.buildDate=$now"
    done
    go_env go build -trimpath -ldflags "$ld" -o "$work/bin/" "${pkgs[@]}"
  ) || return 1
  mv "$work/bin" "$KUBE_BIN"
  "$KUBE_BIN/kube-apiserver" --version
  rm -rf "$work"
}

# etcd's server module has relative replace directives too; same throwaway-module route.
build_etcd() {
  local work="$CACHE/build/etcd-v$ETCD_VERSION"
  rm -rf "$work" "$ETCD_BIN"
  mkdir -p "$work"
  (
    cd "$work"
    go_env go mod init kask.dev/testbed/etcd >/dev/null 2>&1
    go_env go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    go_env go build -trimpath -ldflags "-s -w" -o "$work/bin/etcd" go.etcd.io/etcd/server/v3
  ) || return 1
  mv "$work/bin" "$ETCD_BIN"
  rm -rf "$work"
}

build_helm() {
  local tmp="$HELM_BIN.tmp"
  rm -rf "$tmp" "$HELM_BIN"
  mkdir -p "$tmp"
  go_env GOBIN="$tmp" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || return 1
  mv "$tmp" "$HELM_BIN"
}

build_crictl() {
  local tmp="$CRICTL_BIN.tmp"
  rm -rf "$tmp" "$CRICTL_BIN"
  mkdir -p "$tmp"
  go_env GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" || return 1
  mv "$tmp" "$CRICTL_BIN"
}
