"""The audit log: every request that changes state, and every denied request.

The API records one ``AuditEvent`` per such request (``record``): time,
user, groups, impersonator, verb, resource, namespace, name, response code, and for updates
and patches the diff of the object (a JSON patch from the old to the new state, metadata
bookkeeping left out). Events older than ``BERTH_AUDIT_RETENTION_DAYS`` (default 30) are
pruned hourly by celery beat (``tasks.prune_task``). Only cluster admins read the log:
through the admin site, and through the API at the non-resource path ``/audit/v1/events``
(``views.events``, newest first, ``?limit=``), which RBAC grants to nobody but
``cluster-admin`` (its ``nonResourceURLs: ["*"]``).

``BERTH_AUDIT_MODE`` chooses how events reach the database, as kube-apiserver's
``--audit-log-mode`` does: ``batch`` (the default) queues each to a writer thread
(``core.behind.WriteBehind``) that commits everything queued in one transaction, so the request is
answered without a second turn at the store's write lock; ``blocking`` inserts it in the
request's thread. Readers in the process (the API view, the admin site) ``flush`` first.
"""
