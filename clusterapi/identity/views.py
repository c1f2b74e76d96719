"""The issuer's browser pages: authorization, login, device approval and logout.

Flow of a login (as dex): ``/auth?client_id=…`` is validated by authlib first (client,
exact redirect URI, response type, scopes, PKCE). A user already logged in at the issuer is
sent straight back with a code. Otherwise the request is kept in the session under a random
id and the user picks a connector (the page lists them when there is more than one) and logs
in at ``/auth/<connector>?req=<id>``; the login redirects to ``/auth`` again, which now
issues the code. Device approval (``/device``) uses the same login pages. A redirect
connector (upstream OIDC) has no form: ``/auth/<connector>`` sends the browser to the
upstream with a single-use ``state``, and the upstream sends it back to ``/callback``, which
then continues exactly as a password login does.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from clusterapi.identity import clients, connectors, lockout, sessions
from clusterapi.identity import config as identity_config
from clusterapi.identity.connectors.base import ConnectorError, Identity, RedirectConnector
from clusterapi.identity.models import DeviceRequest
from clusterapi.identity.server import server

KIND_AUTHORIZE = "authorize"
KIND_DEVICE = "device"
KIND_UPSTREAM = "upstream"  # a browser sent to a redirect connector, keyed by its state


def _url(path: str, **query: str) -> str:
    base = identity_config.get().path + path
    return f"{base}?{urlencode(query)}" if query else base


def _error_page(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(
        request, "identity/message.html", {"title": "Error", "message": message}, status=status
    )


@never_cache
@require_http_methods(["GET"])
def authorize(request: HttpRequest) -> HttpResponse:
    """``/auth``: the authorization endpoint (response_type=code)."""
    issuer = server()
    logged_in = sessions.current(request)
    identity = logged_in[0] if logged_in else None
    try:
        grant = issuer.get_consent_grant(request, end_user=identity)
    except OAuth2Error as error:
        if error.redirect_uri:
            response: HttpResponse = issuer.handle_error_response(request, error)
            return response
        # Never redirect to an unchecked URI: tell the user instead.
        return _error_page(request, f"{error.error}: {error.description or ''}".strip(": "))
    if logged_in is not None and grant.prompt != "login":
        grant.request.auth_time = logged_in[1]
        result: HttpResponse = issuer.create_authorization_response(
            request, grant_user=logged_in[0], grant=grant
        )
        return result
    query = request.GET.copy()
    query.pop("prompt", None)  # the login about to happen is the one prompt=login asks for
    return _choose_connector(request, sessions.remember(request, KIND_AUTHORIZE, query.urlencode()))


def _choose_connector(request: HttpRequest, request_id: str) -> HttpResponse:
    enabled = connectors.enabled(identity_config.get())
    if len(enabled) == 1:
        (only,) = enabled
        return HttpResponseRedirect(_url(f"/auth/{only}", req=request_id))
    choices = [
        {"name": c.name, "type": c.TYPE, "url": _url(f"/auth/{cid}", req=request_id)}
        for cid, c in enabled.items()
    ]
    return render(request, "identity/connectors.html", {"connectors": choices})


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest, connector_id: str) -> HttpResponse:
    """``/auth/<connector>``: the password form of one connector, or the way to its upstream."""
    connector = connectors.enabled(identity_config.get()).get(connector_id)
    request_id = request.GET.get("req", "")
    waiting = sessions.pending(request, request_id)
    if connector is None:
        return _error_page(request, "Unknown connector.", status=404)
    if waiting is None or waiting["kind"] == KIND_UPSTREAM:
        return _error_page(request, "This login request has expired. Start again from the app.")
    if isinstance(connector, RedirectConnector):
        return _to_upstream(request, connector, request_id)
    context = {"connector": connector, "error": "", "username": ""}
    if request.method == "POST":
        username = request.POST.get("login", "").strip()
        password = request.POST.get("password", "")
        context["username"] = username
        minutes = lockout.locked_minutes(request, connector.id, username)
        if minutes:
            context["error"] = (
                f"Too many failed logins. This account is locked here for {minutes} minutes."
            )
            return render(request, "identity/login.html", context, status=429)
        try:
            identity = connector.login(username, password)
        except ConnectorError:
            context["error"] = "The user directory cannot be reached. Try again later."
            return render(request, "identity/login.html", context, status=503)
        if identity is None:
            lockout.failed(request, connector.id, username)
            context["error"] = "Invalid username or password."
            return render(request, "identity/login.html", context, status=401)
        lockout.succeeded(request, connector.id, username)
        return _logged_in(request, identity, request_id, waiting)
    return render(request, "identity/login.html", context)


def _logged_in(
    request: HttpRequest, identity: Identity, request_id: str, waiting: dict[str, Any]
) -> HttpResponse:
    """After any successful login: the issuer session, then back to what was waiting."""
    sessions.login(request, identity)
    sessions.forget(request, request_id)
    if waiting["kind"] == KIND_DEVICE:
        return HttpResponseRedirect(_url("/device", user_code=waiting["data"]))
    return HttpResponseRedirect(_url("/auth") + "?" + QueryDict(waiting["data"]).urlencode())


def _to_upstream(
    request: HttpRequest, connector: RedirectConnector, request_id: str
) -> HttpResponse:
    # The pending entry's random id is the OAuth state: unguessable, bound to this browser's
    # session, single use (dropped by the callback) and expiring with expiry.authRequests.
    state = sessions.remember(request, KIND_UPSTREAM, "")
    try:
        url, kept = connector.login_url(state)
    except ConnectorError as exc:
        sessions.forget(request, state)
        return _error_page(request, f"Cannot reach {connector.name}: {exc}", status=502)
    # What the connector keeps (nonce, PKCE verifier) joins the entry of its state.
    entries = dict(request.session[sessions.PENDING_KEY])
    data = {"connector": connector.id, "req": request_id, "kept": kept}
    entries[state] = {**entries[state], "data": json.dumps(data)}
    request.session[sessions.PENDING_KEY] = entries
    return HttpResponseRedirect(url)


@never_cache
@require_http_methods(["GET"])
def callback(request: HttpRequest) -> HttpResponse:
    """``/callback``: where a redirect connector's upstream sends the browser back."""
    state = request.GET.get("state", "")
    entry = sessions.pending(request, state) if state else None
    if entry is None or entry["kind"] != KIND_UPSTREAM:
        return _error_page(request, "Unknown or expired login state. Start again from the app.")
    sessions.forget(request, state)  # single use, whatever happens next
    data = json.loads(entry["data"])
    connector = connectors.enabled(identity_config.get()).get(data["connector"])
    waiting = sessions.pending(request, data["req"])
    if not isinstance(connector, RedirectConnector) or waiting is None:
        return _error_page(request, "This login request has expired. Start again from the app.")
    try:
        identity = connector.handle_callback(request.GET.dict(), data["kept"])
    except ConnectorError as exc:
        return _error_page(request, f"Login with {connector.name} failed: {exc}", status=502)
    return _logged_in(request, identity, data["req"], waiting)


def _device_request(user_code: str) -> DeviceRequest | None:
    code = user_code.strip().upper().replace(" ", "")
    if len(code) == 8 and "-" not in code:
        code = f"{code[:4]}-{code[4:]}"
    found = DeviceRequest.objects.filter(user_code=code, consumed=False).first()
    if found is None or found.is_expired() or found.status != DeviceRequest.PENDING:
        return None
    return found


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def device(request: HttpRequest) -> HttpResponse:
    """``/device``: enter the user code, log in, then approve or deny the device."""
    user_code = (request.POST.get("user_code") or request.GET.get("user_code") or "").strip()
    if not user_code:
        return render(request, "identity/device.html", {})
    found = _device_request(user_code)
    if found is None:
        invalid = {"error": "That code is not valid or has expired.", "user_code": user_code}
        return render(request, "identity/device.html", invalid, status=400)
    logged_in = sessions.current(request)
    if logged_in is None:
        return _choose_connector(request, sessions.remember(request, KIND_DEVICE, found.user_code))
    decision = request.POST.get("decision")
    if request.method == "POST" and decision in ("approve", "deny"):
        found.status = DeviceRequest.APPROVED if decision == "approve" else DeviceRequest.DENIED
        found.identity = logged_in[0].to_dict() if decision == "approve" else None
        found.save(update_fields=["status", "identity"])
        message = (
            "The device is now logged in. You can close this window."
            if decision == "approve"
            else "The device was denied access."
        )
        return render(request, "identity/message.html", {"title": "Device", "message": message})
    client = clients.get(found.client_id)
    context: dict[str, Any] = {
        "user_code": found.user_code,
        "client": client.name if client else found.client_id,
        "scopes": found.scope.split(),
        "identity": logged_in[0],
    }
    return render(request, "identity/device_approve.html", context)


@never_cache
@csrf_exempt  # relying parties send users here from other origins; see logout_confirm
@require_http_methods(["GET", "POST"])
def logout(request: HttpRequest) -> HttpResponse:
    """``/logout``: RP-initiated logout (end_session_endpoint).

    With a valid ``id_token_hint`` the issuer session ends at once and the user goes back to
    the client's registered ``post_logout_redirect_uri`` (exact match), with ``state``.
    Without one, the user confirms first (a CSRF-protected form), as the spec advises.
    """
    issuer = server()
    try:
        ending = issuer.validate_endpoint_request("end_session", request)
    except OAuth2Error as error:
        return _error_page(request, f"Logout request rejected: {error.description}")
    if ending.needs_confirmation:
        return render(request, "identity/logout.html", {"confirm_url": _url("/logout/confirm")})
    sessions.logout(request)
    response = issuer.create_endpoint_response("end_session", ending)
    if response is None:
        return render(
            request,
            "identity/message.html",
            {"title": "Logged out", "message": "You are logged out."},
        )
    result: HttpResponse = response
    return result


@never_cache
@csrf_protect
@require_http_methods(["POST"])
def logout_confirm(request: HttpRequest) -> HttpResponse:
    """The confirmation form of a logout without ``id_token_hint``."""
    sessions.logout(request)
    return render(
        request, "identity/message.html", {"title": "Logged out", "message": "You are logged out."}
    )
