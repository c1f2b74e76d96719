"""Start-up check: a broken ``identity`` section stops ``manage.py check``/``up`` with the
file, the path inside it and the reason."""

from __future__ import annotations

from typing import Any

from django.core import checks

from clusterapi.config import ConfigError
from clusterapi.identity import config as identity_config


@checks.register()
def identity_configuration(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        identity_config.get()
    except ConfigError as exc:
        return [checks.Error(str(exc), id="berth.identity.E001")]
    return []
