"""Berth's control plane: the Django project package and the core of the platform.

Life of an API request
----------------------
1. ``clusterapi.api`` receives a request at a Kubernetes path (``/api/v1/...`` or
   ``/apis/<group>/<version>/...``), authenticates the bearer token and decodes the body
   (JSON, YAML or the ``k8s\\0`` protobuf envelope).
2. The kind is looked up in ``clusterapi.resources`` (the registry: one declaration per kind),
   which also supplies the schema, the printer columns and the strategy hooks.
3. ``clusterapi.admission`` defaults and validates the object against the kubernetes-validate
   schemas; a rejected request writes nothing.
4. ``clusterapi.store`` is the only write path: in one transaction it takes the next global
   revision (the ``resourceVersion``), compares-and-swaps the row and appends to the change log.
5. ``clusterapi.core.watch`` tails the change log and fans events out to watch streams; later,
   controllers are woken the same way.
"""

# The Celery app is created with the project so every process (API server, worker, shell)
# sends tasks to the configured broker, not to Celery's built-in default.
from clusterapi.celery import app as celery_app

__all__ = ["celery_app"]
