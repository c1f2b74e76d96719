from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "clusterapi.metrics"
    label = "metrics"
    verbose_name = "Resource metrics"

    def ready(self) -> None:
        # The retention task registers on import (beat: ``berth.metrics.prune``).
        from clusterapi.metrics import tasks  # noqa: F401
