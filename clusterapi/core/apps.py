from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "clusterapi.core"
    label = "core"
    verbose_name = "Object store"
