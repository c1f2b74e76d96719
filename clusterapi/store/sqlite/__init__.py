"""Django's SQLite backend with one in-process queue for the database's single writer.

SQLite lets one transaction write at a time. A second writer that finds the write lock taken
waits in SQLite's busy handler, which polls by *sleeping* (1, 2, 5, 10 … 100 ms between
tries). Under concurrent writes from the API's thread pool those sleeps, not work, set the
pace: creates waited tens of milliseconds while the CPU idled. Here every thread of the
process queues on one ``threading.Lock`` before ``BEGIN IMMEDIATE`` and hands it on at
commit or rollback, so the next writer starts the moment the previous one is done. Writers in
other processes (the Celery worker) still meet through SQLite's own lock and busy timeout.

Use it as ``ENGINE = "clusterapi.store.sqlite"`` (``clusterapi/settings.py`` does for
``sqlite://`` URLs); everything else is Django's backend unchanged.
"""
