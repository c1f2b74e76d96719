"""How one agent process vouches for several nodes in one batch of samples.

An agent serving K nodes (the simulated runtime) holds one node credential per node but
sends one request per interval, authenticated with the first node's token. Every entry for
another node carries ``signature``: an HMAC-SHA256 of the entry (canonical JSON: sorted keys,
without ``signature``) under a key derived from that node's credential, exactly as the log
endpoint's key is derived (``clusterapi.nodeagent.runtimes.process.logserver``) but with a
label of its own. The agent holds the token; the API server holds only its SHA-256 digest
(``ApiToken.digest``) and derives the same key; neither key nor token travels over the
wire, so a node can speak for another only by holding that node's credential.

No Django here: the agent imports this module too.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

KEY_LABEL = b"berth.dev/node-metrics"
SIGNATURE_FIELD = "signature"


def key_from_digest(digest: str) -> bytes:
    """The signing key, from the SHA-256 hex digest the API server stores of a token."""
    return hmac.new(digest.encode(), KEY_LABEL, hashlib.sha256).digest()


def key_from_token(token: str) -> bytes:
    """The signing key, from the node's token (as ``clusterapi.authn.tokens.digest``)."""
    return key_from_digest(hashlib.sha256(token.encode()).hexdigest())


def _canonical(entry: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in entry.items() if k != SIGNATURE_FIELD}
    return orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS)


def sign(key: bytes, entry: dict[str, Any]) -> str:
    """The signature of one node's entry."""
    return hmac.new(key, _canonical(entry), hashlib.sha256).hexdigest()


def verify(key: bytes, entry: dict[str, Any]) -> bool:
    """Whether ``entry`` carries a valid signature under ``key``."""
    given = entry.get(SIGNATURE_FIELD)
    return isinstance(given, str) and hmac.compare_digest(given, sign(key, entry))
