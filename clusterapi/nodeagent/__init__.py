"""The node agent (Berth's kubelet): ``manage.py nodeagent``.

* ``credentials``: the server side of joining, a bootstrap token exchanged for node tokens;
* ``agent``: the HTTP-only agent, registering Nodes, renewing Leases, reporting status and
  driving the pods bound to its nodes through a runtime;
* ``status``: pod phase and conditions from container statuses, as upstream's kubelet;
* ``runtimes``: ``simulated`` (kwok-style); the ``process`` runtime is still to come.
"""
