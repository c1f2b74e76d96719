"""The process runtime: each container of a pod is a real local process.

Flow
----
``ProcessRuntime.run_pod`` (``runtime``) gives a pod a directory (``<data dir>/pods/<uid>``),
maps each container port to a free host port, materializes its volumes (``spec``), runs its
init containers one after the other, then its containers side by side (``container``): one
``ContainerRun`` per container restarts its process as ``restartPolicy`` says, with
CrashLoopBackOff between crashes (10 s doubling to 300 s; ``BERTH_BACKOFF_BASE_SECONDS``
scales it for tests), runs its probes (``probes``), enforces its memory limit, and writes its
output to log files (``logs``). Every change is reported to the agent, which turns container
statuses into the pod's status. ``stop_pod`` stops restarting, sends SIGTERM to each process
group, SIGKILL after the grace period, and removes the pod's directory.

Choices, for clients to rely on
-------------------------------
* **Images**: see ``spec``: ``command`` runs as given; without one, a small table maps
  well-known images (``python`` → ``python3``, ``busybox``/``alpine`` → ``sh`` …) to a
  program; any other image waits with reason ``ErrImagePull``.
* **Network**: pods share the host's network. The pod IP is the node's address
  (``127.0.0.1`` for an agent beside its API server). Each ``containerPort`` gets a free host
  port, given to the process as ``PORT`` (the first) and ``BERTH_PORT_<NAME or NUMBER>``;
  probes are pointed at the host port. The mapping is published in the pod condition
  ``berth.dev/HostPorts`` (the status subresource changes nothing but status, so not an
  annotation), message ``<container>:<port name or number>=<host port>,...``.
* **Volumes** and mount paths: see ``spec`` (a root of symlinks, ``BERTH_VOLUME_<NAME>``,
  mount paths rewritten in command, args, env and workingDir).
* **Service-account tokens** and in-cluster clients: ``incluster`` (tokens requested bound
  to the pod and refreshed at 80 % of their lifetime; found at the standard path through a
  mount namespace per container where the machine allows one, through ``KUBECONFIG``
  otherwise; decided when the agent starts).
* **Logs** and how the API server reads them: ``logs`` and ``logserver``.
* **Agent restarts** adopt or cleanly replace what the earlier agent left, as the kubelet
  does with the containers its runtime still runs: no orphans, no duplicates.

  - Each container process is started by a small shim (``shim``, ``handles``) that stays
    its parent, records its pid and start time (``<pod dir>/run/<container>/pid``), writes
    its exit code when it ends (``exit``), and holds its stdout/stderr FIFOs open, so that
    the container neither dies nor loses output with the agent. Each pod's host ports,
    container restart counts, statuses and runs are kept in ``<pod dir>/state.json``
    (``state``), rewritten atomically on every change.
  - An agent starting on the same data dir reads them (``ProcessRuntime.load_leftovers``).
    A pod still bound to its node runs again with its host ports and volumes as they are
    (``PodRun.run``); each container resumes (``ContainerRun.resume``): one whose shim still
    runs, whose spec is unchanged and whose stdin was not a pipe from the earlier agent is
    adopted (same pid; watched through a pidfd of its shim; its log file goes on from the
    FIFOs, output written meanwhile included); any other is stopped (SIGTERM to its group,
    SIGKILL after the grace period) and reported terminated with the exit code its shim
    saw, and its restart policy restarts it, counted in ``restartCount``. A pod deleted or
    bound elsewhere meanwhile has its processes stopped once the agent's first list of its
    pods shows it is not one to run (``ProcessRuntime.sync_pods``).
  - A pid is trusted only with its start time and the boot id, so a pid the kernel reused
    is never signalled or adopted.
  - An agent that stops cleanly (SIGTERM, ``manage.py up`` stopping) still takes its
    containers down, so nothing runs unwatched; their state stays, and the next agent
    restarts them, each restart counted. Limits: while no agent runs, a container's output
    waits in its pipe (64 KiB, then its writes block until an agent reads again); a line
    an agent had read but not yet written when it was killed is lost.
* Not isolated: processes run as the agent's user, without cgroups and without namespaces
  beyond the mount namespace that places the token; CPU limits are not enforced, memory
  limits by polling RSS (``container``).
"""

from clusterapi.nodeagent.runtimes.process.runtime import (
    HOST_PORTS_CONDITION,
    ProcessOptions,
    ProcessRuntime,
)

__all__ = ["HOST_PORTS_CONDITION", "ProcessOptions", "ProcessRuntime"]
