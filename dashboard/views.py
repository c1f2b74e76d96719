"""Dashboard pages. Every page asks the one RBAC authorizer, as the API does.

Login is OpenID Connect (``dashboard/oidc.py``): the two views below are mozilla-django-oidc's
with the provider's settings resolved at request time and clear pages for failed logins.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from clusterapi.authn.chain import session_user
from clusterapi.rbac import Attributes, authorize, forbidden_message
from clusterapi.resources import KINDS
from dashboard.oidc import oidc_setting, remember_identity

logger = logging.getLogger(__name__)


@never_cache
def index(request: HttpRequest) -> HttpResponse:
    user = session_user(request)
    if user is None:
        return HttpResponseRedirect(settings.LOGIN_URL + "?" + urlencode({"next": request.path}))
    attrs = Attributes.for_path(user, "get", request.path)
    if not authorize(attrs).allowed:
        return HttpResponseForbidden(forbidden_message(attrs))
    return render(request, "dashboard/index.html", {"kinds": KINDS, "user": user})


def logged_out(request: HttpRequest) -> HttpResponse:
    """Where the issuer sends the browser back after the logout."""
    return render(request, "dashboard/logged_out.html")


def _login_failed(request: HttpRequest, reason: str, status: int) -> HttpResponse:
    context = {"reason": reason, "login_url": settings.LOGIN_URL}
    return render(request, "dashboard/login_failed.html", context, status=status)


class OIDCLoginView(OIDCAuthenticationRequestView):
    """``/oidc/authenticate/``: state, nonce and PKCE verifier into the session, then the
    issuer's authorization endpoint."""

    get_settings = staticmethod(oidc_setting)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response: HttpResponse = super().dispatch(request, *args, **kwargs)
        except (requests.RequestException, ImproperlyConfigured) as exc:
            logger.warning("dashboard login: issuer unavailable: %s", exc)
            return _login_failed(request, "The identity provider cannot be reached.", 502)
        return response


class OIDCCallbackView(OIDCAuthenticationCallbackView):
    """``/oidc/callback/``: the issuer's answer; see ``dashboard.oidc.OIDCBackend``."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            response: HttpResponse = super().get(request)
        except SuspiciousOperation as exc:
            # A state that is not ours (CSRF or a replayed callback), a bad ID token.
            logger.warning("dashboard login rejected: %s", exc)
            return _login_failed(request, "The login response was not valid.", 400)
        except (requests.RequestException, ImproperlyConfigured) as exc:
            logger.warning("dashboard login: token exchange failed: %s", exc)
            return _login_failed(request, "The identity provider refused the login.", 502)
        return response

    def login_success(self) -> HttpResponse:
        response: HttpResponse = super().login_success()
        remember_identity(self.request, self.user)
        return response

    def login_failure(self) -> HttpResponse:
        return _login_failed(self.request, "The login did not succeed.", 401)
