"""``manage.py oidc-login``: Django names a command after its module, so this file gives the
plugin its documented name; the code is in ``oidc_login.py``."""

from clusterapi.management.commands.oidc_login import Command

__all__ = ["Command"]
