"""ASGI entry point: uvicorn serves this (``manage.py up``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterapi.settings")

application = get_asgi_application()
