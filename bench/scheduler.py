"""The scheduler benchmark: pods scheduled per second on simulated nodes.

    python bench/scheduler.py [--nodes 1000] [--pods 10000] [--scenario basic|spread|all]
                              [--database sqlite|postgres] [--events] [--profile FILE]

Sets up a fresh instance (its own data directory and SQLite database, or a fresh
PostgreSQL database named by ``DATABASE_URL``), creates ``--nodes`` Node objects (4 cpu,
16Gi, 110 pods each, spread over 3 zones) and ``--pods`` pending pods through the store, then
for each scenario measures:

* **end to end**: ``Scheduler.schedule_pending()`` of a scheduler that was running before
  the pods were created (its cache synced with the nodes, as scheduler_perf starts the
  scheduler before it creates the measured pods): following the change log to the new pods,
  filter and score every node, one compare-and-swap bind write per pod through the store
  (``PodScheduled=True`` in the same write); with ``--events`` also the ``Scheduled`` event
  per pod, as upstream;
* **algorithm only**: the same pods on the same nodes with the bind replaced by the cache's
  ``assume`` (no database write), i.e. the scheduling cycle itself;
* the **reference limit**: store writes per second of the same kind (a pod update through
  ``store.guaranteed_update``), measured in the same run, since every bind is one of them;
* **cold sync**: how long a scheduler started after the pods exist (a restart) takes to read
  the nodes and the pending pods into its cache, reported on its own.

Scenarios: ``basic`` (requests 100m cpu, 128Mi memory, like scheduler_perf's
SchedulingBasic) and ``spread`` (the same plus a hard topology spread constraint,
``maxSkew: 5`` over ``topology.kubernetes.io/zone``, like scheduler_perf's
TopologySpreading). The process's garbage collector is tuned as the worker's is
(``clusterapi.core.gctune``). Upstream's floors for comparison: 270 pods/s basic, 85 pods/s spread
(5,000 nodes). Prints a table; loops are bounded; the data directory is removed at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, load_average

sys.path.insert(0, str(ROOT))


def setup_django(data_dir: Path) -> None:
    os.environ["BERTH_DATA_DIR"] = str(data_dir)
    os.environ["BERTH_CONTROLLERS"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterapi.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def create_cluster(nodes: int, namespace: str) -> None:
    from django.db import transaction

    from clusterapi import store
    from clusterapi.resources import by_kind

    ns_kind, node_kind = by_kind("v1", "Namespace"), by_kind("v1", "Node")
    assert ns_kind is not None and node_kind is not None
    store.create(ns_kind, {"metadata": {"name": namespace}})
    resources = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    with transaction.atomic():
        for i in range(nodes):
            name = f"node-{i:05d}"
            store.create(
                node_kind,
                {
                    "metadata": {
                        "name": name,
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "topology.kubernetes.io/zone": f"zone-{i % 3}",
                        },
                    },
                    "status": {"capacity": resources, "allocatable": resources},
                },
            )


def pod_manifest(name: str, spread: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "pause",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            }
        ]
    }
    if spread:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 5,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"color": "blue"}},
            }
        ]
    return {"metadata": {"name": name, "labels": {"color": "blue"}}, "spec": spec}


def create_pods(count: int, namespace: str, prefix: str, spread: bool) -> None:
    from django.db import transaction

    from clusterapi import store
    from clusterapi.resources import by_kind

    pod_kind = by_kind("v1", "Pod")
    assert pod_kind is not None
    for start in range(0, count, 500):
        with transaction.atomic():
            for i in range(start, min(start + 500, count)):
                store.create(
                    pod_kind, pod_manifest(f"{prefix}-{i:05d}", spread), namespace=namespace
                )


def delete_pods(namespace: str) -> None:
    from clusterapi import store
    from clusterapi.resources import by_kind

    pod_kind = by_kind("v1", "Pod")
    assert pod_kind is not None
    store.delete_collection(pod_kind, namespace, grace_period=0)


class DryScheduler:
    """A Scheduler whose bind only assumes the pod in the cache (no database write)."""

    @staticmethod
    def make(seed: int) -> Any:
        from clusterapi.scheduler import Scheduler, scheduler

        class _Dry(Scheduler):
            def _bind(self, pod: Any, node: str) -> Any:
                obj = dict(pod.obj)
                obj["spec"] = {**obj.get("spec", {}), "nodeName": node}
                self.cache.assume(pod, obj)
                self.queue.forget(pod)
                return scheduler.Outcome(pod.namespace, pod.name, node=node)

        return _Dry(seed=seed, record_scheduled_events=False)


def reference_writes(namespace: str, samples: int) -> float:
    """Store writes per second: a pod annotation update, the same kind of write as a bind."""
    from clusterapi import store
    from clusterapi.resources import by_kind

    pod_kind = by_kind("v1", "Pod")
    assert pod_kind is not None
    names = [
        p["metadata"]["name"]
        for p in store.list_objects(pod_kind, namespace, limit=samples).objects()
    ]

    def touch(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"].setdefault("annotations", {})["bench"] = str(time.time())
        return obj

    started = time.perf_counter()
    for name in names:
        store.guaranteed_update(pod_kind, namespace, name, touch, manage_fields=False)
    return len(names) / (time.perf_counter() - started)


def run_scenario(name: str, args: argparse.Namespace, namespace: str) -> dict[str, Any]:
    from clusterapi.scheduler import Scheduler

    spread = name == "spread"
    # Both schedulers run before the pods exist, as upstream's benchmark starts its scheduler
    # before creating the measured pods: their caches then follow the pods' creation.
    dry = DryScheduler.make(seed=1)
    dry.cache.sync()
    real = Scheduler(seed=1, record_scheduled_events=args.events)
    real.cache.sync()
    print(f"[{name}] creating {args.pods} pending pods ...", flush=True)
    t0 = time.perf_counter()
    create_pods(args.pods, namespace, name, spread)
    setup = time.perf_counter() - t0

    # Cold start: a scheduler that finds the pods already there reads them all at once.
    cold = Scheduler(seed=1)
    t0 = time.perf_counter()
    cold.cache.sync()
    sync_seconds = time.perf_counter() - t0
    del cold

    # Algorithm only: the whole batch, binds assumed in memory.
    t0, c0 = time.perf_counter(), time.process_time()
    dry_result = dry.schedule_pending()
    dry_seconds, dry_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert dry_result.scheduled == args.pods, dry_result

    # End to end: real binds.
    profiler = cProfile.Profile() if args.profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    result = real.schedule_pending()
    if profiler:
        profiler.disable()
        profiler.dump_stats(f"{args.profile}.{name}")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert result.scheduled == args.pods, result

    c0 = time.process_time()
    reference = reference_writes(namespace, min(2000, args.pods))
    reference_cpu = min(2000, args.pods) / (time.process_time() - c0)
    delete_pods(namespace)
    return {
        "scenario": name,
        "setup_s": setup,
        "sync_s": sync_seconds,
        "dry_pods_per_s": args.pods / dry_seconds,
        "dry_pods_per_cpu_s": args.pods / dry_cpu,
        "pods_per_s": args.pods / seconds,
        "pods_per_cpu_s": args.pods / cpu,
        "seconds": seconds,
        "reference_writes_per_s": reference,
        "reference_writes_per_cpu_s": reference_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--scenario", choices=("basic", "spread", "all"), default="all")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--events", action="store_true", help="record a Scheduled event per pod")
    parser.add_argument("--profile", default="", help="write cProfile stats to FILE.<scenario>")
    args = parser.parse_args()
    if args.database == "sqlite":
        os.environ.pop("DATABASE_URL", None)
    elif not os.environ.get("DATABASE_URL"):
        parser.error("--database postgres needs DATABASE_URL (a scratch database)")

    data_dir = Path(tempfile.mkdtemp(prefix="berth-bench-scheduler-"))
    try:
        setup_django(data_dir)
        # The scheduler runs in the Celery worker, which tunes its collector once started.
        from clusterapi.core import gctune

        gctune.tune()
        namespace = "bench"
        print(f"creating {args.nodes} nodes ...", flush=True)
        create_cluster(args.nodes, namespace)
        scenarios = ("basic", "spread") if args.scenario == "all" else (args.scenario,)
        rows = [run_scenario(s, args, namespace) for s in scenarios]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
        f"{platform.python_version()}, load average {load_average()}"
    )
    print(
        f"database: {args.database}; {args.nodes} nodes; {args.pods} pods per scenario; "
        f"Scheduled events: {'on' if args.events else 'off'}"
    )
    print("rates per wall-clock second, and per CPU-second of this process (in brackets):")
    print(
        f"{'scenario':<8} {'end-to-end pods/s':>22} {'algorithm pods/s':>22} "
        f"{'store writes/s':>20} {'cold sync s':>13}"
    )
    for row in rows:
        e2e = f"{row['pods_per_s']:.0f} ({row['pods_per_cpu_s']:.0f})"
        dry = f"{row['dry_pods_per_s']:.0f} ({row['dry_pods_per_cpu_s']:.0f})"
        ref = f"{row['reference_writes_per_s']:.0f} ({row['reference_writes_per_cpu_s']:.0f})"
        print(f"{row['scenario']:<8} {e2e:>22} {dry:>22} {ref:>20} {row['sync_s']:>13.2f}")


if __name__ == "__main__":
    main()
