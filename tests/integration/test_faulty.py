"""faulty.py, the upstream that misbehaves on demand, checked from the client side with raw
sockets and requests: each fault as a client sees it, and the HTTP/1.1 behaviour a proxy in
front of it relies on (keep-alive, request body framings, pipelining, HEAD, Connection:
close). Timing bounds are generous: a delay is checked to be at least what was asked and
well under what a hang would take."""
import base64
import hashlib
import http.client
import json
import os
import random
import socket
import time

import pytest
import requests

from conftest import (WAIT, exchange_kept_alive, get, has_responses, parse_responses,
                      raw_exchange, read_until, read_until_closed, wait_for)
from faulty import BAD_LENGTH_EXTRA, GARBAGE, Faulty

# How much later than asked a delayed answer may come (a loaded CI machine, Python startup).
SLACK = 2.0


@pytest.fixture
def up(faulty):
    return faulty("up")


def req(path, method="GET", headers=(), body=b"", close=False):
    h = [f"{method} {path} HTTP/1.1", "Host: upstream"] + list(headers)
    if body:
        h.append(f"Content-Length: {len(body)}")
    if close:
        h.append("Connection: close")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def one(data):
    """The single complete response in data (nothing left over)."""
    rs, rest = parse_responses(data)
    assert len(rs) == 1 and not rest, data[:500]
    return rs[0]


def vm_hwm_kib(pid):
    """The peak resident set size of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def outcome(port, data):
    """What a client sees after sending data on a new connection: "reset" (ECONNRESET on
    recv), "eof" (a close with no byte), or the bytes read until the server closed."""
    with connect(port) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                assert not out, f"reset after {out[:200]!r}"
                return "reset"
            if not b:
                return out or "eof"
            out += b


# --- normal answers ---------------------------------------------------------------------

def test_default_answer_names_the_instance(faulty):
    a, b = faulty("a"), faulty("b")
    for f in (a, b):
        r = get(f.url + "/some/path?x=1")
        assert r.status_code == 200
        assert r.json() == {"name": f.name, "path": "/some/path"}
        assert r.headers["X-Faulty-Name"] == f.name
        assert r.headers["Content-Type"] == "application/json"


def test_status_any_code(up):
    for code in (503, 500, 418, 429, 201, 599):
        r = get(up.url + f"/status/{code}")
        assert r.status_code == code
        assert r.json() == {"name": "up", "path": f"/status/{code}", "status": code}
    r = get(up.url + "/status/204")
    assert r.status_code == 204 and r.content == b"" and "Content-Length" not in r.headers
    # out of range: a 400, never a broken status line
    assert get(up.url + "/status/99").status_code == 400
    assert get(up.url + "/status/600").status_code == 400


def test_head_gets_the_head_only_and_the_connection_stays_usable(up):
    # HEAD's Content-Length is GET's, and no body follows: the GET after it must parse
    head = b"HEAD /big?bytes=5000 HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(up.port) as s:
        s.sendall(head)
        out, closed = read_until(s, lambda o: b"\r\n\r\n" in o)
        assert not closed
        assert out.endswith(b"\r\n\r\n") and b"Content-Length: 5000\r\n" in out
        s.sendall(req("/status/503") + req("/echo", close=True))
        out, closed = read_until_closed(s, WAIT)
    assert closed
    rs, rest = parse_responses(out)
    assert [r.status for r in rs] == [503, 200] and not rest
    assert json.loads(rs[1].body)["method"] == "GET"


# --- delays -------------------------------------------------------------------------------

def test_delay_before_the_head(up):
    with connect(up.port) as s:
        t0 = time.monotonic()
        s.sendall(req("/delay/250"))
        out, _ = read_until(s, lambda o: len(o) > 0)
        first_byte = time.monotonic() - t0
        out += read_until(s, lambda o: has_responses(1)(out + o))[0]
    assert 0.25 <= first_byte < 0.25 + SLACK, first_byte
    r = one(out)
    assert r.status == 200 and json.loads(r.body)["delayed_ms"] == 250


def test_delay_body_sends_the_head_first(up):
    with connect(up.port) as s:
        t0 = time.monotonic()
        s.sendall(req("/delay-body/400"))
        head, _ = read_until(s, lambda o: b"\r\n\r\n" in o)
        t_head = time.monotonic() - t0
        out, _ = read_until(s, lambda o: has_responses(1)(head + o))
        t_body = time.monotonic() - t0
    # the head alone came first, well before the body
    assert head.endswith(b"\r\n\r\n"), head
    assert t_head < 0.3, t_head
    assert 0.4 <= t_body < 0.4 + SLACK, t_body
    r = one(head + out)
    assert json.loads(r.body) == {"name": "up", "path": "/delay-body/400", "delayed_ms": 400}


# --- broken connections ---------------------------------------------------------------------

def test_reset_is_econnreset_on_recv(up):
    with connect(up.port) as s:
        s.sendall(req("/reset"))
        with pytest.raises(ConnectionResetError):
            s.recv(65536)
    assert up.stats()["resets_sent"] == 1


def test_close_is_eof_without_a_byte(up):
    with connect(up.port) as s:
        s.sendall(req("/close"))
        assert s.recv(65536) == b""
    st = up.stats()
    assert st["closes_sent"] == 1 and st["resets_sent"] == 0


def test_garbage_then_close(up):
    out, closed = raw_exchange(up.port, req("/garbage"))
    assert closed and out == GARBAGE
    assert not out.startswith(b"HTTP/")
    with pytest.raises(requests.exceptions.ConnectionError):
        get(up.url + "/garbage")


def test_bad_length_promises_more_than_it_sends(up):
    out, closed = raw_exchange(up.port, req("/bad-length"))
    assert closed
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    cl = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
    assert int(cl[0].split(b":")[1]) == len(body) + BAD_LENGTH_EXTRA
    assert json.loads(body) == {"name": "up", "path": "/bad-length"}
    assert parse_responses(out)[0] == []  # an incomplete response
    # http.client notices (requests on urllib3 1.x does not check Content-Length)
    c = http.client.HTTPConnection("127.0.0.1", up.port, timeout=WAIT)
    try:
        c.request("GET", "/bad-length")
        r = c.getresponse()
        with pytest.raises(http.client.IncompleteRead):
            r.read()
    finally:
        c.close()


# --- bodies -------------------------------------------------------------------------------

def test_slow_body_is_trickled_chunked(up):
    chunks, interval, size = 4, 200, 1000
    with connect(up.port) as s:
        t0 = time.monotonic()
        s.sendall(req(f"/slow-body?chunks={chunks}&interval={interval}&size={size}"))
        out, arrivals = b"", []
        while not has_responses(1)(out):
            b = s.recv(65536)
            assert b, "closed before the end of the body"
            out += b
            arrivals.append((time.monotonic() - t0, len(out)))
    r = one(out)
    assert r.header("transfer-encoding") == "chunked"
    assert r.body == b"".join(bytes([ord("a") + i]) * size for i in range(chunks))
    # the head came at once, the body over chunks * interval
    assert arrivals[0][0] < 0.15 and arrivals[0][1] < size, arrivals
    total = arrivals[-1][0]
    assert chunks * interval / 1000 <= total < chunks * interval / 1000 + SLACK, arrivals
    # about half the bytes came in the second half of the time, not all at the end
    half = [n for t, n in arrivals if t < total / 2 + 0.05]
    assert half and size <= half[-1] < chunks * size, arrivals
    # requests reassembles it too
    r = get(up.url + "/slow-body?chunks=3&interval=10&size=7")
    assert r.content == b"aaaaaaabbbbbbbccccccc"


def test_big_body_is_streamed(up):
    n = 200 * 1000 * 1000 + 123  # not a multiple of the 64 KiB write size
    pattern = bytes(range(256)) * 256
    before = vm_hwm_kib(up.pid)
    got = 0
    with requests.get(up.url + f"/big?bytes={n}", stream=True, timeout=WAIT) as r:
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == n
        for block in r.iter_content(1 << 16):
            # byte k is k % 256
            assert block == pattern[got % 256:got % 256 + len(block)] or \
                block == (pattern * 2)[got % 256:got % 256 + len(block)]
            got += len(block)
    assert got == n
    # the server never held it: its peak resident set grew by far less than the body
    assert vm_hwm_kib(up.pid) - before < 40 * 1024
    r = get(up.url + "/big?bytes=300000&chunked=1")
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert r.content == (pattern * 5)[:300000]


def body_pieces(total, piece=1 << 20):
    rnd = random.Random(7)
    block = rnd.randbytes(piece)
    sent = 0
    while sent < total:
        k = min(piece, total - sent)
        yield block[:k] if sent % (3 * piece) else bytes(reversed(block[:k]))
        sent += k


def test_echo_hashes_a_50_mb_upload_both_framings(up):
    total = 50 * 1000 * 1000 + 7
    h = hashlib.sha256()
    for p in body_pieces(total):
        h.update(p)
    want = {"body_length": total, "body_sha256": h.hexdigest()}
    before = vm_hwm_kib(up.pid)
    # a generator: requests sends it chunked
    r = requests.post(up.url + "/echo", data=body_pieces(total), timeout=WAIT)
    d = r.json()
    assert r.status_code == 200 and {k: d[k] for k in want} == want
    assert ["Transfer-Encoding", "chunked"] in d["headers"]
    # the same bytes with Content-Length
    r = requests.put(up.url + "/echo?x=1", data=b"".join(body_pieces(total)), timeout=WAIT)
    d = r.json()
    assert {k: d[k] for k in want} == want
    assert ["Content-Length", str(total)] in d["headers"]
    assert (d["method"], d["target"], d["version"]) == ("PUT", "/echo?x=1", "HTTP/1.1")
    assert vm_hwm_kib(up.pid) - before < 40 * 1024


def test_echo_headers_in_order_and_chunk_extensions_and_trailers(up):
    body = (b"5;ext=1\r\nhello\r\n"
            b"0001\r\n \r\n"
            b"6\r\nworld!\r\n"
            b"0\r\nX-Trailer: t\r\n\r\n")
    data = (b"POST /echo HTTP/1.1\r\nHost: up\r\nX-B: 2\r\nX-A: 1\r\nX-B: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + body)
    out, after = exchange_kept_alive(up.port, data + req("/headers"), has_responses(2))
    rs, rest = parse_responses(out)
    assert not rest and len(after) == 1  # kept alive
    d = json.loads(rs[0].body)
    assert d["headers"] == [["Host", "up"], ["X-B", "2"], ["X-A", "1"], ["X-B", "3"],
                            ["Transfer-Encoding", "chunked"]]
    assert d["body_length"] == 12
    assert d["body_sha256"] == hashlib.sha256(b"hello world!").hexdigest()
    d = json.loads(rs[1].body)
    assert "body_length" not in d and d["target"] == "/headers"


def test_expect_100_continue(up):
    with connect(up.port) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        out, _ = read_until(s, lambda o: b"\r\n\r\n" in o)
        assert out == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"abcde")
        out, closed = read_until_closed(s, WAIT)
    assert closed
    assert json.loads(one(out).body)["body_sha256"] == hashlib.sha256(b"abcde").hexdigest()


# --- connections ----------------------------------------------------------------------------

def test_keep_alive_many_requests_on_one_connection(up):
    with connect(up.port) as s:
        for i in range(5):
            s.sendall(req(f"/n{i}", method="POST", body=b"x" * i))
            out, closed = read_until(s, has_responses(1))
            assert not closed
            r = one(out)
            assert r.status == 200 and r.header("connection") is None
            assert json.loads(r.body) == {"name": "up", "path": f"/n{i}"}
    st = up.stats()
    assert st["connections_accepted"] == 1 and st["requests"] == 5
    # requests' pool reuses one connection as well
    with requests.Session() as sess:
        for _ in range(3):
            assert sess.get(up.url + "/s", timeout=WAIT).status_code == 200
    assert up.stats()["connections_accepted"] == 2


def test_pipelined_requests_answered_in_order(up):
    chunked = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n0\r\n\r\n")
    data = (req("/delay/150") + req("/first") + req("/status/502") + chunked
            + req("/echo", method="PUT", body=b"xyz") + req("/last"))
    out, after = exchange_kept_alive(up.port, data, has_responses(6))
    rs, rest = parse_responses(out)
    assert not rest and len(after) == 1
    assert [r.status for r in rs] == [200, 200, 502, 200, 200, 200]
    bodies = [json.loads(r.body) for r in rs]
    assert bodies[0]["delayed_ms"] == 150 and bodies[1]["path"] == "/first"
    assert bodies[3]["body_sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert (bodies[4]["method"], bodies[4]["body_length"]) == ("PUT", 3)
    assert bodies[5]["path"] == "/last"


def test_connection_close_is_honoured(up):
    out, closed = raw_exchange(up.port, req("/a", close=True) + req("/never"))
    assert closed
    r = one(out)
    assert r.header("connection") == "close" and json.loads(r.body)["path"] == "/a"
    # HTTP/1.0: closed unless it asks for keep-alive
    out, closed = raw_exchange(up.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert closed and one(out).header("connection") == "close"
    out, after = exchange_kept_alive(
        up.port, b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", has_responses(1))
    assert one(out).header("connection") == "keep-alive" and len(after) == 1
    assert up.stats()["requests_by_path"] == {"/a": 1, "/old": 2, "/health": 1}


@pytest.mark.parametrize("data,status", [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
], ids=["no-host", "http2", "bad-length", "cl-and-te", "bad-chunk", "folded", "huge-head"])
def test_malformed_requests_get_an_error_and_a_close(up, data, status):
    out, closed = raw_exchange(up.port, data)
    assert closed
    r = one(out)
    assert r.status == status and r.header("connection") == "close"


# --- X-Fault --------------------------------------------------------------------------------

def test_x_fault_header_on_any_path(up):
    r = get(up.url + "/api/v1/things", headers={"X-Fault": "status=503"})
    assert r.status_code == 503 and r.json()["path"] == "/api/v1/things"
    t0 = time.monotonic()
    r = get(up.url + "/api/v1/things", headers={"X-Fault": "delay=200"})
    took = time.monotonic() - t0
    assert r.status_code == 200 and 0.2 <= took < 0.2 + SLACK
    t0 = time.monotonic()
    r = get(up.url + "/echo", headers={"X-Fault": "delay=100, status=502"})
    assert r.status_code == 502 and time.monotonic() - t0 >= 0.1
    assert outcome(up.port, req("/api", headers=["X-Fault: reset"])) == "reset"
    assert outcome(up.port, req("/api", headers=["X-Fault: close"])) == "eof"
    assert outcome(up.port, req("/api", headers=["X-Fault: garbage"])) == GARBAGE
    # the control endpoints ignore it
    assert up.stats()["faults_applied"] == 6
    out, closed = raw_exchange(up.port, req("/_stats", headers=["X-Fault: reset"], close=True))
    assert one(out).status == 200


# --- /_fault and /_stats ----------------------------------------------------------------

def test_fault_count_then_normal(up):
    got = up.set_fault("status", status=503, count=3)
    assert got["mode"] == "status" and got["count"] == 3
    # the control endpoints never fail, even while every request would
    assert up.stats()["requests"] == 0
    codes = [get(up.url + "/x").status_code for _ in range(5)]
    assert codes == [503, 503, 503, 200, 200]
    assert up.fault() == {"mode": "off"}
    st = up.stats()
    assert st["faults_applied"] == 3 and st["responses_by_status"] == {"503": 3, "200": 2}


def test_fault_path_prefix(up):
    up.set_fault("status", status=500, path="/api/")
    assert get(up.url + "/health").status_code == 200
    assert get(up.url + "/api/x").status_code == 500
    up.set_fault("off")
    assert get(up.url + "/api/x").status_code == 200


def test_fault_reset_with_probability_is_seeded(up):
    up.set_fault("reset", probability=0.5, seed=1)
    got = []
    for i in range(30):
        o = outcome(up.port, req(f"/p{i}", close=True))
        got.append("reset" if o == "reset" else one(o).status)
    rnd = random.Random(1)
    want = ["reset" if rnd.random() < 0.5 else 200 for _ in range(30)]
    assert got == want and 0 < want.count("reset") < 30
    st = up.stats()
    assert st["resets_sent"] == want.count("reset") == st["faults_applied"]
    assert st["requests"] == 30


def test_fault_delay_then_off(up):
    up.set_fault("delay", ms=300)
    t0 = time.monotonic()
    assert get(up.url + "/slow").status_code == 200
    assert 0.3 <= time.monotonic() - t0 < 0.3 + SLACK
    t0 = time.monotonic()
    up.stats()  # not delayed
    assert time.monotonic() - t0 < 0.25
    up.set_fault("off")
    t0 = time.monotonic()
    assert get(up.url + "/fast").status_code == 200
    assert time.monotonic() - t0 < 0.25


def test_fault_rejects_a_bad_spec(up):
    r = requests.post(up.url + "/_fault", json={"mode": "explode"}, timeout=WAIT)
    assert r.status_code == 400 and "mode" in r.json()["error"]
    r = requests.post(up.url + "/_fault", data=b"{", timeout=WAIT)
    assert r.status_code == 400
    assert up.fault() == {"mode": "off"}


def test_stats_counters(up):
    for path in ("/a", "/a", "/b", "/status/503"):
        get(up.url + path)
    outcome(up.port, req("/reset"))
    st = up.stats()
    assert st["requests"] == 5
    assert st["requests_by_path"] == {"/a": 2, "/b": 1, "/status/503": 1, "/reset": 1}
    assert st["responses_by_status"] == {"200": 3, "503": 1}
    assert st["connections_accepted"] == 5 and st["resets_sent"] == 1
    # active: the helper's control connection plus three idle ones
    socks = [connect(up.port) for _ in range(3)]
    try:
        wait_for(lambda: up.stats()["connections_active"] == 4, "3 more active connections")
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: up.stats()["connections_active"] == 1, "the idle connections closed")
    assert up.stats()["connections_accepted"] == 8
    zero = up.reset_stats()
    assert zero["requests"] == 0 and zero["requests_by_path"] == {}
    assert zero["connections_active"] == 1


# --- WebSocket tunnel -----------------------------------------------------------------------

def test_ws_upgrade_then_raw_echo(up):
    key = base64.b64encode(os.urandom(16)).decode()
    accept = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    with connect(up.port) as s:
        # the first bytes of the tunnel come in the same packet as the upgrade request
        s.sendall(req("/ws", headers=["Upgrade: websocket", "Connection: Upgrade",
                                      f"Sec-WebSocket-Key: {key}",
                                      "Sec-WebSocket-Version: 13"]) + b"\x81\x05early")
        out, closed = read_until(s, lambda o: b"\r\n\r\n" in o and o.endswith(b"early"))
        assert not closed
        head, _, rest = out.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
        assert f"Sec-WebSocket-Accept: {accept}".encode() in lines
        assert b"Upgrade: websocket" in lines
        assert rest == b"\x81\x05early"
        blob = os.urandom(300000)
        s.sendall(blob)
        got, closed = read_until(s, lambda o: len(o) >= len(blob))
        assert got == blob and not closed
        s.shutdown(socket.SHUT_WR)
        assert read_until_closed(s, WAIT) == (b"", True)
    # not an upgrade: 400
    assert get(up.url + "/ws").status_code == 400


def test_sigterm_stops_it_with_connections_open(faulty):
    f = faulty("busy")
    idle = connect(f.port)
    busy = connect(f.port)
    try:
        busy.sendall(req("/slow-body?chunks=100&interval=100&size=10"))
        read_until(busy, lambda o: b"\r\n\r\n" in o)
        wait_for(lambda: f.stats()["connections_active"] == 3, "both connections active")
        t0 = time.monotonic()
        assert f.stop() == 0
        assert time.monotonic() - t0 < 2
        # both were closed by the server, the trickled body cut short
        assert read_until_closed(idle, WAIT) == (b"", True)
        assert read_until_closed(busy, WAIT)[1]
    finally:
        idle.close()
        busy.close()


# --- the helper on its own ------------------------------------------------------------------

def test_helper_starts_and_stops_its_own_server():
    f = Faulty.start(name="solo")
    try:
        assert get(f.url + "/q").json() == {"name": "solo", "path": "/q"}
        assert f.set_fault("status", status=500, count=1)["count"] == 1
        assert get(f.url + "/q").status_code == 500
        assert f.stats()["requests"] == 2
    finally:
        assert f.stop() == 0
    with pytest.raises(OSError):
        connect(f.port).close()
