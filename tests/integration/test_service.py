"""The SDK's service, through examples/hello: routes, keep-alive, pipelining, bodies, HEAD,
/health, /metrics (checked by promtool), tracing headers, graceful shutdown."""
import re
import socket
import subprocess
import threading
import time

import requests

from conftest import HELLO, free_port, get, raw_exchange


def test_routes(hello):
    assert get(hello.url + "/hello").text == "hello, world\n"
    r = get(hello.url + "/hello/ada")
    assert r.status_code == 200 and r.text == "hello, ada\n"
    assert r.headers["Content-Type"] == "text/plain"
    assert "Date" in r.headers
    r = get(hello.url + "/nope")
    assert r.status_code == 404 and r.json()["error"] == "not found"
    r = requests.delete(hello.url + "/hello", timeout=5)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"
    r = requests.post(hello.url + "/echo", data=b"x" * 100000, timeout=5)
    assert r.status_code == 200 and r.content == b"x" * 100000
    r = requests.head(hello.url + "/hello", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Length"] == "13" and r.content == b""


def test_keepalive_and_pipelining(hello):
    reqs = b"".join(b"GET /hello/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50))
    out, closed = raw_exchange(hello.port, reqs, timeout=1.5)
    bodies = re.findall(rb"hello, (\d+)\n", out)
    assert [int(b) for b in bodies] == list(range(50))
    assert not closed
    # HTTP/1.0 closes unless asked to keep alive
    out, closed = raw_exchange(hello.port, b"GET /hello HTTP/1.0\r\n\r\n")
    assert b"Connection: close" in out and closed
    out, closed = raw_exchange(hello.port, b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                               timeout=1)
    assert b"Connection: keep-alive" in out and not closed


def test_chunked_request_body(hello):
    out, _ = raw_exchange(hello.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                          b"\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer: t\r\n\r\n", timeout=1)
    assert out.startswith(b"HTTP/1.1 200 ")
    assert out.endswith(b"\r\n\r\nhello world")


def test_health(hello):
    r = get(hello.url + "/health")
    assert r.status_code == 200
    j = r.json()
    assert j["status"] == "passing" and j["service"] == "hello"
    assert j["uptime_seconds"] >= 0 and j["checks"] == [] and j["version"]


def promtool_check(text):
    p = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()


def test_metrics(hello):
    for _ in range(3):
        get(hello.url + "/hello/x")
    get(hello.url + "/nope")
    r = get(hello.url + "/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    t = r.text
    assert 'http_requests_total{method="GET",route="/hello/:name",code="200"} 3\n' in t
    assert 'http_requests_total{method="GET",route="unmatched",code="404"} 1\n' in t
    assert ('http_request_duration_seconds_count{method="GET",route="/hello/:name",code="200"} 3\n'
            in t)
    m = re.search(r"^http_connections_active (\d+)$", t, re.M)
    assert m and int(m.group(1)) >= 1
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "process_max_fds", "process_start_time_seconds", "process_virtual_memory_bytes"):
        assert re.search(rf"^{name} \d", t, re.M), name
    promtool_check(t)


def test_malformed_requests_are_counted(hello):
    raw_exchange(hello.port, b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n")
    t = get(hello.url + "/metrics").text
    assert 'http_requests_total{method="",route="unmatched",code="400"} 1' in t


def test_traceparent_is_accepted(hello):
    r = get(hello.url + "/hello", headers={
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "a=1"})
    assert r.status_code == 200
    r = get(hello.url + "/hello", headers={"traceparent": "garbage", "b3": "0"})
    assert r.status_code == 200


def test_graceful_shutdown_finishes_in_flight(spawn):
    port = free_port()
    p = spawn([HELLO, "--port", port, "--workers", "1", "--log-level", "info"], port, name="drain")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
    time.sleep(0.3)
    p.proc.send_signal(15)
    time.sleep(0.5)
    # the listener is closed: new connections are refused
    refused = False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        refused = True
    assert refused
    s.sendall(b"world")
    out = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
    s.close()
    assert out.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" in out and out.endswith(b"helloworld")
    assert p.proc.wait(timeout=10) == 0


def test_shutdown_deadline_closes_stuck_connections(spawn, tmp_path):
    port = free_port()
    p = spawn([HELLO, "--port", port, "--workers", "1"], port, name="deadline")
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel")
    time.sleep(0.2)
    start = time.monotonic()
    p.proc.send_signal(15)
    assert p.proc.wait(timeout=15) == 0
    assert 9 <= time.monotonic() - start <= 12.5  # the 10 s default shutdown deadline
    s.close()


def test_concurrent_clients(hello):
    errors = []

    def worker(n):
        try:
            with requests.Session() as sess:
                for i in range(50):
                    r = sess.get(f"{hello.url}/hello/{n}-{i}", timeout=5)
                    if r.text != f"hello, {n}-{i}\n":
                        errors.append(r.text)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    t = get(hello.url + "/metrics").text
    total = sum(int(v) for v in re.findall(
        r'^http_requests_total\{method="GET",route="/hello/:name",code="200"\} (\d+)$', t, re.M))
    assert total == 400
