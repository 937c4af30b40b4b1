"""What the benchmark scripts share: the machine and package facts of a report, the kask binary
they measure by default, page-cache warming, a result's Parquet files, and a best time."""

import glob
import json
import os
import platform
import signal
import subprocess
import threading
import time


def default_kask():
    """The release binary that `cargo build --release` leaves in CARGO_TARGET_DIR (by default
    the cache that .ci/run builds into)."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "kask", "target")
    return os.path.join(target, "release", "kask")


def package_versions(packages):
    """{package: version or "missing"}."""
    from importlib.metadata import PackageNotFoundError, version
    v = {}
    for pkg in packages:
        try:
            v[pkg] = version(pkg)
        except PackageNotFoundError:
            v[pkg] = "missing"
    return v


def machine():
    """'N cores, M GiB, arch'."""
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 2 ** 20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores{mem}, {platform.machine()}"


def preread_parquet(dirs):
    """Reads every Parquet file under `dirs` once so that every engine, the first one too,
    starts with the data in the page cache. Returns the bytes read."""
    total = 0
    for d in dirs:
        for f in glob.glob(os.path.join(d, "**", "*.parquet"), recursive=True):
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    total += len(chunk)
    return total


def output_files(engine, out):
    """The Parquet files of a result, and a problem if the result is not well formed (Kask's
    are the files its _SUCCESS manifest names)."""
    if engine == "kask":
        man = os.path.join(out, "_SUCCESS")
        if not os.path.exists(man):
            return None, "no _SUCCESS manifest"
        try:
            with open(man) as f:
                m = json.load(f)
            return [os.path.join(out, x["path"] if isinstance(x, dict) else x) for x in m["files"]], None
        except (ValueError, KeyError, TypeError) as e:
            return sorted(glob.glob(os.path.join(out, "part-*.parquet"))), f"unreadable _SUCCESS manifest ({e})"
    return sorted(glob.glob(os.path.join(out, "**", "*.parquet"), recursive=True)), None


def best(times):
    """The least of the times that are not None, or None."""
    t = [x for x in (times or []) if x is not None]
    return min(t) if t else None


def run_timed(cmd, timeout, **popen):
    """Runs `cmd` in a session of its own to its end: (exit status, seconds), or ("timeout", None)
    when it ran past `timeout` seconds (its process group is then killed). The wait blocks in
    waitpid: `Popen.wait(timeout=...)` and `subprocess.run(timeout=...)` poll with sleeps of up to
    50 ms, which added up to 50 ms to every time measured this way."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, start_new_session=True, **popen)
    fired = threading.Event()

    def kill():
        fired.set()
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    rc = p.wait()
    dt = time.perf_counter() - t0
    timer.cancel()
    if fired.is_set() and dt >= timeout:
        return "timeout", None
    return rc, dt
