#!/usr/bin/env python3
"""The operator benchmark: how fast the operator turns DaskJobs into pods, how long it leaves a
job idle between stages, how it copes with many jobs at once, how it admits a thousand queued
ones, what memory it holds and how long its reconciles take.

Runs against the cluster in $KUBECONFIG with Kask installed and MinIO reachable (bench/operator/run
sets both up on the test bed). Only the standard library, kubectl and curl are used.

Every time here is taken on this host from kubectl watch streams: one watch each on the
namespace's DaskJobs, Jobs and pods, stamped when an event arrives. Kubernetes' own timestamps
have one-second resolution, too coarse for a sub-second stage gap.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEP_ORDER = {"plan": -1, "commit": 1 << 20}


def kubectl(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"opbench: kubectl {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


# --- object storage -----------------------------------------------------------------------------


def s3_put(path: Path, key: str) -> None:
    """Uploads one file to the test bed's MinIO with curl's SigV4 signing."""
    env = os.environ
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    url = f"{env['KASK_S3_ENDPOINT']}/{env['KASK_S3_BUCKET']}/{urllib.parse.quote(key)}"
    subprocess.run(
        [
            "curl", "-sS", "--fail", "--aws-sigv4", f"aws:amz:{env['AWS_REGION']}:s3",
            "--user", f"{env['AWS_ACCESS_KEY_ID']}:{env['AWS_SECRET_ACCESS_KEY']}",
            "-H", f"x-amz-content-sha256: {digest}", "-X", "PUT",
            "--data-binary", f"@{path}", url, "-o", os.devnull,
        ],
        check=True,
    )


# --- watches ------------------------------------------------------------------------------------


class Watch:
    """`kubectl get RESOURCE --watch` in one namespace, every event kept with its arrival time."""

    def __init__(self, resource: str, namespace: str) -> None:
        self.events: list[tuple[float, str, dict]] = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["kubectl", "get", resource, "--namespace", namespace, "--watch",
             "--output-watch-events", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        # With --output-watch-events, kubectl prints one compact JSON event per line.
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.monotonic()
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self.lock:
                self.events.append((now, event.get("type", ""), event.get("object", {})))

    def snapshot(self) -> list[tuple[float, str, dict]]:
        with self.lock:
            return list(self.events)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def labels(obj: dict) -> dict:
    return obj.get("metadata", {}).get("labels") or {}


def condition_true(obj: dict, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in obj.get("status", {}).get("conditions") or []
    )


def step_key(step: str) -> int:
    """plan, then the stages in order (s0, s1, …, by their Job name), then commit."""
    return STEP_ORDER.get(step, 0)


class Timeline:
    """What the watches saw of one DaskJob: when each child Job appeared and completed, when
    each step's first pod appeared and first ran."""

    def __init__(self) -> None:
        self.job_added: dict[str, float] = {}
        self.job_complete: dict[str, float] = {}
        self.job_step: dict[str, str] = {}
        self.pod_added: dict[str, float] = {}  # by Job name
        self.pod_running: dict[str, float] = {}  # by Job name
        self.succeeded: float | None = None

    def steps(self) -> list[str]:
        """The child Jobs in execution order."""

        def key(job: str) -> tuple[int, int]:
            step = self.job_step[job]
            index = int(job.rsplit("-s", 1)[1]) if step not in STEP_ORDER else 0
            return (step_key(step), index)

        return sorted((j for j in self.job_added if self.job_step[j] != "cleanup"), key=key)

    def gaps(self) -> list[tuple[float, float]]:
        """(Job created, first pod created) after the previous Job completed, in seconds."""
        steps = self.steps()
        out = []
        for prev, nxt in zip(steps, steps[1:]):
            done = self.job_complete.get(prev)
            if done is None or nxt not in self.pod_added:
                continue
            out.append((self.job_added[nxt] - done, self.pod_added[nxt] - done))
        return out

    def first_pod(self) -> tuple[float | None, float | None]:
        added = min(self.pod_added.values(), default=None)
        running = min(self.pod_running.values(), default=None)
        return added, running


def timelines(jobs: Watch, pods: Watch, djs: Watch) -> dict[str, Timeline]:
    out: dict[str, Timeline] = {}
    for t, _, obj in jobs.snapshot():
        name, lab = obj["metadata"]["name"], labels(obj)
        tl = out.setdefault(lab.get("kask.dev/job", "?"), Timeline())
        tl.job_added.setdefault(name, t)
        tl.job_step[name] = lab.get("kask.dev/stage", "?")
        if condition_true(obj, "Complete"):
            tl.job_complete.setdefault(name, t)
    for t, _, obj in pods.snapshot():
        lab = labels(obj)
        owner = lab.get("batch.kubernetes.io/job-name") or lab.get("job-name", "?")
        tl = out.setdefault(lab.get("kask.dev/job", "?"), Timeline())
        tl.pod_added.setdefault(owner, t)
        if obj.get("status", {}).get("phase") in ("Running", "Succeeded"):
            tl.pod_running.setdefault(owner, t)
    for t, _, obj in djs.snapshot():
        if obj.get("status", {}).get("phase") == "Succeeded":
            tl = out.setdefault(obj["metadata"]["name"], Timeline())
            if tl.succeeded is None:
                tl.succeeded = t
    return out


# --- the jobs -----------------------------------------------------------------------------------


def daskjob(name: str, namespace: str, prefix: str, suspend: bool = False) -> dict:
    """A small groupby over examples/data/orders on MinIO, split into small tasks so that it has
    two stages (the map side and the shuffle's reduce side) between plan and commit."""
    env = os.environ
    return {
        "apiVersion": "kask.dev/v1alpha1",
        "kind": "DaskJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "workers": 2,
            "targetTaskBytes": 4096,
            "suspend": suspend,
            "storage": {
                "url": f"s3://{env['KASK_S3_BUCKET']}/{prefix}",
                "endpoint": env["KASK_S3_ENDPOINT"],
                "region": env["AWS_REGION"],
                "allowHttp": True,
                "secretRef": {"name": "lake"},
            },
            "dataframe": {
                "inputs": {"orders": {"path": "data/orders/*.csv", "format": "csv"}},
                "pipeline": [
                    {"source": "orders"},
                    {"filter": "status = 'paid'"},
                    {"groupby": {"by": ["customer"], "aggs": {"amount": ["sum", "count"]}}},
                ],
            },
            "output": {"path": f"out/{name}", "format": "csv", "mode": "overwrite"},
        },
    }


def apply(objs: list[dict]) -> float:
    """Applies the objects in one request batch; returns the time just before kubectl ran."""
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
    t = time.monotonic()
    kubectl("apply", "-f", "-", stdin=doc)
    return t


def phases(namespace: str) -> dict[str, str]:
    items = json.loads(kubectl("get", "daskjobs", "--namespace", namespace, "-o", "json"))["items"]
    return {i["metadata"]["name"]: i.get("status", {}).get("phase", "") for i in items}


def phases_jobs(namespace: str) -> list[str]:
    """The names of the namespace's Jobs."""
    return kubectl("get", "jobs", "--namespace", namespace, "-o",
                   "jsonpath={.items[*].metadata.name}").split()


def wait_phase(namespace: str, names: list[str], phase: str, timeout: float,
               poll: float = 0.25) -> float:
    """Waits until every named DaskJob is in `phase`; fails on a Failed one or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        now = phases(namespace)
        failed = [n for n in names if now.get(n) == "Failed"]
        if failed:
            msg = kubectl("get", "daskjob", failed[0], "--namespace", namespace,
                          "-o", "jsonpath={.status.message}")
            raise SystemExit(f"opbench: DaskJob {failed[0]} failed: {msg}")
        if all(now.get(n) == phase for n in names):
            return time.monotonic()
        if time.monotonic() > deadline:
            left = sorted(n for n in names if now.get(n) != phase)
            raise SystemExit(f"opbench: {len(left)} DaskJobs not {phase} after {timeout:.0f}s: {left[:5]}")
        time.sleep(poll)


# --- the operator's reconcile latency ------------------------------------------------------------


def reconcile_histogram() -> dict[float, int]:
    """The operator's `kask_reconcile_duration_seconds` buckets (upper bound → cumulative count),
    read from its /metrics on its pod's address (reachable from the test bed's host)."""
    ip = kubectl("get", "pods", "--namespace", "kask-system", "-l",
                 "app.kubernetes.io/component=operator", "-o",
                 "jsonpath={.items[0].status.podIP}").strip()
    text = subprocess.run(["curl", "-fsS", "--max-time", "5", f"http://{ip}:8080/metrics"],
                          capture_output=True, text=True, check=True).stdout
    out: dict[float, int] = {}
    for line in text.splitlines():
        if line.startswith("kask_reconcile_duration_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = int(float(line.rsplit(" ", 1)[1]))
    return out


def histogram_quantile(before: dict[float, int], after: dict[float, int], q: float) -> float:
    """The upper bound of the bucket holding quantile q of the reconciles between two reads."""
    delta = {le: after[le] - before.get(le, 0) for le in after}
    total = delta.get(float("inf"), 0)
    for le in sorted(delta):
        if total and delta[le] >= q * total:
            return le
    return float("nan")


# --- the operator's memory ----------------------------------------------------------------------


def operator_memory() -> tuple[int, int] | None:
    """The operator's resident and peak resident set in bytes, from /proc on this host (the test
    bed's containers are host processes); None when it runs elsewhere. The process is the one
    whose POD_NAME is the operator pod's, not any other kask-operator on the host."""
    pod = kubectl("get", "pods", "--namespace", "kask-system", "-l",
                  "app.kubernetes.io/component=operator", "--field-selector=status.phase=Running",
                  "-o", "jsonpath={.items[0].metadata.name}").strip()
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            if (pid_dir / "comm").read_text().strip() != "kask-operator":
                continue
            if f"POD_NAME={pod}".encode() not in (pid_dir / "environ").read_bytes().split(b"\0"):
                continue
            fields = dict(
                line.split(":", 1) for line in (pid_dir / "status").read_text().splitlines()
            )
        except OSError:
            continue
        kib = lambda k: int(fields[k].split()[0]) * 1024  # noqa: E731
        return kib("VmRSS"), kib("VmHWM")
    return None


# --- report -------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    if not values:
        return {}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p90": pct(values, 0.9),
        "p99": pct(values, 0.99),
        "max": max(values),
    }


def fmt(s: dict, unit: str = "s") -> str:
    if not s:
        return "n/a"
    return f"{s['median']:.2f} {unit} (p90 {s['p90']:.2f}, max {s['max']:.2f}, n={s['n']})"


def mib(b: int) -> str:
    return f"{b / (1 << 20):.1f} MiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--single", type=int, default=5, help="jobs run one after another (latency)")
    ap.add_argument("--burst", type=int, default=50, help="jobs applied at once")
    ap.add_argument("--present", type=int, default=100, help="DaskJobs present for the memory figure")
    ap.add_argument("--admit", type=int, default=1000,
                    help="queued (suspended) DaskJobs applied at once, for admission at scale")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds to wait for the burst")
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    ap.add_argument("--markdown", type=Path, help="write the table as Markdown")
    args = ap.parse_args()
    for var in ("KUBECONFIG", "KASK_S3_ENDPOINT", "KASK_S3_BUCKET", "AWS_ACCESS_KEY_ID"):
        if var not in os.environ:
            raise SystemExit(f"opbench: {var} is not set: eval \"$(tests/cluster/cluster env)\" first")

    ns = f"kask-bench-{os.getpid()}"
    prefix = f"bench-operator-{os.getpid()}"
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    watches: list[Watch] = []
    try:
        env = os.environ
        kubectl("create", "secret", "generic", "lake", "--namespace", ns,
                f"--from-literal=AWS_ACCESS_KEY_ID={env['AWS_ACCESS_KEY_ID']}",
                f"--from-literal=AWS_SECRET_ACCESS_KEY={env['AWS_SECRET_ACCESS_KEY']}")
        for f in sorted((ROOT / "examples/data/orders").glob("*.csv")):
            s3_put(f, f"{prefix}/data/orders/{f.name}")
        djs, jobs, pods = (Watch(r, ns) for r in ("daskjobs", "jobs", "pods"))
        watches = [djs, jobs, pods]
        time.sleep(1.0)  # the watches' initial lists
        figures: dict = {"memory_idle": operator_memory()}

        # 1. One job at a time: apply to first pod, stage gaps with nothing else running.
        applied: dict[str, float] = {}
        for i in range(args.single):
            name = f"single-{i}"
            applied[name] = apply([daskjob(name, ns, prefix)])
            wait_phase(ns, [name], "Succeeded", 300)
            print(f"opbench: {name} Succeeded in {time.monotonic() - applied[name]:.1f}s", flush=True)
        tls = timelines(jobs, pods, djs)
        first_added, first_running, total, gaps_job, gaps_pod = [], [], [], [], []
        for name, t0 in applied.items():
            tl = tls[name]
            added, running = tl.first_pod()
            first_added.append(added - t0)
            first_running.append(running - t0)
            if tl.succeeded is not None:
                total.append(tl.succeeded - t0)
            for g_job, g_pod in tl.gaps():
                gaps_job.append(g_job)
                gaps_pod.append(g_pod)
        figures["single"] = {
            "apply_to_first_pod_created": summary(first_added),
            "apply_to_first_pod_running": summary(first_running),
            "apply_to_succeeded": summary(total),
            "stage_gap_job_created": summary(gaps_job),
            "stage_gap_pod_created": summary(gaps_pod),
            "steps": len(tls[next(iter(applied))].steps()),
        }

        # 2. A burst: all at once, until every one Succeeded.
        names = [f"burst-{i:03d}" for i in range(args.burst)]
        t0 = apply([daskjob(n, ns, prefix) for n in names])
        done = wait_phase(ns, names, "Succeeded", args.timeout)
        tls = timelines(jobs, pods, djs)
        b_first, b_gap_job, b_gap_pod, b_total = [], [], [], []
        for n in names:
            added, _ = tls[n].first_pod()
            b_first.append(added - t0)
            if tls[n].succeeded is not None:
                b_total.append(tls[n].succeeded - t0)
            for g_job, g_pod in tls[n].gaps():
                b_gap_job.append(g_job)
                b_gap_pod.append(g_pod)
        figures["burst"] = {
            "jobs": args.burst,
            "all_succeeded_seconds": done - t0,
            "apply_to_first_pod_created": summary(b_first),
            "apply_to_succeeded": summary(b_total),
            "stage_gap_job_created": summary(b_gap_job),
            "stage_gap_pod_created": summary(b_gap_pod),
        }
        print(f"opbench: {args.burst} jobs Succeeded in {done - t0:.1f}s", flush=True)

        # 3. Memory with `present` DaskJobs: the finished ones plus suspended ones to make up
        # the number (present, reconciled and watched, but running nothing).
        have = args.single + args.burst
        extra = [f"held-{i:03d}" for i in range(max(0, args.present - have))]
        if extra:
            apply([daskjob(n, ns, prefix, suspend=True) for n in extra])
            wait_phase(ns, extra, "Suspended", 300)
        time.sleep(3.0)  # a resync or two with everything present
        figures["present"] = len(phases(ns))
        figures["memory_present"] = operator_memory()

        # 4. Admission at scale: `admit` DaskJobs applied at once, suspended as a queue holds
        # them. One is admitted when the operator has created its plan Job (suspended) and set
        # its phase Suspended; the reconciles' latency comes from the operator's histogram.
        if args.admit:
            queued = [f"admit-{i:04d}" for i in range(args.admit)]
            hist0 = reconcile_histogram()
            t0 = time.monotonic()
            for i in range(0, len(queued), 250):
                apply([daskjob(n, ns, prefix, suspend=True) for n in queued[i:i + 250]])
            done = wait_phase(ns, queued, "Suspended", args.timeout, poll=2.0)
            hist1 = reconcile_histogram()
            admitted: dict[str, float] = {}
            for t, _, obj in djs.snapshot():
                name = obj.get("metadata", {}).get("name", "")
                if name.startswith("admit-") and obj.get("status", {}).get("phase") == "Suspended":
                    admitted.setdefault(name, t)
            plan_jobs = sum(1 for n in phases_jobs(ns) if n.startswith("admit-"))
            figures["admit"] = {
                "jobs": args.admit,
                "all_admitted_seconds": done - t0,
                "apply_to_admitted": summary([t - t0 for t in admitted.values()]),
                "plan_jobs_created": plan_jobs,
                "reconcile_p50_seconds": histogram_quantile(hist0, hist1, 0.5),
                "reconcile_p99_seconds": histogram_quantile(hist0, hist1, 0.99),
                "reconciles": hist1.get(float("inf"), 0) - hist0.get(float("inf"), 0),
                "memory": operator_memory(),
            }
            print(f"opbench: {args.admit} DaskJobs admitted in {done - t0:.1f}s", flush=True)
    finally:
        for w in watches:
            w.stop()
        subprocess.run(["kubectl", "delete", "namespace", ns, "--wait=false"],
                       capture_output=True, check=False)

    report(figures, args)
    return 0


def report(f: dict, args: argparse.Namespace) -> None:
    s, b = f["single"], f["burst"]
    rows = [
        ("apply → first worker pod created (one job at a time)", fmt(s["apply_to_first_pod_created"]), ""),
        ("apply → first worker pod Running", fmt(s["apply_to_first_pod_running"]), ""),
        ("apply → Succeeded, one job (" + str(s["steps"]) + " steps)", fmt(s["apply_to_succeeded"]), ""),
        ("stage gap: Job Complete → next Job created", fmt(s["stage_gap_job_created"]), "< 1 s"),
        ("stage gap: Job Complete → next stage's pod created", fmt(s["stage_gap_pod_created"]), "< 1 s"),
        (f"{b['jobs']} jobs applied at once → all Succeeded", f"{b['all_succeeded_seconds']:.1f} s", ""),
        ("  apply → first pod created, per job", fmt(b["apply_to_first_pod_created"]), ""),
        ("  apply → Succeeded, per job", fmt(b["apply_to_succeeded"]), ""),
        ("  stage gap: Job Complete → next Job created", fmt(b["stage_gap_job_created"]), "< 1 s"),
        ("  stage gap: Job Complete → next stage's pod created", fmt(b["stage_gap_pod_created"]), ""),
    ]
    for key, label in (("memory_idle", "no DaskJobs"), ("memory_present", f"{f['present']} DaskJobs present")):
        m = f.get(key)
        if m:
            goal = "< 50 MiB" if key == "memory_present" else ""
            rows.append((f"operator resident memory, {label}", f"{mib(m[0])} (peak so far {mib(m[1])})", goal))
    a = f.get("admit")
    if a:
        rows.append((f"{a['jobs']} queued DaskJobs applied at once → all admitted (plan Job, Suspended)",
                     f"{a['all_admitted_seconds']:.1f} s ({a['plan_jobs_created']} plan Jobs)", ""))
        adm = a["apply_to_admitted"]
        if adm:
            rows.append(("  apply → admitted, per job",
                         f"p50 {adm['median']:.2f} s, p99 {adm['p99']:.2f} s, max {adm['max']:.2f} s", ""))
        rows.append((f"  reconcile duration ({a['reconciles']} reconciles; histogram bucket bounds)",
                     f"p50 ≤ {a['reconcile_p50_seconds'] * 1000:.0f} ms, p99 ≤ {a['reconcile_p99_seconds'] * 1000:.0f} ms", ""))
        if a.get("memory"):
            rows.append((f"operator resident memory, {a['jobs']} more DaskJobs queued",
                         f"{mib(a['memory'][0])} (peak so far {mib(a['memory'][1])})", "< 100 MiB"))
    lines = ["| measure | figure | goal |", "|---|---|---|"]
    lines += [f"| {a} | {b_} | {c} |" for a, b_, c in rows]
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps(f, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
