"""The node agent (Berth's kubelet): ``manage.py nodeagent``.

* ``credentials``: the server side of joining, a bootstrap token exchanged for node tokens;
* ``agent``: the HTTP-only agent, registering Nodes, renewing Leases, reporting status and
  driving the pods bound to its nodes through a runtime;
* ``status``: pod phase and conditions from container statuses, as upstream's kubelet;
* ``runtimes``: ``process`` (containers as local processes, with probes, restarts, memory
  limits and logs the API server streams for ``kubectl logs``; a restarted agent adopts the
  processes it left, or cleanly replaces them) and ``simulated`` (many kwok-style nodes in
  one process, for scale tests and demos).
"""
