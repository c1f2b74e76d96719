"""Berth's scheduler: assigns pending pods to nodes, as kube-scheduler does.

Layout
------
* ``framework``: the plugin ``Protocol``s and ``CycleState``, profiles with Kubernetes'
  default plugins and weights, the evaluation of one pod against every node (incremental
  across pods of the same shape), and the failure message; ``snapshot``: the data plugins
  read (``PodInfo``, ``NodeInfo``, ``Snapshot``), re-exported by ``framework``;
  ``quantity``: exact resource quantities.
* ``plugins``: one module per plugin (NodeUnschedulable, NodeName, TaintToleration,
  NodeAffinity, NodePorts, NodeResourcesFit, NodeResourcesBalancedAllocation,
  PodTopologySpread, InterPodAffinity) and the registry naming them.
* ``cache``: nodes, pods and namespaces read from the store and kept current from its
  change log; ``queue``: order and backoff of pending pods; ``preemption``:
  DefaultPreemption.
* ``scheduler``: one cycle (filter, score, pick, bind or explain) and the batch over all
  pending pods; ``controller``: the Celery control loop that runs it.

Flow
----
A pod is created without ``spec.nodeName`` → the store wakes the scheduler controller →
the cache syncs → pending pods are evaluated in priority order → each is bound with one
compare-and-swap write (``PodScheduled=True`` in the same write) or marked
``PodScheduled=False`` with a ``FailedScheduling`` event such as ``0/3 nodes are available:
1 node(s) were unschedulable, 2 Insufficient cpu.`` and retried with backoff when the
cluster changes. Higher-priority pods that cannot fit may preempt lower-priority ones.
"""

from clusterapi.scheduler.scheduler import (
    SWEEP,
    BatchResult,
    Outcome,
    Scheduler,
    get,
    reset,
    schedule_one,
    schedule_pending,
)

__all__ = [
    "SWEEP",
    "BatchResult",
    "Outcome",
    "Scheduler",
    "get",
    "reset",
    "schedule_one",
    "schedule_pending",
]
