"""The SDK's service, through examples/hello: routes, keep-alive, pipelining, bodies, HEAD,
/health, /metrics (checked by promtool), tracing headers, graceful shutdown."""
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import (HELLO, WAIT, assert_serves_again, exchange_kept_alive, free_port, get,
                      has_responses, need_tool, parse_responses, raw_exchange, read_until,
                      read_until_closed, wait_for)


def start_hello(spawn, tmp_path, config=None, workers=1, name="hello"):
    """hello on a free port with one worker, optionally with a YAML config file."""
    port = free_port()
    args = [HELLO, "--name", name, "--port", port, "--workers", workers, "--log-level", "warn"]
    if config is not None:
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(config)
        args += ["--config", cfg]
    return spawn(args, port, name=name)


def test_routes(hello):
    assert get(hello.url + "/hello").text == "hello, world\n"
    r = get(hello.url + "/hello/ada")
    assert r.status_code == 200 and r.text == "hello, ada\n"
    assert r.headers["Content-Type"] == "text/plain"
    assert "Date" in r.headers
    # path parameters are percent-decoded, as Express, Go's ServeMux and Flask give them
    r = get(hello.url + "/hello/a%20b")
    assert r.status_code == 200 and r.text == "hello, a b\n"
    r = get(hello.url + "/hello/J%C3%BCrgen%2F2")
    assert r.status_code == 200 and r.content == "hello, Jürgen/2\n".encode()
    for bad in (b"a%zz", b"a%2", b"a%00b"):  # sent raw: requests would re-encode the '%'
        out, closed = raw_exchange(hello.port, b"GET /hello/" + bad + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        rs, _ = parse_responses(out)
        assert [r.status for r in rs] == [400] and closed, out
        assert b"path parameter" in rs[0].body
    r = get(hello.url + "/nope")
    assert r.status_code == 404 and r.json()["error"] == "not found" and "Date" in r.headers
    r = get(hello.url + "/hello/a/b")
    assert r.status_code == 404
    r = requests.delete(hello.url + "/hello", timeout=WAIT)
    assert r.status_code == 405 and "Date" in r.headers
    assert r.headers["Allow"] == "GET, HEAD"
    r = requests.post(hello.url + "/hello/ada", data=b"x", timeout=WAIT)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    r = get(hello.url + "/echo")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = requests.post(hello.url + "/echo", data=b"x" * 100000, timeout=WAIT)
    assert r.status_code == 200 and r.content == b"x" * 100000
    r = requests.post(hello.url + "/echo", data=b"", timeout=WAIT)
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == "0"
    r = requests.post(hello.url + "/echo", data=b"y" * ((1 << 20) + 1), timeout=10)
    assert r.status_code == 413
    r = requests.head(hello.url + "/hello", timeout=WAIT)
    assert r.status_code == 200 and r.headers["Content-Length"] == "13" and r.content == b""
    assert "Date" in r.headers
    r = requests.head(hello.url + "/hello/ada", timeout=WAIT)
    assert r.status_code == 200 and r.headers["Content-Length"] == "11" and r.content == b""


def test_head_has_no_body_on_a_kept_alive_connection(hello):
    """HEAD, then GET, pipelined: the HEAD answer carries the GET's Content-Length and no
    body, so the GET's answer follows it directly."""
    def head_then_get(out):
        end = out.find(b"\r\n\r\n")
        return end >= 0 and has_responses(1)(out[end + 4:])
    out, after = exchange_kept_alive(hello.port, b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                                     b"GET /hello/b HTTP/1.1\r\nHost: x\r\n\r\n", head_then_get)
    assert [r.status for r in after] == [200]  # kept alive, nothing else sent
    head_end = out.index(b"\r\n\r\n") + 4
    head, rest = parse_responses(out[:head_end], head_request=True)
    assert len(head) == 1 and not rest
    assert head[0].status == 200 and head[0].header("content-length") == "13"
    rs, rest = parse_responses(out[head_end:])
    assert [(r.status, r.body) for r in rs] == [(200, b"hello, b\n")] and not rest


def test_keepalive_and_pipelining(hello):
    reqs = b"".join(b"GET /hello/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50))
    out, after = exchange_kept_alive(hello.port, reqs, has_responses(50))
    rs, rest = parse_responses(out)
    assert [r.body for r in rs] == [b"hello, %d\n" % i for i in range(50)] and not rest
    assert all(r.status == 200 and r.header("date") for r in rs)
    assert [r.status for r in after] == [200]  # kept alive
    # bodies of both framings between requests, answered in order
    out, closed = raw_exchange(hello.port,
                               b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
                               b"GET /hello/two HTTP/1.1\r\nHost: x\r\n\r\n"
                               b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               b"\r\n2\r\nth\r\n3\r\nree\r\n0\r\n\r\n"
                               b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                               b"GET /hello/five HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rs, rest = parse_responses(out)
    assert [(r.status, r.body) for r in rs[:3]] == [(200, b"one"), (200, b"hello, two\n"),
                                                    (200, b"three")], out
    assert [r.status for r in rs[3:]] == [404, 200] and rs[4].body == b"hello, five\n"
    assert not rest and closed
    # HTTP/1.0 closes unless asked to keep alive
    out, closed = raw_exchange(hello.port, b"GET /hello HTTP/1.0\r\n\r\n")
    rs, rest = parse_responses(out)
    assert len(rs) == 1 and rs[0].header("connection").lower() == "close" and closed
    out, after = exchange_kept_alive(
        hello.port, b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        b"GET /hello/again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", has_responses(2))
    rs, rest = parse_responses(out)
    assert [r.body for r in rs] == [b"hello, world\n", b"hello, again\n"] and not rest
    assert rs[0].header("connection").lower() == "keep-alive"
    assert [r.status for r in after] == [200]


def test_chunked_request_body(hello):
    """Chunks with an extension and a trailer field; the body is the chunks joined."""
    out, after = exchange_kept_alive(hello.port, b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                                     b"6;x=y\r\n world\r\n0\r\nTrailer: t\r\n\r\n",
                                     has_responses(1))
    rs, rest = parse_responses(out)
    assert [(r.status, r.body) for r in rs] == [(200, b"hello world")] and not rest, out
    assert [r.status for r in after] == [200]


def test_health(hello):
    r = get(hello.url + "/health")
    assert r.status_code == 200
    j = r.json()
    assert j["status"] == "passing" and j["service"] == "hello"
    assert j["uptime_seconds"] >= 0 and j["checks"] == [] and j["version"]


def promtool_check(text):
    p = subprocess.run([need_tool("promtool"), "check", "metrics"], input=text.encode(),
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
    # the buckets are cumulative, end at +Inf with the count, and the sum is positive
    lbl = 'method="GET",route="/hello/:name",code="200"'
    buckets = [(le, int(v)) for le, v in re.findall(
        r'^http_request_duration_seconds_bucket\{' + re.escape(lbl) + r',le="([^"]+)"\} (\d+)$',
        t, re.M)]
    assert len(buckets) >= 2 and buckets[-1] == ("+Inf", 3), buckets
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    assert [float(le) for le, _ in buckets[:-1]] == sorted(float(le) for le, _ in buckets[:-1])
    m = re.search(r"^http_request_duration_seconds_sum\{" + re.escape(lbl) + r"\} (\S+)$", t, re.M)
    assert m and float(m.group(1)) > 0
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


def in_flight(port, body_part):
    """A connection with a POST /echo of 10 bytes in flight: the server has read its head
    (it answered Expect: 100-continue) and body_part of the body has been sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              b"Content-Length: 10\r\n\r\n")
    out, _ = read_until(s, lambda out: b"\r\n\r\n" in out)
    assert out == b"HTTP/1.1 100 Continue\r\n\r\n", out
    s.sendall(body_part)
    return s


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
        return False
    except ConnectionRefusedError:
        return True


def test_graceful_shutdown_finishes_in_flight(spawn, tmp_path):
    """SIGTERM while a request body is still arriving: the listener closes (new connections
    refused), the request completes with Connection: close, exit status 0."""
    p = start_hello(spawn, tmp_path, name="drain")
    s = in_flight(p.port, b"hello")
    start = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: refused(p.port), "new connections refused after SIGTERM")
    s.sendall(b"world")
    out, closed = read_until_closed(s, WAIT)
    s.close()
    rs, rest = parse_responses(out)
    assert len(rs) == 1 and not rest and closed, out
    assert rs[0].status == 200 and rs[0].body == b"helloworld"
    assert rs[0].header("connection").lower() == "close"
    assert p.proc.wait(timeout=10) == 0
    assert time.monotonic() - start < 10  # well within the 10 s default deadline


def test_shutdown_deadline_closes_stuck_connections(spawn, tmp_path):
    """A request that never completes holds the shutdown for http.shutdown_timeout, no
    longer; the exit status is still 0."""
    p = start_hello(spawn, tmp_path, "http:\n  shutdown_timeout: 2s\n", name="deadline")
    s = in_flight(p.port, b"hel")
    start = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(timeout=10) == 0
    assert 1.8 <= time.monotonic() - start <= 4.5
    out, closed = read_until_closed(s, WAIT)  # the process has exited: closed at once
    assert closed
    s.close()


def test_shutdown_delay_drains_health_first(spawn, tmp_path):
    """http.shutdown_delay: after SIGTERM, /health answers 503 "draining" while requests,
    on new connections too, are still served, for the delay, each with Connection: close
    (a kept-alive client reconnects, elsewhere once the load balancer has taken this
    instance out); a second SIGTERM skips the rest of the delay. The checks run inside a
    60 s delay that the second SIGTERM ends, so none races the delay's end."""
    p = start_hello(spawn, tmp_path, "http:\n  shutdown_delay: 60s\n", name="delay")
    assert get(p.url + "/health").status_code == 200
    kept = socket.create_connection(("127.0.0.1", p.port), timeout=WAIT)
    kept.sendall(b"GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\n")
    out, _ = read_until(kept, has_responses(1))
    assert b"Connection: close" not in out  # kept alive
    start = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: get(p.url + "/health").status_code == 503, "/health draining")
    h = get(p.url + "/health")
    assert h.status_code == 503 and h.json() == {"status": "draining"}
    r = get(p.url + "/hello/still")  # a new connection: still accepted and served
    assert r.status_code == 200 and r.text == "hello, still\n"
    assert r.headers["Connection"] == "close"
    # the connection kept alive from before: answered, with Connection: close, then closed
    kept.sendall(b"GET /hello/b HTTP/1.1\r\nHost: x\r\n\r\n")
    out, closed = read_until_closed(kept, WAIT)
    kept.close()
    rs, rest = parse_responses(out)
    assert [r.status for r in rs] == [200] and not rest and closed, out
    assert rs[0].header("connection") == "close"
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(timeout=WAIT) == 0
    assert time.monotonic() - start < 30  # not the 60 s delay


def test_shutdown_delay_ends_by_itself(spawn, tmp_path):
    """Without a second SIGTERM the delay runs out, then the usual shutdown, exit 0."""
    p = start_hello(spawn, tmp_path, "http:\n  shutdown_delay: 1500ms\n", name="delay2")
    start = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(timeout=WAIT) == 0
    assert 1.4 <= time.monotonic() - start <= 4.5


def test_idle_keepalive_connection_is_closed(spawn, tmp_path):
    p = start_hello(spawn, tmp_path, "http:\n  idle_timeout: 1s\n", name="idle")
    s = socket.create_connection(("127.0.0.1", p.port), timeout=WAIT)
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    out = b""
    while b"hello, world\n" not in out:
        b = s.recv(4096)
        assert b, out
        out += b
    start = time.monotonic()
    rest, closed = read_until_closed(s, 5)
    elapsed = time.monotonic() - start
    s.close()
    assert closed and rest == b"", rest
    assert 0.8 <= elapsed <= 3.0, elapsed
    # a connection kept busy is not closed: five requests 300 ms apart, 1.2 s in all (the
    # sleeps are what is tested: each gap shorter than the timeout by 0.7 s)
    s = socket.create_connection(("127.0.0.1", p.port), timeout=WAIT)
    for i in range(5):
        s.sendall(b"GET /hello/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        out = b""
        while b"hello, %d\n" % i not in out:
            b = s.recv(4096)
            assert b, (i, out)
            out += b
        time.sleep(0.3)
    s.close()


def test_head_timeout_from_config(spawn, tmp_path):
    p = start_hello(spawn, tmp_path, "http:\n  head_timeout: 1s\n", name="headto")
    s = socket.create_connection(("127.0.0.1", p.port), timeout=WAIT)
    start = time.monotonic()
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
    out, closed = read_until_closed(s, 5)
    elapsed = time.monotonic() - start
    s.close()
    rs, rest = parse_responses(out)
    assert [r.status for r in rs] == [408] and not rest and closed, out
    assert 0.9 <= elapsed <= 2.5, elapsed


def test_body_timeout_from_config(spawn, tmp_path):
    """A body that stops arriving gets 408 after http.body_timeout, and the connection
    closes."""
    p = start_hello(spawn, tmp_path, "http:\n  body_timeout: 500ms\n", name="bodyto")
    s = socket.create_connection(("127.0.0.1", p.port), timeout=WAIT)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    start = time.monotonic()
    out, closed = read_until_closed(s, 5)
    elapsed = time.monotonic() - start
    s.close()
    rs, rest = parse_responses(out)
    assert [r.status for r in rs] == [408] and not rest and closed, out
    assert 0.4 <= elapsed <= 2.5, elapsed
    assert get(p.url + "/hello").status_code == 200


def test_connection_limit_per_worker(spawn, tmp_path):
    """With http.max_connections 3 and one worker, a fourth connection is answered 503 (or
    closed) while three are open; once they close, new connections are served again."""
    p = start_hello(spawn, tmp_path, "http:\n  max_connections: 3\n", name="connlimit")
    held = []  # the readiness probe is closed on the server's side (wait_port): 3 free
    for i in range(3):
        c = socket.create_connection(("127.0.0.1", p.port), timeout=WAIT)
        c.sendall(b"GET /hello/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        assert c.recv(4096).startswith(b"HTTP/1.1 200 ")  # accepted and served
        held.append(c)
    out, closed = raw_exchange(p.port, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert closed, out
    if out:
        rs, rest = parse_responses(out)
        assert rs, f"not one complete response (does Content-Length match the body?): {out!r}"
        assert [r.status for r in rs] == [503] and not rest, out
        assert rs[0].header("date") and rs[0].header("connection").lower() == "close"
        assert rs[0].header("retry-after") == "1"
    for c in held:
        c.close()
    assert_serves_again(p.port)


def test_open_file_limit_is_raised_to_the_hard_limit(spawn):
    """Started with a soft RLIMIT_NOFILE of 1024 under a hard one of 4096 (Debian's login
    defaults are 1024 soft), hello raises the soft limit, as Go's runtime does, and says so."""
    port = free_port()
    p = spawn([need_tool("prlimit"), "--nofile=1024:4096", "--", HELLO, "--name", "nofile", "--port", port,
               "--workers", "2", "--log-level", "info"], port, name="nofile")
    limits = open(f"/proc/{p.proc.pid}/limits").read()
    line = [x for x in limits.splitlines() if x.startswith("Max open files")][0]
    assert line.split()[3:5] == ["4096", "4096"], line
    log = p.log.read_text()
    assert 'msg="raised the open-file limit" from=1024 to=4096' in log, log
    # 4096 cannot hold 2 x 10000 connections: the cap is what fits, split between the loops
    m = re.search(r"caps connections per worker.* nofile=4096 open=(\d+) reserved=64 workers=2 "
                  r"max_connections=10000 per_worker=(\d+)", log)
    assert m and int(m.group(2)) == (4096 - int(m.group(1)) - 64) // 2, log
    assert get(p.url + "/hello").status_code == 200


def test_open_file_limit_caps_connections_with_a_503(spawn):
    """When the open-file limit cannot hold max_connections, the server takes what it can
    hold and answers the next connection 503 naming the limit, instead of having accept()
    fail and the connection dropped without a word; it serves again once they close."""
    port = free_port()
    p = spawn([need_tool("prlimit"), "--nofile=100:100", "--", HELLO, "--name", "fdcap", "--port", port,
               "--workers", "1", "--log-level", "info"], port, name="fdcap")
    log = p.log.read_text()
    m = re.search(r"caps connections per worker.* nofile=100 open=(\d+) reserved=64 workers=1 "
                  r"max_connections=10000 per_worker=(\d+)", log)
    assert m, log
    cap = int(m.group(2))
    assert cap == 100 - int(m.group(1)) - 64 and 10 <= cap <= 40, log
    held, statuses, body = [], [], b""
    try:
        for i in range(cap + 5):
            c = socket.create_connection(("127.0.0.1", p.port), timeout=WAIT)
            held.append(c)
            c.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            out = c.recv(4096)
            statuses.append(int(out.split(b" ")[1]))
            if statuses[-1] == 503:
                assert b"\r\nRetry-After: 1\r\n" in out, out
                body = out.split(b"\r\n\r\n", 1)[1]
        # the wait_port probe may still be closing: allow the first 503 one early
        assert statuses.count(200) in (cap, cap - 1) and statuses[-5:] == [503] * 5, statuses
        assert body == b'{"error":"too many connections (open-file limit: ulimit -n)"}\n', body
    finally:
        for c in held:
            c.close()
    # the first scrapes may land while the closed connections are still counted: refused
    # too, and counted
    rejected, refused_scrapes = None, 0
    deadline = time.monotonic() + 5
    while rejected is None and time.monotonic() < deadline:
        r = get(p.url + "/metrics")
        if r.status_code == 200:
            rejected = float(re.search(r"^http_connections_rejected_total (\S+)$", r.text,
                                       re.M).group(1))
        else:
            refused_scrapes += 1
            time.sleep(0.1)
    assert rejected == statuses.count(503) + refused_scrapes, (rejected, statuses)
    assert_serves_again(p.port)


def test_prometheus_scrapes_hello(spawn, hello, tmp_path):
    """The real Prometheus scrapes hello's /metrics every second: the target is up and
    http_requests_total can be queried with its route label."""
    prom_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: hello
    static_configs:
      - targets: ['127.0.0.1:{hello.port}']
""")
    spawn([need_tool("prometheus"), f"--config.file={cfg}",
           f"--storage.tsdb.path={tmp_path / 'tsdb'}",
           f"--web.listen-address=127.0.0.1:{prom_port}"], prom_port, name="prometheus")
    base = f"http://127.0.0.1:{prom_port}"
    for i in range(3):
        assert get(f"{hello.url}/hello/p{i}").status_code == 200
    deadline = time.monotonic() + 30
    targets, sample = [], None
    while time.monotonic() < deadline:
        try:
            targets = requests.get(base + "/api/v1/targets", timeout=2).json()["data"][
                "activeTargets"]
            q = requests.get(base + "/api/v1/query", params={"query": "http_requests_total"},
                             timeout=2).json()
            found = [r for r in q["data"]["result"]
                     if r["metric"].get("route") == "/hello/:name"]
            if any(t["health"] == "up" for t in targets) and found:
                sample = found[0]
                break
        except (requests.RequestException, KeyError, ValueError):
            pass
        time.sleep(0.5)
    assert sample, f"no sample within 30 s; targets: {targets}"
    assert [t["health"] for t in targets] == ["up"], targets
    assert sample["metric"]["method"] == "GET" and sample["metric"]["code"] == "200"
    assert sample["metric"]["job"] == "hello"
    assert float(sample["value"][1]) == 3


def test_concurrent_clients(hello):
    errors = []

    def worker(n):
        try:
            with requests.Session() as sess:
                for i in range(50):
                    r = sess.get(f"{hello.url}/hello/{n}-{i}", timeout=WAIT)
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


def test_access_log(spawn):
    """--access-log: one logfmt line per request, also under --log-level warn, with the
    client's address, the path as sent, the query, the route, the status and the trace ids."""
    port = free_port()
    p = spawn([HELLO, "--name", "hello-acc", "--port", port, "--workers", "1",
               "--log-level", "warn", "--access-log"], port, name="hello-acc")
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert get(p.url + "/hello/a%20b?x=1&y=2", headers={"traceparent": tp}).status_code == 200
    assert get(p.url + "/no=pe").status_code == 404
    p.stop()
    lines = [l for l in p.log.read_text().splitlines()
             if "comp=access" in l and "path=/health " not in l]  # the fixture's readiness probes
    assert len(lines) == 2, lines
    first = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', lines[0]))
    assert first["level"] == "info" and first["method"] == "GET"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", first["peer"]), first
    assert first["path"] == "/hello/a%20b" and first["query"] == '"x=1&y=2"'
    assert first["route"] == "/hello/:name" and first["status"] == "200"
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert re.fullmatch(r"[0-9a-f]{16}", first["span_id"]) and float(first["duration_ms"]) >= 0
    assert 'path="/no=pe"' in lines[1] and "status=404" in lines[1]  # quoted: it holds '='

    assert "route=unmatched" in lines[1] and "query=" not in lines[1]


def test_access_log_under_concurrent_load(spawn):
    """Two workers, eight clients at once: one whole line per request, none lost, none torn,
    also when lines are written a loop iteration's batch at a time."""
    port = free_port()
    p = spawn([HELLO, "--name", "hello-acc2", "--port", port, "--workers", "2",
               "--log-level", "warn", "--access-log"], port, name="hello-acc2")
    per_client, clients = 150, 8

    def client(k):
        with requests.Session() as s:
            for i in range(per_client):
                assert s.get(f"{p.url}/hello/c{k}-{i}", timeout=WAIT).status_code == 200
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    p.stop()
    lines = [l for l in p.log.read_text().splitlines() if "path=/health " not in l]
    pat = re.compile(r"ts=\S+ level=info comp=access msg=request peer=127\.0\.0\.1:\d+ "
                     r"method=GET path=/hello/(c\d+-\d+) route=/hello/:name status=200 "
                     r"duration_ms=[\d.]+ trace_id=[0-9a-f]{32} span_id=[0-9a-f]{16}")
    names = [m.group(1) for m in map(pat.fullmatch, lines) if m]
    assert len(names) == len(lines), [l for l in lines if not pat.fullmatch(l)][:3]
    assert sorted(names) == sorted(f"c{k}-{i}" for k in range(clients) for i in range(per_client))


def test_access_log_file_reopened_on_sigusr1(spawn, tmp_path):
    """--access-log-file: lines go to the file, not stderr. Rotated as logrotate does it
    (rename, then SIGUSR1) three times while four clients keep requests going on two
    workers: every request is in exactly one of the files, whole, and the file written last
    is the one at the path."""
    port = free_port()
    path = tmp_path / "access.log"
    p = spawn([HELLO, "--name", "hello-accf", "--port", port, "--workers", "2",
               "--log-level", "info", "--access-log-file", path], port, name="hello-accf")
    stop = threading.Event()
    sent, errors = [], []

    def client(k):
        i = 0
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    assert s.get(f"{p.url}/hello/f{k}-{i}", timeout=WAIT).status_code == 200
                    sent.append(f"f{k}-{i}")
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))
                    return
                i += 1
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()

    def logged_here():  # requests logged in the file now at the path
        try:
            return "path=/hello/" in path.read_text()
        except FileNotFoundError:
            return False
    for n in range(1, 4):
        wait_for(logged_here, f"requests logged in access.log before rotation {n}")
        path.rename(tmp_path / f"access.log.{n}")
        p.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: p.log.read_text().count('msg="access log reopened"') == n,
                 f"reopen {n} logged")
    wait_for(logged_here, "requests logged in the reopened access.log")
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors[:3]
    p.stop()
    log = p.log.read_text()
    assert log.count('msg="access log reopened"') == 3, log
    assert "comp=access msg=request" not in log  # not on stderr
    pat = re.compile(r"ts=\S+ level=info comp=access msg=request peer=127\.0\.0\.1:\d+ "
                     r"method=GET path=/(?:hello/(f\d+-\d+)|health) route=\S+ status=200 "
                     r"duration_ms=[\d.]+ trace_id=[0-9a-f]{32} span_id=[0-9a-f]{16}")
    names, per_file = [], []
    for f in [tmp_path / f"access.log.{n}" for n in (1, 2, 3)] + [path]:
        lines = f.read_text().splitlines()
        bad = [l for l in lines if not pat.fullmatch(l)]
        assert not bad, (f, bad[:3])
        got = [m.group(1) for m in map(pat.fullmatch, lines) if m.group(1)]
        per_file.append(len(got))
        names += got
    assert sorted(names) == sorted(sent), (len(names), len(sent))
    assert all(n > 0 for n in per_file), per_file  # each file took part of the traffic


def test_access_log_file_that_cannot_be_opened(tmp_path):
    from conftest import run_cli
    r = run_cli(HELLO, "--port", "0", "--access-log-file", tmp_path / "no" / "such" / "dir.log")
    assert r.returncode == 2
    assert "cannot open the access log" in r.stderr and "no/such/dir.log" in r.stderr, r.stderr


def test_no_access_log_by_default(hello):
    assert get(hello.url + "/hello").status_code == 200
    hello.stop()
    assert "comp=access" not in hello.log.read_text()
