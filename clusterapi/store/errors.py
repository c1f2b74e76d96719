"""The store's errors: ``clusterapi.core.errors``, re-exported where the store's callers look."""

from clusterapi.core.errors import *  # noqa: F403
from clusterapi.core.errors import ApiError, Cause

__all__ = ["ApiError", "Cause"]
