"""Resource metrics: what ``kubectl top`` shows, and the history behind the dashboard's charts.

Flow
----
1. **Sampling** (node agent, ``clusterapi.nodeagent.metrics``): every
   ``BERTH_METRICS_INTERVAL_SECONDS`` (15 s) each agent measures its nodes and the containers
   of its pods — the process runtime with psutil (CPU seconds of each container's process
   tree over the window, resident memory of the tree; host CPU and used memory), the
   simulated runtime with plausible figures derived from the pods' requests.
2. **Transport** (``ingest``): one ``POST /apis/metrics.berth.dev/v1/samples`` per interval
   per agent process, with its node credential; entries for the agent's other nodes are
   signed with their own credentials (``signing``). Only node identities may report, only for
   their own nodes and the pods bound to them.
3. **Storage** (``models.Sample``): one row per node or pod per interval, written in bulk,
   indexed by (kind, namespace, name, time); ``tasks.prune_task`` (beat ``metrics-prune``)
   deletes rows past ``BERTH_METRICS_RETENTION_SECONDS`` (one hour).
4. **Serving** (``serving``): ``metrics.k8s.io/v1beta1`` NodeMetrics and PodMetrics are
   computed kinds of the registry (``Kind.reader``), built from each object's newest sample
   that is not stale, formatted exactly as metrics-server formats them (``formatting``);
   ``views`` serves the per-object history (``/apis/metrics.berth.dev/v1/history/...``).
"""
