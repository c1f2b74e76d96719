"""The Kubernetes-compatible REST API.

``urls`` maps Kubernetes' paths to the views: ``discovery`` (``/version``, ``/api``,
``/apis``), ``openapi`` (``/openapi/v3``), ``views`` (every verb on every kind, with
subresources) and ``watching`` (watch streams). ``negotiation`` reads bodies (JSON, YAML,
protobuf via ``protobuf``) and Accept headers; ``table`` renders ``kubectl get`` tables;
``status`` encodes errors as Kubernetes ``Status`` objects; ``authn`` authenticates bearer
tokens. Label and field selectors are parsed by ``clusterapi.core.selectors``.

Views run on the ASGI event loop and hand blocking work to a thread pool; all writes go
through ``clusterapi.store``.
"""
