"""The audit log's retention (``BERTH_AUDIT_RETENTION_DAYS``, pruned by celery beat) and its
read-only page in the admin site, for superusers only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from clusterapi.audit import log
from clusterapi.audit.models import AuditEvent
from clusterapi.audit.tasks import prune_task


def _event(age: timedelta, name: str) -> AuditEvent:
    log.record(user="alice", groups=["g"], verb="delete", request_uri="/x", code=200, name=name)
    event = AuditEvent.objects.get(name=name)
    event.timestamp = timezone.now() - age
    event.save(update_fields=["timestamp"])
    return event


@pytest.mark.django_db
def test_prune_deletes_only_events_past_the_configured_retention(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BERTH_AUDIT_RETENTION_DAYS", "7")
    _event(timedelta(days=8), "old")
    _event(timedelta(days=6), "recent")
    assert prune_task() == 1
    assert list(AuditEvent.objects.values_list("name", flat=True)) == ["recent"]


def test_celery_beat_runs_the_prune_task() -> None:
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "berth.audit.prune" in tasks


def test_default_retention_is_thirty_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BERTH_AUDIT_RETENTION_DAYS", raising=False)
    assert log.retention() == timedelta(days=30)


@pytest.mark.django_db
def test_admin_site_shows_the_log_read_only_to_superusers(client: Client) -> None:
    event = _event(timedelta(0), "shown")
    users = get_user_model()
    root = users.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    listing = client.get("/admin/audit/auditevent/")
    assert listing.status_code == 200
    assert b"shown" in listing.content and b"alice" in listing.content
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db
def test_admin_site_hides_the_log_from_staff_who_are_not_superusers(client: Client) -> None:
    _event(timedelta(0), "hidden")
    users = get_user_model()
    staff = users.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    client.force_login(staff)
    # Without an RBAC grant on /admin/* the admin site itself sends them to log in.
    response = client.get("/admin/audit/auditevent/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_admin_site_lets_in_staff_whose_group_rbac_allows_it_but_not_to_the_log(
    client: Client,
) -> None:
    from django.contrib.auth.models import Group

    from clusterapi import store
    from clusterapi.rbac import invalidate
    from clusterapi.resources import by_kind

    _event(timedelta(0), "still-hidden")
    roles = by_kind("rbac.authorization.k8s.io/v1", "ClusterRole")
    bindings = by_kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
    assert roles is not None and bindings is not None
    store.create(
        roles,
        {
            "metadata": {"name": "admin-site-viewer"},
            "rules": [{"nonResourceURLs": ["/admin", "/admin/*"], "verbs": ["get"]}],
        },
    )
    store.create(
        bindings,
        {
            "metadata": {"name": "admin-site-viewers"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "admin-site-viewer",
            },
            "subjects": [
                {"kind": "Group", "name": "operators", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        },
    )
    invalidate()
    users = get_user_model()
    staff = users.objects.create_user("oper", "oper@example.com", "pw", is_staff=True)
    staff.groups.add(Group.objects.create(name="operators"))
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/audit/auditevent/").status_code == 403
