"""The harness's own guards, checked against stand-in processes: a sanitizer report in a
process's stderr and a non-zero exit on SIGTERM must be caught, or the suite would pass
on a broken server; the strict response parser must refuse bad framing."""
import time

import pytest

from conftest import Proc, free_port, parse_responses, tail


def shell(tmp_path, trap, line):
    """A shell that sets its SIGTERM trap, then writes `line` to stderr and loops; returned
    once the line is in its log (so the trap is in place)."""
    p = Proc(["/bin/sh", "-c", f"trap '{trap}' TERM; echo '{line}' >&2; "
              "while :; do sleep 0.05; done"], free_port(), tmp_path / "sh.log")
    deadline = time.monotonic() + 5
    while line not in tail(p.log) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert line in tail(p.log)
    return p


@pytest.mark.parametrize("report", ["==1==ERROR: AddressSanitizer: heap-use-after-free",
                                    "x.c:3:5: runtime error: signed integer overflow",
                                    "==1==ERROR: LeakSanitizer: detected memory leaks"])
def test_sanitizer_report_is_caught(tmp_path, report):
    p = shell(tmp_path, "exit 0", report)
    assert p.stop() == 0
    with pytest.raises(AssertionError, match="sanitizer report"):
        p.check_clean()


def test_clean_log_passes(tmp_path):
    p = shell(tmp_path, "exit 0", "level=info msg=ok")
    assert p.stop() == 0
    p.check_clean()


def test_nonzero_exit_on_sigterm_is_reported(tmp_path):
    assert shell(tmp_path, "exit 3", "ready").stop() == 3


def test_process_ignoring_sigterm_is_killed_and_reported(tmp_path):
    p = shell(tmp_path, "", "ready")
    with pytest.raises(AssertionError, match="did not exit"):
        p.stop(timeout=0.5)
    assert p.proc.returncode is not None


def test_response_parser_is_strict():
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    rs, rest = parse_responses(ok + ok)
    assert [(r.status, r.body) for r in rs] == [(200, b"hi"), (200, b"hi")] and rest == b""
    # a Content-Length longer than the body: not a complete response
    rs, rest = parse_responses(b"HTTP/1.1 503 X\r\nContent-Length: 9\r\n\r\nshort")
    assert rs == [] and rest
    # no framing at all
    with pytest.raises(AssertionError):
        parse_responses(b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nbody")
    rs, rest = parse_responses(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"2\r\nab\r\n1;x\r\nc\r\n0\r\n\r\n")
    assert [r.body for r in rs] == [b"abc"] and rest == b""
