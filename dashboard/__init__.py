"""The browser dashboard: views and templates only; every change goes through the API's store.

For now it shows the cluster's kinds and how to connect; the management UI grows on top of
the registry in later issues.
"""
