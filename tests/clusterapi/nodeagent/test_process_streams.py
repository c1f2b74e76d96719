"""The agent side of exec and attach, without a server: frames over a socket pair into real
processes, as the API server would send them."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from clusterapi.nodeagent.runtimes.process import spec, streams
from clusterapi.nodeagent.runtimes.process.container import Prepared
from clusterapi.nodeagent.runtimes.process.streams import ERROR, STDERR, STDIN, STDOUT


def test_frames_round_trip_through_a_stream() -> None:
    async def main() -> list[tuple[int, bytes] | None]:
        reader = asyncio.StreamReader()
        reader.feed_data(streams.frame(STDOUT, b"hello") + streams.frame(streams.CLOSE, b"\0"))
        reader.feed_data(streams.frame(STDIN)[:3])  # a torn frame at the end
        reader.feed_eof()
        return [await streams.read_frame(reader) for _ in range(3)]

    assert asyncio.run(main()) == [(STDOUT, b"hello"), (streams.CLOSE, b"\0"), None]


def test_a_non_zero_exit_is_a_status_with_an_exitcode_cause() -> None:
    status = orjson.loads(streams.exit_status(3, ["sh", "-c", "exit 3"]))
    assert status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert orjson.loads(streams.success_status()) == {"metadata": {}, "status": "Success"}


def test_options_follow_the_query_and_a_terminal_has_no_separate_stderr() -> None:
    options = streams.Options.from_query(
        {"command": ["sh", "-c", "x"], "stdin": ["true"], "stderr": ["true"], "tty": ["true"]}
    )
    assert options.command == ("sh", "-c", "x")
    assert options.stdin and options.tty and not options.stderr and not options.stdout
    assert streams.window_size(b'{"Width":120,"Height":40}') == (40, 120)
    assert streams.window_size(b"junk") is None


def _container(tmp_path: Path) -> Any:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "note").write_text("from the volume\n")
    mounts = spec.Mounts(tmp_path, {"/data": volume})
    env = {"PATH": os.environ["PATH"], "GREETING": "hi"}
    # No mount namespace to enter (ContainerRun.enter): commands run as given.
    return SimpleNamespace(
        _prepared=Prepared([], env, tmp_path, mounts), enter=lambda argv, prepared: argv
    )


async def _session(
    container: Any, query: dict[str, list[str]], sent: list[bytes]
) -> dict[int, bytes]:
    """Run one exec session; returns what arrived on each channel."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    client_reader, client_writer = await asyncio.open_connection(sock=theirs)
    for data in sent:
        client_writer.write(data)
    session = asyncio.create_task(
        streams.Exec(container, streams.Options.from_query(query), reader, writer).run()
    )
    received: dict[int, bytes] = {}
    while (item := await asyncio.wait_for(streams.read_frame(client_reader), 10)) is not None:
        channel, payload = item
        received[channel] = received.get(channel, b"") + payload
        if channel == ERROR:
            break
    await session
    writer.close()
    client_writer.close()
    return received


def test_exec_runs_in_the_containers_environment_with_stdin(tmp_path: Path) -> None:
    query = {
        "command": ["sh", "-c", "cat; echo $GREETING; pwd; cat /data/note; echo oops >&2"],
        "stdin": ["true"],
        "stdout": ["true"],
        "stderr": ["true"],
    }
    sent = [streams.frame(STDIN, b"typed\n"), streams.frame(streams.CLOSE, bytes([STDIN]))]
    received = asyncio.run(_session(_container(tmp_path), query, sent))
    assert received[STDOUT] == f"typed\nhi\n{tmp_path}\nfrom the volume\n".encode()
    assert received[STDERR] == b"oops\n"
    assert orjson.loads(received[ERROR])["status"] == "Success"


def test_exec_reports_exit_codes_and_missing_programs(tmp_path: Path) -> None:
    container = _container(tmp_path)
    failed = asyncio.run(
        _session(container, {"command": ["sh", "-c", "exit 3"], "stdout": ["true"]}, [])
    )
    assert orjson.loads(failed[ERROR])["details"]["causes"][0]["message"] == "3"
    missing = asyncio.run(
        _session(container, {"command": ["no-such-program"], "stderr": ["true"]}, [])
    )
    assert b"executable file not found in $PATH" in missing[STDERR]
    assert orjson.loads(missing[ERROR])["details"]["causes"][0]["message"] == "127"


def test_exec_with_a_terminal_sizes_it(tmp_path: Path) -> None:
    query = {
        "command": ["sh", "-c", "sleep 0.3; stty size; tty"],
        "stdout": ["true"],
        "stdin": ["true"],
        "tty": ["true"],
    }
    sent = [streams.frame(streams.RESIZE, b'{"Width":100,"Height":30}')]
    received = asyncio.run(_session(_container(tmp_path), query, sent))
    assert b"30 100" in received[STDOUT]
    assert b"/dev/pts/" in received[STDOUT]


def test_the_output_tee_hands_lines_to_attached_clients(tmp_path: Path) -> None:
    async def main() -> list[tuple[str, bytes] | None]:
        tee = streams.OutputTee(tmp_path / "0.log", 1 << 20, 2)
        queue = tee.subscribe()
        tee.write("stdout", b"one")
        tee.write("stderr", b"tw", partial=True)
        tee.close()
        return [queue.get_nowait() for _ in range(3)]

    assert asyncio.run(main()) == [("stdout", b"one\n"), ("stderr", b"tw"), None]
    assert b"one" in (tmp_path / "0.log").read_bytes()
