"""Container probes: httpGet, tcpSocket and exec, with upstream's timing and thresholds.

A ``Prober`` runs one probe of one container run on its own task: it waits
``initialDelaySeconds``, probes every ``periodSeconds`` (each attempt bounded by
``timeoutSeconds``), and calls ``on_result(ok)`` whenever the probe's verdict changes:
``successThreshold`` consecutive successes make it succeed, ``failureThreshold``
consecutive failures make it fail. Ports named in a probe are resolved through the
container's ports to the host ports they were mapped to. A gRPC probe is not supported and
always succeeds (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

Obj = dict[str, Any]
logger = logging.getLogger(__name__)


def _port(value: Any, ports: dict[str, int], by_number: dict[int, int]) -> int:
    if isinstance(value, str) and not value.isdigit():
        if value not in ports:
            raise ValueError(f"port {value!r} is not a named container port")
        return ports[value]
    number = int(value)
    return by_number.get(number, number)


async def check(
    probe: Obj,
    ports: dict[str, int],
    by_number: dict[int, int],
    host: str,
    run_exec: Callable[[list[str], float], Awaitable[int]],
) -> tuple[bool, str]:
    """One attempt of ``probe``: (succeeded, message)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "httpGet" in probe:
            spec = probe["httpGet"] or {}
            port = _port(spec.get("port"), ports, by_number)
            scheme = str(spec.get("scheme") or "HTTP").lower()
            target = str(spec.get("host") or host)
            path = str(spec.get("path") or "/")
            headers = {
                str(h.get("name")): str(h.get("value")) for h in spec.get("httpHeaders") or ()
            }
            headers.setdefault("User-Agent", "kube-probe/1.37")
            async with httpx.AsyncClient(verify=False, timeout=timeout) as client:  # noqa: S501 - as upstream, probes skip TLS verification
                response = await client.get(f"{scheme}://{target}:{port}{path}", headers=headers)
            if 200 <= response.status_code < 400:
                return True, ""
            return False, f"HTTP probe failed with statuscode: {response.status_code}"
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"] or {}
            port = _port(spec.get("port"), ports, by_number)
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(str(spec.get("host") or host), port), timeout
            )
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True, ""
        if "exec" in probe:
            command = [str(c) for c in (probe["exec"] or {}).get("command") or ()]
            code = await run_exec(command, timeout)
            if code == 0:
                return True, ""
            return False, f"command {command} exited with {code}"
        if "grpc" in probe:
            return True, ""
        return False, "probe has no handler"
    except TimeoutError:
        return False, f"probe timed out after {timeout:g}s"
    except (OSError, httpx.HTTPError, ValueError) as exc:
        return False, f"probe failed: {exc.__class__.__name__}: {exc}"


class Prober:
    """Runs one probe until cancelled, reporting each change of its verdict."""

    def __init__(
        self,
        kind: str,
        probe: Obj,
        attempt: Callable[[Obj], Awaitable[tuple[bool, str]]],
        on_result: Callable[[bool, str], Awaitable[None]],
    ) -> None:
        self.kind = kind
        self.probe = probe
        self.attempt = attempt
        self.on_result = on_result
        self.verdict: bool | None = None

    async def run(self) -> None:
        probe = self.probe
        delay = float(probe.get("initialDelaySeconds") or 0)
        period = max(float(probe.get("periodSeconds") or 10), 0.1)
        failures_needed = max(int(probe.get("failureThreshold") or 3), 1)
        successes_needed = max(int(probe.get("successThreshold") or 1), 1)
        if "grpc" in probe:
            logger.warning("%s probe: gRPC probes are not supported; treated as passing", self.kind)
        await asyncio.sleep(delay)
        successes = failures = 0
        while True:
            ok, message = await self.attempt(probe)
            if ok:
                successes, failures = successes + 1, 0
                if successes >= successes_needed and self.verdict is not True:
                    self.verdict = True
                    await self.on_result(True, "")
            else:
                successes, failures = 0, failures + 1
                if failures >= failures_needed and self.verdict is not False:
                    self.verdict = False
                    await self.on_result(False, message)
            await asyncio.sleep(period)
