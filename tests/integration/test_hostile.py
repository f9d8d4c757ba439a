"""Malformed and hostile requests against the real hello binary.

Each case sends raw bytes on a fresh connection, reads everything until the server closes,
and checks: the status, `Connection: close`, that the server closed the connection, that
exactly one response came back (nothing smuggled behind the bad request was answered), and
that the server still serves a normal request afterwards.
"""
import re
import socket
import time

import pytest

from conftest import get, raw_exchange

H = b"Host: x\r\n"

# (id, bytes, expected status)
CASES = [
    ("method-bad-char", b"G@T /hello HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-space", b"GE T /hello HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-unknown", b"FOO /hello HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("method-lowercase-unknown", b"get /hello HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("http09-request-line", b"GET /hello\r\n\r\n", 400),
    ("version-short", b"GET /hello HTTP/1\r\n" + H + b"\r\n", 400),
    ("version-extra", b"GET /hello HTTP/1.1.1\r\n" + H + b"\r\n", 400),
    ("version-bad-proto", b"GET /hello HTTX/1.1\r\n" + H + b"\r\n", 400),
    ("version-2.0", b"GET /hello HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("version-3.1", b"GET /hello HTTP/3.1\r\n" + H + b"\r\n", 505),
    ("request-line-extra-token", b"GET /hello HTTP/1.1 extra\r\n" + H + b"\r\n", 400),
    ("header-space-before-colon", b"GET /hello HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400),
    ("header-no-colon", b"GET /hello HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n", 400),
    ("header-bad-name-char", b"GET /hello HTTP/1.1\r\n" + H + b"X(a): b\r\n\r\n", 400),
    ("header-space-in-name", b"GET /hello HTTP/1.1\r\n" + H + b"Bad Header: b\r\n\r\n", 400),
    ("header-empty-name", b"GET /hello HTTP/1.1\r\n" + H + b": b\r\n\r\n", 400),
    ("header-nul-in-value", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("header-bare-cr", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("header-obs-fold", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
    ("host-missing", b"GET /hello HTTP/1.1\r\n\r\n", 400),
    ("host-duplicate", b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("cl-conflicting", b"POST /echo HTTP/1.1\r\n" + H +
     b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("cl-duplicate-same", b"POST /echo HTTP/1.1\r\n" + H +
     b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("cl-non-numeric", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
    ("cl-negative", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-overflow", b"POST /echo HTTP/1.1\r\n" + H +
     b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
    ("cl-with-te", b"POST /echo HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-not-chunked", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: gzip\r\n\r\nabc", 400),
    ("te-chunked-twice", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-unknown-coding", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", 501),
    ("chunk-size-non-hex", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-size-overflow", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-missing-crlf", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400),
    ("chunk-bad-extension", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n3;\x01\r\nabc\r\n0\r\n\r\n", 400),
    ("target-nul", b"GET /hel\x00lo HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-control-char", b"GET /hel\x01lo HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-too-long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("head-too-large", b"GET /hello HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n",
     431),
    ("too-many-headers", b"GET /hello HTTP/1.1\r\n" + H +
     b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
    ("head-large-many-headers", b"GET /hello HTTP/1.1\r\n" + H +
     b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(70)) + b"\r\n", 431),
    ("body-too-large-cl", b"POST /echo HTTP/1.1\r\n" + H +
     b"Content-Length: 2000000\r\n\r\n", 413),
    ("expect-unknown", b"POST /echo HTTP/1.1\r\n" + H +
     b"Expect: magic\r\nContent-Length: 1\r\n\r\na", 417),
    # Smuggling probes: whatever follows the bad request must never be answered.
    ("smuggle-cl-te", b"POST /echo HTTP/1.1\r\n" + H +
     b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\n" +
     H + b"\r\n", 400),
    ("smuggle-te-cl", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nGET /hel\r\n0\r\n\r\n", 400),
    ("smuggle-te-space-name", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\n" +
     H + b"\r\n", 400),
    ("smuggle-after-400", b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
     b"GET /hello HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("smuggle-te-obfuscated", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("smuggle-cl-plus", b"POST /echo HTTP/1.1\r\n" + H +
     b"Content-Length: +3\r\n\r\nabcGET /hello HTTP/1.1\r\n" + H + b"\r\n", 400),
]

STATUS_RE = re.compile(rb"HTTP/1\.1 (\d{3}) ")


@pytest.mark.parametrize("data,status", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_request(hello, data, status):
    out, closed = raw_exchange(hello.port, data)
    statuses = STATUS_RE.findall(out)
    assert statuses, f"no response at all: {out[:200]!r}"
    assert int(statuses[0]) == status, out[:300]
    assert len(statuses) == 1, f"more than one response (smuggled?): {out!r}"
    head = out.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nConnection: close" in head
    assert b"\r\nContent-Type: application/json" in head
    assert closed, "the server kept the connection open after an error"
    # and it still serves
    r = get(hello.url + "/hello")
    assert r.status_code == 200 and r.text == "hello, world\n"


def test_enough_cases():
    assert len({c[0] for c in CASES}) >= 40


def test_slow_header_cut_off_at_head_timeout(hello):
    """Slowloris: one header byte per second; the 10 s head timeout answers 408 and closes."""
    s = socket.create_connection(("127.0.0.1", hello.port), timeout=20)
    start = time.monotonic()
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    out = b""
    try:
        while time.monotonic() - start < 16:
            try:
                s.send(b"a")
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(1.0)
            try:
                b = s.recv(4096)
                if not b:
                    break
                out += b
            except socket.timeout:
                continue
            except ConnectionResetError:
                break
    finally:
        s.close()
    elapsed = time.monotonic() - start
    assert out.startswith(b"HTTP/1.1 408 "), out[:200]
    assert 9.0 <= elapsed <= 13.0, elapsed
    assert get(hello.url + "/hello").status_code == 200


def test_chunked_body_over_limit_gets_413(hello):
    chunk = b"a" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    out, closed = raw_exchange(hello.port, b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n" + body)
    assert out.startswith(b"HTTP/1.1 413 "), out[:200]
    assert closed


def test_expect_100_continue(hello):
    s = socket.create_connection(("127.0.0.1", hello.port), timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert s.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(b"hello")
    out = b""
    while b"\r\n\r\nhello" not in out:
        b = s.recv(4096)
        assert b
        out += b
    assert out.startswith(b"HTTP/1.1 200 ")
    s.close()
    # over the limit: 413 at once, no 100 Continue
    out, closed = raw_exchange(hello.port, b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                               b"Expect: 100-continue\r\nContent-Length: 5000000\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 "), out[:100]


def test_transfer_encoding_parameter_without_coding_does_not_hang(hello):
    """Found by fuzz_server: a ';' where a coding should start once spun the worker forever."""
    out, closed = raw_exchange(hello.port, b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: ;x, chunked\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and closed
    assert get(hello.url + "/hello", timeout=3).status_code == 200
