"""The store: the only write path for API objects.

Every create, update, patch and delete of a resource goes through the functions here (the API
views, later the controllers, the dashboard and the admin site alike). One write is one
transaction that

1. reads the current row (for updates) and checks the caller's preconditions,
2. applies the kind's strategy: identity fields kept, status only through the status
   subresource, defaulting, ``metadata.generation`` bumped on spec changes only,
3. runs admission (schema, names, kind validation) — a rejected write changes nothing,
4. detects a no-op (the same object again) and then writes nothing, keeping resourceVersion,
5. takes the next global revision (``clusterapi.core``), compares-and-swaps the row on its
   revision, and appends the change-log row,

and after commit wakes the watch feed (and, later, the controllers). Conflicting writers get
409 Conflict; ``guaranteed_update`` retries a read-modify-write (patches) on conflict.

Steps 1-4 run before the transaction: a create is *prepared* (``prepare_create``) and then
inserted. Creates made outside a transaction of the caller's are written in groups
(``group``): the concurrent creates of a process share one transaction, one turn at the write
lock and one commit; ``create_many`` writes a caller's own batch (a loop's Events) the same way.
"""

from clusterapi.store.errors import ApiError
from clusterapi.store.objects import (
    ListResult,
    PreparedCreate,
    WriteResult,
    compact,
    create,
    create_many,
    current_revision,
    delete,
    delete_collection,
    get,
    guaranteed_update,
    list_objects,
    now,
    prepare_create,
    shared_lists,
    update,
)
from clusterapi.store.shared import list_shared

__all__ = [
    "ApiError",
    "ListResult",
    "PreparedCreate",
    "WriteResult",
    "compact",
    "create",
    "create_many",
    "current_revision",
    "delete",
    "delete_collection",
    "get",
    "guaranteed_update",
    "list_objects",
    "list_shared",
    "now",
    "prepare_create",
    "shared_lists",
    "update",
]
