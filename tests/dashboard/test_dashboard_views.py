"""The dashboard asks the same RBAC authorizer as the API."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


def test_anonymous_visitors_are_sent_to_log_in(client: Client) -> None:
    response = client.get("/ui/")
    assert response.status_code == 302
    assert response["Location"] == "/oidc/authenticate/?next=%2Fui%2F"


@pytest.mark.django_db
def test_a_superuser_sees_the_dashboard(client: Client) -> None:
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    response = client.get("/ui/")
    assert response.status_code == 200
    assert b"Deployment" in response.content


@pytest.mark.django_db
def test_a_user_without_an_rbac_grant_is_forbidden(client: Client) -> None:
    user = get_user_model().objects.create_user("nobody", "nobody@example.com", "pw")
    client.force_login(user)
    response = client.get("/ui/")
    assert response.status_code == 403
    assert b'User "nobody" cannot get path "/ui/"' in response.content
