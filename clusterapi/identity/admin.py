"""Identity clients in the admin site (local users are Django users, in the Users admin).

A new client's secret is generated on save and shown once in the success message; only its
digest is stored. Static clients of the configuration file are not listed: they live in the
file.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from clusterapi.identity.models import Client


class ClientForm(forms.ModelForm):  # type: ignore[type-arg,unused-ignore]
    new_secret = forms.BooleanField(
        required=False, help_text="Generate a new client secret (confidential clients)."
    )

    class Meta:
        model = Client
        fields = ("client_id", "name", "public", "redirect_uris", "post_logout_redirect_uris")


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):  # type: ignore[type-arg,unused-ignore]
    form = ClientForm
    list_display = ("client_id", "name", "public", "created")
    search_fields = ("client_id", "name")

    def save_model(self, request: HttpRequest, obj: Client, form: Any, change: bool) -> None:
        secret = ""
        if obj.public:
            obj.set_secret("")
        elif not change or form.cleaned_data.get("new_secret") or not obj.secret_digest:
            secret = Client.new_secret()
            obj.set_secret(secret)
        super().save_model(request, obj, form, change)
        if secret:
            messages.warning(
                request, f"Client secret of {obj.client_id} (shown only now): {secret}"
            )
