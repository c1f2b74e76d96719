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
* **Logs** and how the API server reads them: ``logs`` and ``logserver``.
* **Agent restarts**: each running container's process group is recorded in
  ``<pod dir>/pids/<container>`` (pid and creation time); an agent starting on the same data
  dir kills the groups an earlier one left (``ProcessRuntime.reap_leftovers``) and runs the
  pods bound to it afresh: no orphans, no duplicates, but no adoption either.
* Not isolated: processes run as the agent's user, without namespaces or cgroups; CPU limits
  are not enforced, memory limits by polling RSS (``container``).
"""

from clusterapi.nodeagent.runtimes.process.runtime import (
    HOST_PORTS_CONDITION,
    ProcessOptions,
    ProcessRuntime,
)

__all__ = ["HOST_PORTS_CONDITION", "ProcessOptions", "ProcessRuntime"]
