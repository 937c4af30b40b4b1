# shellcheck shell=bash
# OCI images without Docker or a registry: a root file system is packed into one uncompressed,
# deterministic layer and written as an OCI image layout tarball, the format
# `ctr images import` reads. Sourced by tests/cluster/cluster.

readonly IMAGE_DIR="$CACHE/images"
readonly PAUSE_IMAGE="localhost/kask-pause:1"
readonly TOOLBOX_IMAGE="localhost/kask-toolbox:1"
# The non-root user every image runs as (the id distroless images use).
readonly IMAGE_UID=65532

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

# A file into the image's rootfs at the same absolute path.
put_file() {
  local rootfs=$1 src=$2 dest=${3:-$2}
  mkdir -p "$rootfs$(dirname "$dest")"
  cp -L "$src" "$rootfs$dest"
}

# A dynamically linked program and every shared library it loads, at the paths its loader
# expects; debug sections are dropped (symbols stay, for backtraces).
put_program() {
  local rootfs=$1 src=$2 dest=$3 lib
  mkdir -p "$rootfs$(dirname "$dest")"
  strip --strip-debug -o "$rootfs$dest" "$src" 2>/dev/null || cp "$src" "$rootfs$dest"
  chmod 0755 "$rootfs$dest"
  for lib in $(ldd "$src" 2>/dev/null | grep -oE '/[^ ]+' | sort -u); do
    [[ -e "$rootfs$lib" ]] || put_file "$rootfs" "$lib"
  done
}

# The files every image has: a non-root user, CA certificates for TLS to object stores, and a
# writable /tmp.
base_rootfs() {
  local rootfs=$1
  mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/home/kask"
  chmod 1777 "$rootfs/tmp"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nkask:x:%s:%s:kask:/home/kask:/sbin/nologin\n' \
    "$IMAGE_UID" "$IMAGE_UID" >"$rootfs/etc/passwd"
  printf 'root:x:0:\nkask:x:%s:\n' "$IMAGE_UID" >"$rootfs/etc/group"
  chown "$IMAGE_UID:$IMAGE_UID" "$rootfs/home/kask"
}

# write_oci REF ROOTFS OUT ENTRYPOINT-JSON USER: the image layout tarball OUT holding ROOTFS
# as its one layer. REF must be the fully qualified name (containerd takes it verbatim from the
# io.containerd.image.name annotation, and CRI looks images up by the normalised name).
write_oci() {
  local ref=$1 rootfs=$2 out=$3 entrypoint=$4 user=$5
  local layout
  layout=$(mktemp -d)
  mkdir -p "$layout/blobs/sha256"

  # Sorted names, zero times and owners from the rootfs: the same inputs give the same digest,
  # so re-importing an unchanged image is a no-op for containerd.
  tar --sort=name --mtime=@0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$rootfs" -cf "$layout/layer.tar" .
  local layer_sha layer_size
  layer_sha=$(sha256_of "$layout/layer.tar")
  layer_size=$(size_of "$layout/layer.tar")
  mv "$layout/layer.tar" "$layout/blobs/sha256/$layer_sha"

  jq -cn --argjson ep "$entrypoint" --arg user "$user" --arg diff "sha256:$layer_sha" '{
    architecture: "amd64", os: "linux",
    config: {Entrypoint: $ep, Env: ["PATH=/usr/local/bin:/usr/bin:/bin"], User: $user,
             WorkingDir: "/"},
    rootfs: {type: "layers", diff_ids: [$diff]}
  }' >"$layout/config.json"
  local config_sha config_size
  config_sha=$(sha256_of "$layout/config.json")
  config_size=$(size_of "$layout/config.json")
  mv "$layout/config.json" "$layout/blobs/sha256/$config_sha"

  jq -cn --arg c "sha256:$config_sha" --argjson cs "$config_size" \
    --arg l "sha256:$layer_sha" --argjson ls "$layer_size" '{
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]
  }' >"$layout/manifest.json"
  local manifest_sha manifest_size
  manifest_sha=$(sha256_of "$layout/manifest.json")
  manifest_size=$(size_of "$layout/manifest.json")
  mv "$layout/manifest.json" "$layout/blobs/sha256/$manifest_sha"

  jq -cn --arg m "sha256:$manifest_sha" --argjson ms "$manifest_size" --arg ref "$ref" '{
    schemaVersion: 2,
    manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m,
                 size: $ms, platform: {architecture: "amd64", os: "linux"},
                 annotations: {"io.containerd.image.name": $ref,
                               "org.opencontainers.image.ref.name": ($ref | sub(".*:"; ""))}}]
  }' >"$layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

  mkdir -p "$(dirname "$out")"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$layout" \
    -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$layout"
}

# The sandbox ("pause") image: our own static pause, PID 1 of every pod.
image_pause() {
  local rootfs out="$IMAGE_DIR/kask-pause.tar"
  rootfs=$(mktemp -d)
  gcc -static -Os -s -o "$rootfs/pause" "$ROOT/tests/cluster/pause.c" || die "compiling pause.c failed"
  write_oci "$PAUSE_IMAGE" "$rootfs" "$out" '["/pause"]' "65535:65535"
  rm -rf "$rootfs"
  echo "$out"
}

# Test pods' tools: busybox (sh, cat, sleep, ...) and curl, for the smoke tests.
image_toolbox() {
  local rootfs out="$IMAGE_DIR/kask-toolbox.tar"
  rootfs=$(mktemp -d)
  base_rootfs "$rootfs"
  put_program "$rootfs" /bin/busybox /bin/busybox
  local applet
  for applet in sh cat ls sleep echo env wc grep test true false; do
    ln -s busybox "$rootfs/bin/$applet"
  done
  put_program "$rootfs" /usr/bin/curl /usr/bin/curl
  write_oci "$TOOLBOX_IMAGE" "$rootfs" "$out" '["/bin/sh"]' "$IMAGE_UID:$IMAGE_UID"
  rm -rf "$rootfs"
  echo "$out"
}

# A kask binary's image: the program at /usr/local/bin, its shared libraries, CA certificates
# and the non-root user. The tag is the binary's own version.
image_binary() {
  local name=$1 bin="${CARGO_TARGET_DIR:-$CACHE/target}/release/$1"
  [[ -x "$bin" ]] || die "$bin not found: build it first (cargo build --release --bin $name)"
  local version rootfs out="$IMAGE_DIR/$name.tar"
  version=$("$bin" --version | awk '{print $2}')
  [[ -n "$version" ]] || die "$bin --version printed no version"
  rootfs=$(mktemp -d)
  base_rootfs "$rootfs"
  put_program "$rootfs" "$bin" "/usr/local/bin/$name"
  write_oci "localhost/$name:$version" "$rootfs" "$out" "[\"$name\"]" "$IMAGE_UID:$IMAGE_UID"
  rm -rf "$rootfs"
  echo "$out"
}

cmd_image() {
  mkdir -p "$IMAGE_DIR"
  case "${1:-}" in
    pause) image_pause ;;
    toolbox) image_toolbox ;;
    kask | kask-operator) image_binary "$1" ;;
    *) die "image: expected pause, toolbox, kask or kask-operator, got '${1:-}'" ;;
  esac
}

# load_image_on_node TAR: TAR imported into the current node's containerd, in the k8s.io
# namespace (the only one CRI sees), unpacked for overlayfs, the snapshotter CRI uses:
# containers are created from unpacked snapshots only.
load_image_on_node() {
  [[ -S "$NODE_SOCK" ]] || die "load-image: $NODE_K_NAME is not up (no $NODE_SOCK)"
  ctr --address "$NODE_SOCK" --namespace k8s.io images import --platform linux/amd64 \
    --snapshotter overlayfs "$1" >/dev/null || die "load-image: importing $1 on $NODE_K_NAME failed"
}

# Every node gets every image: a pod may be scheduled anywhere, and nothing can be pulled.
cmd_load_image() {
  local tar=${1:-} k
  [[ -f "$tar" ]] || die "load-image: no such file '$tar'"
  for ((k = 1; k <= $(node_count); k++)); do
    node_env "$k"
    load_image_on_node "$tar"
  done
  local ref
  ref=$(tar -xOf "$tar" index.json | jq -r '.manifests[0].annotations["io.containerd.image.name"]')
  log "loaded $ref"
}

cmd_tag_image() {
  [[ -n "$1" && -n "$2" ]] || die "tag-image: SRC DST"
  local k
  for ((k = 1; k <= $(node_count); k++)); do
    node_env "$k"
    [[ -S "$NODE_SOCK" ]] || die "tag-image: $NODE_K_NAME is not up (no $NODE_SOCK)"
    ctr --address "$NODE_SOCK" --namespace k8s.io images tag --force "$1" "$2" >/dev/null ||
      die "tag-image: tagging $1 as $2 on $NODE_K_NAME failed"
  done
  log "tagged $1 as $2"
}
