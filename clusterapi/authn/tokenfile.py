"""Static tokens from a token file in Kubernetes' CSV format (``--token-auth-file``).

Each line is ``token,user,uid[,"group1,group2"]``; blank lines and ``#`` comments are
skipped. The file named by ``BERTH_TOKEN_FILE`` is read at first use and re-read when its
modification time changes, so tokens can be rotated without a restart.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from pathlib import Path

from clusterapi.authn import User

_lock = threading.Lock()
_state: dict[str, object] = {"path": None, "mtime": None, "tokens": {}}


class TokenFileError(ValueError):
    """The token file is malformed: the message names the file, line and reason."""


def parse(text: str, source: str = "<token file>") -> dict[str, User]:
    tokens: dict[str, User] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3:
            raise TokenFileError(f"{source}:{number}: expected token,user,uid[,groups]")
        token, name, uid = (cell.strip() for cell in row[:3])
        if not token or not name:
            raise TokenFileError(f"{source}:{number}: token and user must not be empty")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        if token in tokens:
            raise TokenFileError(f"{source}:{number}: duplicate token")
        tokens[token] = User(name=name, uid=uid, groups=groups).with_authenticated()
    return tokens


def _tokens() -> dict[str, User]:
    path_text = os.environ.get("BERTH_TOKEN_FILE", "")
    if not path_text:
        return {}
    path = Path(path_text)
    mtime = path.stat().st_mtime_ns
    with _lock:
        if _state["path"] != path or _state["mtime"] != mtime:
            _state["tokens"] = parse(path.read_text(), str(path))
            _state["path"], _state["mtime"] = path, mtime
        tokens = _state["tokens"]
    assert isinstance(tokens, dict)
    return tokens


def authenticate(token: str) -> User | None:
    return _tokens().get(token)
