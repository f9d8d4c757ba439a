"""The gateway of `weft serve` (issue 19): routes from the YAML config, requests proxied to
static targets and to registry services, errors from misbehaving upstreams (faulty.py), bad
configurations refused with their position. Every test starts the real weft binary."""
import hashlib
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import HELLO, WAIT, WEFT, free_port, get, run_cli, wait_for

ISSUE_CONFIG = """gateway:
  listen: 0.0.0.0:8080
  routes:
    - name: orders
      match: { path_prefix: /api/orders }
      strip_prefix: true
      service: orders
      timeout: 2s
      retry: { attempts: 2, on: [connect-failure, reset, 502, 503, 504], per_try_timeout: 500ms }
      rate_limit: { algorithm: token_bucket, rate: 100/s, burst: 50, key: client_ip }
      circuit_breaker: { consecutive_failures: 5, failure_rate: 50%, slow_call_duration: 1s, slow_call_rate: 80%, window: 10s, min_requests: 20, open_for: 30s, half_open_requests: 3 }
    - name: legacy
      match: { path_prefix: /legacy }
      upstream: { targets: [127.0.0.1:9001, 127.0.0.1:9002], lb: least_request }
      rate_limit: { algorithm: sliding_window, limit: 1000, window: 60s, key: header:X-Api-Key }
"""


def start_weft(spawn, tmp_path, config, name="weft", env=None):
    api, gw = free_port(), free_port()
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(config)
    p = spawn([WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{api}",
               "--gateway", f"127.0.0.1:{gw}", "--data-dir", tmp_path / f"{name}-data",
               "--workers", "2", "--log-level", "warn"], api, name=name, env=env)
    wait_for(lambda: _answers(gw), "the gateway to listen")
    p.api = f"http://127.0.0.1:{api}"
    p.gw = f"http://127.0.0.1:{gw}"
    return p


def _answers(port):
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except requests.RequestException:
        return False


def test_issue_config_accepted_as_written(spawn, tmp_path, hello):
    """The configuration the issue gives starts weft as written (the listen address is
    overridden by --gateway); its service route reaches a registered instance once its
    check passes, with the prefix stripped."""
    w = start_weft(spawn, tmp_path, ISSUE_CONFIG)
    r = get(w.gw + "/api/orders/hello")
    assert r.status_code == 503 and r.json()["error"] == "no healthy upstream"
    assert r.json()["route"] == "orders"
    reg = requests.put(w.api + "/v1/agent/service/register", timeout=WAIT, json={
        "Name": "orders", "ID": "orders-1", "Address": "127.0.0.1", "Port": hello.port,
        "Check": {"HTTP": f"http://127.0.0.1:{hello.port}/health", "Interval": "1s"}})
    assert reg.status_code == 200
    wait_for(lambda: get(w.gw + "/api/orders/hello").status_code == 200,
             "the orders route to reach hello once its check passes")
    r = get(w.gw + "/api/orders/hello?x=1")
    assert r.status_code == 200 and r.text.startswith("hello")
    # nothing listens on the legacy targets: 502 with the route named
    r = get(w.gw + "/legacy/x")
    assert r.status_code == 502 and r.json()["route"] == "legacy"
    r = get(w.gw + "/elsewhere")
    assert r.status_code == 404 and r.json()["error"] == "no route"


def test_static_targets_and_faults(spawn, tmp_path, faulty):
    a, b = faulty("a"), faulty("b")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: both
      match: {{ path_prefix: /both }}
      strip_prefix: true
      upstream: {{ targets: [127.0.0.1:{a.port}, {{ address: "127.0.0.1:{b.port}", weight: 1 }}] }}
      timeout: 500ms
""")
    names = [get(w.gw + "/both/x").headers["X-Faulty-Name"] for _ in range(6)]
    assert sorted(set(names)) == ["a", "b"]  # round robin over both
    r = get(w.gw + "/both/echo", headers={"X-Test": "1"})
    e = r.json()
    assert e["target"] == "/echo"
    hdrs = {k.lower(): v for k, v in e["headers"]}
    assert hdrs["x-test"] == "1" and hdrs["x-forwarded-for"] == "127.0.0.1"
    assert hdrs["x-forwarded-proto"] == "http" and len(hdrs["x-request-id"]) == 16
    # Expect: 100-continue is the listener's to answer (as Envoy): the upstream gets the body,
    # not the expectation
    r = requests.post(w.gw + "/both/echo", data=b"abc", timeout=WAIT,
                      headers={"Expect": "100-continue"})
    e = r.json()
    assert r.status_code == 200 and e["body_length"] == 3
    assert "expect" not in {k.lower() for k, _ in e["headers"]}, e["headers"]
    # the upstream's own status passes through; failures become 502/504
    assert get(w.gw + "/both/status/503").status_code == 503
    assert get(w.gw + "/both/reset").status_code == 502
    assert get(w.gw + "/both/garbage").status_code == 502
    assert get(w.gw + "/both/delay/2000").status_code == 504
    # the gateway still serves after all that
    assert get(w.gw + "/both/x").status_code == 200
    m = get(w.api + "/metrics").text
    assert 'weft_gateway_requests_total{route="both",upstream="127.0.0.1:' in m
    assert 'weft_gateway_upstream_errors_total{route="both",kind="reset"}' in m


@pytest.mark.parametrize("config,where,what", [
    ("gateway:\n  routes:\n    - name: x\n      match: { path_prefix: /x }\n",
     ":3:7: gateway.routes[0]:", "needs exactly one of service and upstream"),
    ("gateway:\n  routes:\n    - name: x\n      match: { path_prefix: x }\n      service: s\n",
     ":4:29: gateway.routes[0].match.path_prefix:", "starts with '/'"),
    ("gateway:\n  routes:\n    - name: x\n      match: { path: /x }\n      service: s\n"
     "      retry: { attempts: two }\n",
     ":6:26: gateway.routes[0].retry.attempts:", "whole number"),
    ("gateway:\n  routes:\n    - name: x\n      match: { path: /x }\n      service: s\n"
     "      rate_limit: { algorithm: leaky, rate: 1/s }\n",
     ":6:32: gateway.routes[0].rate_limit.algorithm:", "leaky"),
    ("gateway:\n  routes:\n    - name: x\n      match: { path: /x }\n      service: s\n"
     "      retyr: {}\n",
     ":6:7: gateway.routes[0].retyr:", "did you mean"),
])
def test_bad_config_refused_with_its_position(tmp_path, config, where, what):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(config)
    r = subprocess.run([str(WEFT), "serve", "--config", str(cfg), "--api", f"127.0.0.1:{free_port()}",
                        "--gateway", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert str(cfg) + where in line and what in line, line


def test_rate_limit_exact_across_workers(spawn, tmp_path, faulty):
    """A token bucket with burst 20 and a refill of 1 a minute admits exactly 20 of 40
    requests sent at once over 40 connections (spread over both workers); the rest get 429
    with Retry-After and the RateLimit fields. A key per X-Api-Key value; shadow mode
    counts without rejecting."""
    up = faulty("up")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: ip
      match: {{ path_prefix: /ip }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      rate_limit: {{ algorithm: token_bucket, rate: 1/m, burst: 20, key: client_ip }}
    - name: keyed
      match: {{ path_prefix: /keyed }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      rate_limit: {{ algorithm: sliding_window, limit: 3, window: 60s, key: header:X-Api-Key }}
    - name: shadow
      match: {{ path_prefix: /shadow }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      rate_limit: {{ algorithm: token_bucket, rate: 1/m, burst: 2, key: route, shadow: true }}
""")
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(40) as ex:
        rs = list(ex.map(lambda i: requests.get(w.gw + "/ip/x", timeout=WAIT), range(40)))
    codes = sorted(r.status_code for r in rs)
    assert codes.count(200) == 20 and codes.count(429) == 20, codes
    limited = next(r for r in rs if r.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Policy"] == '"ip";q=20;w=1200'
    assert limited.headers["RateLimit"].startswith('"ip";r=0;t=')
    assert limited.json()["error"] == "rate limited"
    assert up.stats()["requests_by_path"]["/ip/x"] == 20
    # one bucket per key
    for key, want in (("a", [200, 200, 200, 429]), ("b", [200, 200, 200, 429])):
        got = [get(w.gw + "/keyed/x", headers={"X-Api-Key": key}).status_code for _ in range(4)]
        assert got == want, (key, got)
    # shadow: nothing rejected, the excess counted
    assert [get(w.gw + "/shadow/x").status_code for _ in range(5)] == [200] * 5
    m = get(w.api + "/metrics").text
    assert 'weft_ratelimit_rejected_total{route="shadow",shadow="true"} 3' in m
    assert 'weft_ratelimit_rejected_total{route="ip",shadow="false"} 20' in m


def test_breaker_opens_fails_fast_half_opens_closes(spawn, tmp_path, faulty):
    up = faulty("up")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: flaky
      match: {{ path_prefix: /flaky }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      circuit_breaker: {{ consecutive_failures: 3, open_for: 1s, half_open_requests: 2 }}
""")
    up.set_fault("status", status=503, count=1000)
    assert [get(w.gw + "/flaky/x").status_code for _ in range(3)] == [503] * 3
    assert up.stats()["requests_by_path"]["/flaky/x"] == 3
    # open: answered at once, the upstream not asked
    t = time.monotonic()
    r = get(w.gw + "/flaky/x")
    assert r.status_code == 503 and r.headers["X-Weft-Breaker"] == "open"
    assert r.json()["error"] == "circuit breaker open"
    assert 1 <= int(r.headers["Retry-After"]) <= 1
    assert time.monotonic() - t < 0.5
    assert up.stats()["requests_by_path"]["/flaky/x"] == 3
    # the upstream recovers; after open_for, two trials close it
    up.set_fault("off")
    time.sleep(1.1)
    assert [get(w.gw + "/flaky/x").status_code for _ in range(4)] == [200] * 4
    m = get(w.api + "/metrics").text
    assert 'weft_breaker_state{route="flaky",upstream=""} 0' in m
    for frm, to, why in (("closed", "open", "consecutive_failures"),
                         ("open", "half_open", "open_timeout"),
                         ("half_open", "closed", "half_open_success")):
        assert (f'weft_breaker_transitions_total{{route="flaky",upstream="",from="{frm}",to="{to}",'
                f'reason="{why}"}} 1') in m, (frm, to, why)
    assert 'weft_breaker_rejected_total{route="flaky"} 1' in m


def test_answers_without_a_body(spawn, tmp_path, faulty):
    """HEAD, 204 and 304 go through with their heads alone, and the connection stays
    usable. Such an answer's head waits (corked) until the breakers have been told how it
    went, so a half-open breaker that two of them close lets the next request through at
    once, whichever worker takes it."""
    up = faulty("up")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: nobody
      match: {{ path_prefix: / }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      circuit_breaker: {{ consecutive_failures: 2, open_for: 1s, half_open_requests: 2 }}
""")
    s = requests.Session()
    g = s.get(w.gw + "/x", timeout=WAIT)
    h = s.head(w.gw + "/x", timeout=WAIT)
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Length"] == g.headers["Content-Length"]
    for code in (204, 304):
        r = s.get(w.gw + f"/status/{code}", timeout=WAIT)
        assert r.status_code == code and r.content == b""
    assert s.get(w.gw + "/x", timeout=WAIT).json()["path"] == "/x"  # framing intact
    assert [get(w.gw + "/status/503").status_code for _ in range(2)] == [503, 503]
    assert get(w.gw + "/status/204").headers.get("X-Weft-Breaker") == "open"
    time.sleep(1.1)
    for _ in range(3):  # two trials close it; each answer ends only after that is known
        assert [get(w.gw + "/status/204").status_code for _ in range(3)] == [204] * 3


def test_retries_go_elsewhere_within_the_budget(spawn, tmp_path, faulty):
    a, b = faulty("a"), faulty("b")
    dead = free_port()  # nothing listens there
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: r
      match: {{ path_prefix: /r }}
      upstream: {{ targets: [127.0.0.1:{dead}, 127.0.0.1:{a.port}] }}
      retry: {{ attempts: 2, on: [connect-failure, reset, 503] }}
    - name: s
      match: {{ path_prefix: /s }}
      upstream: {{ targets: [127.0.0.1:{a.port}, 127.0.0.1:{b.port}] }}
      retry: {{ attempts: 1, on: [503] }}
    - name: storm
      match: {{ path_prefix: /storm }}
      upstream: {{ targets: [127.0.0.1:{b.port}] }}
      retry: {{ attempts: 10, on: [5xx] }}
      timeout: 5s
""")
    # a connect failure is retried on the other target: every request succeeds
    assert [get(w.gw + "/r/x").status_code for _ in range(6)] == [200] * 6
    assert a.stats()["requests_by_path"]["/r/x"] == 6
    # a 503 is retried on the other instance, never the same one twice
    a.set_fault("status", status=503, count=1000)
    for _ in range(4):
        r = get(w.gw + "/s/x")
        assert r.status_code == 200 and r.headers["X-Faulty-Name"] == "b"
    # not for a POST (not idempotent): the 503 comes back when a answers
    codes = {requests.post(w.gw + "/s/x", data=b"z", timeout=WAIT).status_code for _ in range(4)}
    assert codes == {200, 503}
    a.set_fault("off")
    # a storm: 30 requests at once against an upstream that always fails, 10 retries
    # allowed each; the budget (20% of active requests, at least 3) stops most of them
    b.set_fault("status", status=500, count=100000)
    b.reset_stats()
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(30) as ex:
        rs = list(ex.map(lambda i: requests.get(w.gw + "/storm/x", timeout=WAIT), range(30)))
    assert all(r.status_code == 500 for r in rs)
    seen = b.stats()["requests_by_path"]["/storm/x"]
    m = get(w.api + "/metrics").text
    assert 'weft_gateway_upstream_errors_total{route="storm",kind="retry_budget_exhausted"}' in m
    assert 30 < seen < 30 * 11, seen


def test_retry_after_is_honoured(spawn, tmp_path, faulty):
    """A 503 with Retry-After: 1 is retried no sooner than a second later; one asking for
    longer than the route's deadline is not retried: the upstream's 503 comes back at once."""
    up = faulty("ra")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: r
      match: {{ path_prefix: / }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      retry: {{ attempts: 1, on: [503] }}
      timeout: 4s
""")
    up.set_fault("status", status=503, count=1, retry_after="1")
    t0 = time.monotonic()
    r = get(w.gw + "/x")
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert took >= 1.0, took  # a backoff alone waits at most 250 ms
    up.set_fault("status", status=503, count=1, retry_after="10")
    up.reset_stats()
    t0 = time.monotonic()
    r = get(w.gw + "/x")
    assert r.status_code == 503 and r.headers["Retry-After"] == "10"
    assert time.monotonic() - t0 < 1.0
    assert up.stats()["requests"] == 1


def _rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_1gib_upload_streams_in_constant_memory(spawn, tmp_path, faulty):
    """A 1 GiB request body (Content-Length) goes through to an upstream that hashes it as
    it streams in: every byte arrives, in order, and the gateway's resident size stays
    within a few buffers of where it began (back-pressure: it reads from the client only as
    fast as the upstream takes). ASan's quarantine is kept small: it is the sanitizer's
    memory, not weft's."""
    up = faulty("sink")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: up
      match: {{ path_prefix: / }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      timeout: 600s
""", env={"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:quarantine_size_mb=4"})
    total, piece = 1 << 30, bytes(range(256)) * 4096  # 1 MiB pieces
    assert get(w.gw + "/echo").status_code == 200  # warm: the pools and first buffers
    before = _rss(w.proc.pid)
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.05):
            peak[0] = max(peak[0], _rss(w.proc.pid))

    t = threading.Thread(target=sample)
    t.start()
    h = hashlib.sha256()
    port = int(w.gw.rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: sink\r\nContent-Length: %d\r\n\r\n" % total)
            for _ in range(total // len(piece)):
                s.sendall(piece)
                h.update(piece)
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                assert chunk, data
                data += chunk
    finally:
        stop.set()
        t.join()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    import json
    e = json.loads(body)
    assert e["body_length"] == total and e["body_sha256"] == h.hexdigest()
    grew = peak[0] - before
    print(f"1 GiB upload: RSS {before} -> peak {peak[0]} (+{grew} B)")
    assert grew < 32 * 1024 * 1024, (before, peak[0])


def test_rate_limit_max_keys_bounds_the_table(spawn, tmp_path, faulty):
    """rate_limit.max_keys bounds the keys held at once. Of 40 keys (one request each, a
    limit of 1 a minute), a second request is refused for the keys held: all 40 with the
    default bound, at most 16 with max_keys: 16 (a key that finds its slots taken is let
    through rather than stored: memory stays bounded, the limit holds for what is held).
    The admin API shows the bound."""
    up = faulty("mk")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: small
      match: {{ path_prefix: /small }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      rate_limit: {{ algorithm: token_bucket, rate: 1/m, burst: 1, key: header:X-Key, max_keys: 16 }}
    - name: big
      match: {{ path_prefix: /big }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      rate_limit: {{ algorithm: token_bucket, rate: 1/m, burst: 1, key: header:X-Key }}
""")
    routes = get(w.api + "/v1/gateway/routes").json()
    assert [r["rate_limit"]["max_keys"] for r in routes] == [16, 1 << 20]
    limited = {}
    for route in ("small", "big"):
        for k in range(40):
            assert get(w.gw + f"/{route}", headers={"X-Key": f"k{k}"}).status_code == 200
        limited[route] = [get(w.gw + f"/{route}", headers={"X-Key": f"k{k}"}).status_code
                          for k in range(40)].count(429)
    assert limited["big"] == 40
    assert 8 <= limited["small"] <= 16, limited
