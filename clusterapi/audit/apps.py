from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "clusterapi.audit"
    label = "audit"
    verbose_name = "Audit log"
