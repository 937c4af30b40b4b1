"""A hard memory cap for benchmark runs: a cgroup (v1 `memory`, or v2) with a limit, which each
measured process joins before it starts, so that every engine runs under the same ceiling that a
container's limit would impose, and an engine that goes past it is killed by the kernel and
counted as not finished.
"""

import os
import re

UNITS = {"": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9, "t": 10 ** 12,
         "ki": 2 ** 10, "mi": 2 ** 20, "gi": 2 ** 30, "ti": 2 ** 40}


def parse_size(text):
    """Bytes of `2G`, `2Gi`, `1536Mi`, `2147483648` (Kubernetes quantities, as `kask run --memory`)."""
    m = re.fullmatch(r"\s*([0-9]+)\s*([kKmMgGtT]i?)?[bB]?\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a size such as 2Gi or 2G")
    return int(m.group(1)) * UNITS[(m.group(2) or "").lower()]


class MemoryCap:
    """A cgroup with a memory limit of `limit` bytes, removed by close()."""

    def __init__(self, limit, name):
        self.limit = limit
        v1 = "/sys/fs/cgroup/memory"
        v2 = next((p for p in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                   if os.path.exists(os.path.join(p, "cgroup.controllers"))), None)
        if os.path.isdir(v1) and os.access(v1, os.W_OK):
            self.path, self.v2 = os.path.join(v1, name), False
        elif v2 and "memory" in open(os.path.join(v2, "cgroup.subtree_control")).read().split():
            self.path, self.v2 = os.path.join(v2, name), True
        else:
            raise SystemExit("--memory-cap needs a writable cgroup memory controller (cgroup v1 "
                             "/sys/fs/cgroup/memory, or v2 with memory in cgroup.subtree_control); "
                             "run as root, or leave --memory-cap out")
        os.makedirs(self.path, exist_ok=True)
        if self.v2:
            self._write("memory.max", str(limit))
            self._write("memory.swap.max", "0", optional=True)
        else:
            self._write("memory.limit_in_bytes", str(limit))
            # No swap either: past the limit a process is killed, not slowed down.
            self._write("memory.memsw.limit_in_bytes", str(limit), optional=True)

    def _write(self, name, value, optional=False):
        try:
            with open(os.path.join(self.path, name), "w") as f:
                f.write(value)
        except OSError:
            if not optional:
                raise

    def enter(self):
        """Moves the calling process into the cgroup (a subprocess's preexec_fn): its children
        follow it."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def oom_kills(self):
        """Processes the kernel has killed in the cgroup for going past the limit, so far."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            for line in open(os.path.join(self.path, name)):
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except OSError:
            pass
        return 0

    def peak(self):
        """The most memory the cgroup has held, in bytes (None where the kernel does not say)."""
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        try:
            return int(open(os.path.join(self.path, name)).read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def reset_peak(self):
        self._write("memory.peak" if self.v2 else "memory.max_usage_in_bytes", "0", optional=True)

    def close(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass
