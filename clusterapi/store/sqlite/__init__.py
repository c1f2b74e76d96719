"""Django's SQLite backend with a fair queue for the database's single writer.

SQLite lets one transaction write at a time. A second writer that finds the write lock taken
waits in SQLite's busy handler, which polls by *sleeping* (1, 2, 5, 10 … 100 ms between
tries). Two things follow. Under concurrent writes from the API's thread pool those sleeps,
not work, set the pace: creates waited tens of milliseconds while the CPU idled. And the
handler is unfair: a process that commits and begins again at once (the scheduler writing a
batch in short transactions) takes the lock back before a sleeping writer of another process
wakes, so API requests waited seconds behind the control loops.

Here a writer queues twice before ``BEGIN IMMEDIATE``:

1. within its process, on one ``threading.Lock``, handed on at commit or rollback, so the
   next thread starts the moment the previous one is done;
2. between processes, on two ``flock``-ed files beside the database: the *turnstile* and the
   *writer* lock. A writer holds the turnstile while it waits for the writer lock and lets it
   go once it has it. A process that has just committed must pass the turnstile again, which
   the waiting writer of another process holds: the turn goes to the one already waiting.
   The kernel drops the locks of a process that dies, so a killed worker blocks nobody.

Both waits end with "database is locked" after the connection's ``timeout``, as SQLite's
busy handler would. In-memory databases (the tests' default) have one process and skip step 2.

Checkpoints, too, stay out of the write turn. By default the commit that takes the WAL past
1,000 pages copies them into the database file itself, holding the turn all the while: a
third of the time writers held it. Here commits do so only past ``WAL_AUTOCHECKPOINT_PAGES``
(a backstop), and a thread per process (``Checkpointer``) runs a PASSIVE checkpoint every
``CHECKPOINT_INTERVAL_SECONDS`` beside the writers. SQLite starts the WAL over only when a
write transaction begins with every frame copied, which steady writes never allow by chance;
so once the WAL passes ``WAL_RESTART_PAGES`` the checkpointer copies the few frames written
since in a write turn of its own (taken through the same queues), and the next writer starts
the WAL over.

Use it as ``ENGINE = "clusterapi.store.sqlite"`` (``clusterapi/settings.py`` does for
``sqlite://`` URLs); everything else is Django's backend unchanged.
"""
