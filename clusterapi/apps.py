"""The project package as a Django app, so its management commands are found."""

from django.apps import AppConfig


class ClusterAPIConfig(AppConfig):
    name = "clusterapi"
    verbose_name = "Berth control plane"

    def ready(self) -> None:
        from clusterapi import checks  # noqa: F401 - registers the system checks
