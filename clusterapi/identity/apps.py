from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "clusterapi.identity"
    label = "identity"
    verbose_name = "Identity (OIDC issuer)"

    def ready(self) -> None:
        # The system check (config errors at start-up) and the beat task register on import.
        from clusterapi.identity import checks, tasks  # noqa: F401
