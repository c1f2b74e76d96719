"""The issuer's routes, mounted under the issuer URL's path (``/dex`` by default)."""

from __future__ import annotations

from django.urls import path

from clusterapi.identity import endpoints, views

app_name = "identity"

urlpatterns = [
    path(".well-known/openid-configuration", endpoints.discovery, name="discovery"),
    path("keys", endpoints.jwks, name="keys"),
    path("auth", views.authorize, name="authorize"),
    path("auth/<str:connector_id>", views.login, name="login"),
    path("callback", views.callback, name="callback"),
    path("token", endpoints.token, name="token"),
    path("token/revoke", endpoints.revoke, name="revoke"),
    path("userinfo", endpoints.userinfo, name="userinfo"),
    path("device/code", endpoints.device_code, name="device-code"),
    path("device", views.device, name="device"),
    path("logout", views.logout, name="logout"),
    path("logout/confirm", views.logout_confirm, name="logout-confirm"),
]
