"""The built-in OIDC issuer, in the style of dex (served under ``<server>/dex``).

Role: every client of Berth logs in through this issuer. The dashboard and kubectl are its
relying parties; the API accepts the ID tokens it signs as bearer tokens (``trust.py`` makes
it a trusted issuer of ``clusterapi.authn.oidc`` without an HTTP round trip for its keys).

Library: authlib (``authlib.integrations.django_oauth2`` with ``authlib.oidc.core`` and the
RFC 7636, 7009 and 8628 modules), signing with joserfc. django-oauth-toolkit was the other
candidate; it was set aside because its grants, tokens and ID tokens hang off Django users
(a foreign key to ``AUTH_USER_MODEL``), while dex's users come from connectors (LDAP entries,
static passwords) that are not Django users, and because authlib leaves open exactly the
hooks this issuer needs: where codes and tokens live, refresh-token families with reuse
detection, and re-checking the user with its connector on every refresh.

Flow of a login::

    client ──/auth──► views.authorize ── authlib validates client, redirect URI, PKCE, scope
                          │ not logged in: pending request kept in the session
                          ▼
                     /auth/<connector> ── connector.login(username, password) (lockout.py)
                          │ sessions.login → back to /auth
                          ▼
    client ◄─ 302 code ── AuthorizationCode (hashed, single use)
    client ──/token──► server.CodeGrant + PKCE + IDToken → TokenFamily/Token (hashed) + id_token
    client ──/token──► server.RefreshGrant: rotate; replay revokes the family; connector.refresh
    CLI    ──/device/code, /token──► server.DeviceGrant; the user approves at /device

Modules: ``config`` (the ``identity`` section of ``BERTH_CONFIG``), ``connectors/`` (one per
type), ``models``, ``keys`` (signing keys and rotation), ``clients``, ``claims``, ``server``
(authlib wiring), ``endpoints`` (machine endpoints), ``views`` (browser pages), ``sessions``,
``lockout``, ``trust``, ``tasks``, ``checks``, ``admin``.
"""
