"""Object storage primitives: the resource table, the global revision and the change log.

Every stored object is one ``Resource`` row holding the object's JSON exactly as it is served,
so lists can be streamed without re-encoding. The ``Revision`` row is the single counter from
which every write takes its ``resourceVersion``; taking it locks the row until the transaction
commits, so revisions commit in order and a watcher that reads "everything after N" never misses
a write that committed late. Each write also appends a ``Change`` row (the object after the
write, and before it for modifications), which watches replay from; ``compact`` trims it.

``clusterapi.core.watch`` turns committed changes into watch events for API clients.
Nothing outside ``clusterapi.store`` writes these tables.

``clusterapi.core.selectors`` parses and matches label and field selectors; it sits here, at
the bottom, because every layer above uses it (API, controllers, RBAC, scheduler).
"""
