"""Compiled validator code kept on disk, so a process loads it instead of generating it.

fastjsonschema turns a schema into Python source and compiles it. For a Pod, whose schema
reaches most of the core API, that takes about 0.7 s, paid by every process (the API server,
each Celery worker) the first time it validates the kind: a stall in the first request, and
under load in the middle of a rollout. The compiled code object is kept, marshalled, in
``settings.CACHE_DIR/validators`` and loaded in milliseconds by the next process.

An entry's name is a digest of everything the code depends on: the definition, the schemas
(their digest), the fastjsonschema version and the interpreter's bytecode magic number, so a
new schema bundle, library or Python never loads stale code. Entries are written to a
temporary file and renamed, so concurrent processes see whole entries or none; an entry that
cannot be read or written is simply rebuilt (the cache only saves time). The directory is
created private to the user (0700): code is loaded from it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import marshal
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import CodeType

import fastjsonschema
import orjson
from django.conf import settings

logger = logging.getLogger(__name__)


def _directory() -> Path | None:
    base = str(getattr(settings, "CACHE_DIR", "") or "")
    return Path(base) / "validators" if base else None


def entry_name(definition: str, schemas_digest: str) -> str:
    """The cache entry of one definition's code (see the module docstring)."""
    key = "\0".join(
        (
            definition,
            schemas_digest,
            fastjsonschema.VERSION,
            importlib.util.MAGIC_NUMBER.hex(),
        )
    )
    return hashlib.sha256(key.encode()).hexdigest() + ".marshal"


def digest(schemas: object) -> str:
    """A digest of the schema definitions (callers keep it: it takes tens of ms)."""
    return hashlib.sha256(orjson.dumps(schemas, option=orjson.OPT_SORT_KEYS)).hexdigest()


def code(name: str, source: Callable[[], str]) -> CodeType:
    """The compiled code of entry ``name``: loaded, or built from ``source()`` and kept."""
    directory = _directory()
    path = directory / name if directory is not None else None
    if path is not None:
        try:
            # Only this module writes here, in a directory private to the user.
            loaded = marshal.loads(path.read_bytes())  # noqa: S302
            if isinstance(loaded, CodeType):
                return loaded
        except FileNotFoundError:
            pass
        except (OSError, ValueError, EOFError, TypeError):
            logger.warning("unreadable validator cache entry %s: rebuilding it", path)
    compiled = compile(source(), f"<validator {name[:12]}>", "exec")
    if path is not None:
        _store(path, compiled)
    return compiled


def _store(path: Path, compiled: CodeType) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(marshal.dumps(compiled))
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        logger.info("validator cache not written (%s): %s", path, exc)
