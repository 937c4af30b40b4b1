# shellcheck shell=bash
# A Python venv with pinned packages, made once and cached outside the clone:
#
#   source tests/lib/pyvenv.sh; venv=$(pyvenv NAME REQUIREMENTS-FILE)
#
# The venv lives in ${KASK_CACHE:-$HOME/.cache/kask}/NAME; pip runs only when the
# requirements or the venv's Python changed. Needs Python 3.11+ (PYTHON, default python3).
# Messages go to stderr, prefixed with NAME; on failure it exits the calling script.

pyvenv() {
  local name=$1 reqs=$2
  local cache="${KASK_CACHE:-$HOME/.cache/kask}"
  local venv="$cache/$name" python="${PYTHON:-python3}"
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "$name: $python not found (set PYTHON to a Python 3.11+ interpreter)" >&2
    exit 1
  fi
  if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "$name: $("$python" --version 2>&1) is too old; the pinned packages need Python 3.11+" \
      "(set PYTHON)" >&2
    exit 1
  fi
  # A venv whose interpreter no longer starts (Python upgraded or removed) is made anew.
  if [[ -d "$venv" ]] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "$name: $venv is broken; recreating it" >&2
    rm -rf "$venv"
  fi
  if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$cache"
    echo "$name: creating $venv" >&2
    "$python" -m venv "$venv" || {
      echo "$name: python -m venv failed (on Debian: apt-get install python3-venv)" >&2
      rm -rf "$venv"
      exit 1
    }
  fi
  # The stamp records what was installed: the requirements and the venv's Python version.
  local stamp="$venv/.kask-stamp" want
  want="$( { cat "$reqs"; "$venv/bin/python" -c 'import sys; print(sys.version)'; } |
    sha256sum | cut -d' ' -f1)"
  if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    echo "$name: installing $(grep -cv '^\s*\(#\|$\)' "$reqs") pinned packages into $venv" >&2
    local start=$SECONDS
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$reqs" >&2
    echo "$name: pip install took $((SECONDS - start))s" >&2
    echo "$want" >"$stamp"
  fi
  echo "$venv"
}

# A scratch directory on tmpfs (/dev/shm) when there is one and TMPDIR is unset: tests that
# write and delete many small files are faster there than on a disk mounted with `discard`.
scratch_dir() {
  local tmp="${TMPDIR:-/tmp}"
  if [[ -z "${TMPDIR:-}" && -d /dev/shm && -w /dev/shm ]]; then
    tmp=/dev/shm
  fi
  mktemp -d "$tmp/kask-$1.XXXXXX"
}
