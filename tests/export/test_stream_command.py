"""`stream_command`, the one place the script reads a subprocess as a stream: it hands over
every byte in order, and it never outlives its timeout or leaves its child running."""

from __future__ import annotations

import sys
import time

import pytest

from ops.export.cloudsql_export import stream_command

WRITE_THEN_HANG = (
    "import sys, time; sys.stdout.write('partial'); sys.stdout.flush(); time.sleep(60)"
)


def test_every_byte_arrives_in_order_and_stderr_is_kept() -> None:
    received: list[bytes] = []
    program = (
        "import sys; sys.stdout.buffer.write(bytes(range(256)) * 8192); "
        "sys.stderr.write('ERROR: (gcloud.storage.cat) done' * 1000); sys.exit(3)"
    )

    result = stream_command([sys.executable, "-c", program], received.append, timeout=60)

    assert b"".join(received) == bytes(range(256)) * 8192
    assert result.returncode == 3
    assert result.stderr.startswith("ERROR: (gcloud.storage.cat) done")
    assert not result.timed_out


def test_a_stalled_read_is_stopped_at_its_timeout() -> None:
    received: list[bytes] = []
    started = time.monotonic()

    result = stream_command([sys.executable, "-c", WRITE_THEN_HANG], received.append, timeout=1)

    assert result.timed_out
    assert result.returncode == 124
    assert b"".join(received) == b"partial"
    assert time.monotonic() - started < 30, "stopped long before the child's own 60 s"


def test_a_refusing_consumer_stops_the_child_and_its_reason_propagates() -> None:
    def refuse(chunk: bytes) -> None:
        raise ValueError(f"not a dump: {chunk!r}")

    started = time.monotonic()
    with pytest.raises(ValueError, match="not a dump: b'partial'"):
        stream_command([sys.executable, "-c", WRITE_THEN_HANG], refuse, timeout=60)
    assert time.monotonic() - started < 30, "the child was killed, not waited for"


def test_a_missing_program_is_an_error_result() -> None:
    result = stream_command(["/nonexistent/gcloud"], lambda chunk: None, timeout=5)

    assert result.returncode == 127
    assert "could not run /nonexistent/gcloud" in result.stderr
