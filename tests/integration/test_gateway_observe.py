"""The gateway's span per request and its JSON access log (issue 19, item 8; issue 20, item 5).

The upstream is faulty.py, which records the heads of the requests it receives
(GET /_requests), so the traceparent each try carried can be checked; spans go to a fake
OTLP/HTTP receiver (test_otlp.Receiver) through the OTEL_* environment, as `weft serve` sets
its exporter up. Every test starts the real weft binary."""
import json
import subprocess
import time

import requests

from conftest import WAIT, WEFT, free_port, get, wait_for
from test_otlp import Receiver  # noqa: F401 (the fixture below uses it)
from test_otlp import receiver  # noqa: F401 (a pytest fixture)

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def start_weft(spawn, tmp_path, config, env=None, name="weft", workers=1):
    api, gw = free_port(), free_port()
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(config)
    p = spawn([WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{api}",
               "--gateway", f"127.0.0.1:{gw}", "--data-dir", tmp_path / f"{name}-data",
               "--workers", str(workers), "--log-level", "warn"], api, name=name, env=env)
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


def header(head, name):
    vals = [v for n, v in head["headers"] if n.lower() == name]
    assert len(vals) <= 1, head
    return vals[0] if vals else None


def attrs(span):
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = v.get("stringValue", v.get("intValue", v.get("boolValue")))
    return out


def test_trace_context_passed_through_without_an_exporter(spawn, tmp_path, faulty):
    """With tracing off (tracing.enabled: false) the gateway's spans could never be seen, so
    it makes none and takes no part in the trace, as Envoy does with tracing off: the client's
    traceparent and tracestate go upstream exactly as sent (the upstream's spans then hang
    under the client's, not under a parent nobody exported), and a request without one goes
    without."""
    up = faulty("up")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: r
      match: {{ path_prefix: /r }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
tracing: {{ enabled: false }}
""")
    tp = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    for flags in ("01", "00"):
        r = get(w.gw + "/r/a", headers={"traceparent": tp[:-2] + flags,
                                        "tracestate": "vendor=x,other=y"})
        assert r.status_code == 200
    get(w.gw + "/r/b")
    seen = up.requests_seen()
    assert [h["target"] for h in seen] == ["/r/a", "/r/a", "/r/b"]
    for head, flags in zip(seen[:2], ("01", "00")):
        assert header(head, "traceparent") == tp[:-2] + flags
        assert header(head, "tracestate") == "vendor=x,other=y"
    assert header(seen[2], "traceparent") is None
    assert header(seen[2], "tracestate") is None


def test_gateway_span_exported_with_decisions(spawn, tmp_path, faulty, receiver):
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, each request's SERVER span reaches the receiver:
    the client's parent, the route, method, path, chosen instance, status, the rate-limit
    and breaker verdicts as attributes, and each retry as an event naming the instance that
    failed and why. The upstream saw the gateway's span as its parent. A 429 and an
    open-breaker 503 are spans too, with their verdicts."""
    bad, good = faulty("bad"), faulty("good")
    bad.set_fault("status", status=503)
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: retried
      match: {{ path_prefix: /retried }}
      upstream: {{ targets: [127.0.0.1:{bad.port}, 127.0.0.1:{good.port}] }}
      retry: {{ attempts: 1, on: [503] }}
      rate_limit: {{ algorithm: token_bucket, rate: 1000/s, burst: 1000, key: client_ip }}
      circuit_breaker: {{ consecutive_failures: 1000, open_for: 30s }}
    - name: limited
      match: {{ path_prefix: /limited }}
      upstream: {{ targets: [127.0.0.1:{good.port}] }}
      rate_limit: {{ algorithm: token_bucket, rate: 1/m, burst: 1, key: route }}
    - name: brk
      match: {{ path_prefix: /brk }}
      upstream: {{ targets: [127.0.0.1:{bad.port}] }}
      circuit_breaker: {{ consecutive_failures: 1, open_for: 30s }}
""", env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
          "OTEL_BSP_SCHEDULE_DELAY": "50"})
    # round robin over two targets (one worker): the first request tries bad first
    traces = []
    for i in range(2):
        trace = f"{i + 1:032x}"
        traces.append(trace)
        r = get(w.gw + "/retried/x?q=1",
                headers={"traceparent": f"00-{trace}-{CLIENT_SPAN}-01", "tracestate": "k=v"})
        assert r.status_code == 200 and r.headers["X-Faulty-Name"] == "good"
    spans = {}
    for t in traces:
        found = receiver.wait_trace(t, WAIT)
        assert len(found) == 1, receiver.spans()
        resource, span, _ = found[0]
        spans[t] = span
    retried = [s for s in spans.values() if s.get("events")]
    assert retried, spans
    s = spans[traces[0]]
    assert s["kind"] == 2 and s["parentSpanId"] == CLIENT_SPAN  # SPAN_KIND_SERVER
    assert s["name"] == "GET retried"
    a = attrs(s)
    assert a["weft.route"] == "retried" and a["http.route"] == "/retried"
    assert a["http.request.method"] == "GET" and a["url.path"] == "/retried/x"
    assert a["server.address"] == "127.0.0.1" and int(a["server.port"]) == good.port
    assert int(a["http.response.status_code"]) == 200 and int(a["weft.retries"]) == 1
    assert a["weft.ratelimit"] == "allowed" and a["weft.breaker"] == "closed"
    assert a["weft.decision"] == "proxied" and a["client.address"] == "127.0.0.1"
    assert len(a["weft.request_id"]) == 16
    assert "status" not in s or s["status"].get("code", 0) != 2
    [ev] = s["events"]
    assert ev["name"] == "retry"
    ea = attrs(ev)
    assert ea["server.address"] == f"127.0.0.1:{bad.port}" and ea["weft.retry.reason"] == "503"
    assert int(ea["weft.retry.attempt"]) == 1 and int(ea["weft.retry.backoff_ms"]) >= 0
    # every try carried the gateway's span as parent, the client's trace id and tracestate
    tries = [h for h in bad.requests_seen() + good.requests_seen()
             if h["target"] == "/retried/x?q=1" and
             header(h, "traceparent").split("-")[1] == s["traceId"]]
    assert len(tries) == 2
    for h in tries:
        assert header(h, "traceparent") == f"00-{s['traceId']}-{s['spanId']}-01"
        assert header(h, "tracestate") == "k=v"
    for x in spans.values():  # a request sent to good at once has no event
        assert int(attrs(x)["weft.retries"]) == len(x.get("events", []))
    # parent-based sampling: a client's unsampled trace is not exported (the spans of one
    # worker reach the exporter's queue in order: the sampled request's span arriving
    # first means the unsampled one was never sent), but its traceparent still goes up
    r = get(w.gw + "/retried/y", headers={"traceparent": f"00-{'c' * 32}-{CLIENT_SPAN}-00"})
    assert r.status_code == 200
    get(w.gw + "/retried/y", headers={"traceparent": f"00-{'d' * 32}-{CLIENT_SPAN}-01"})
    assert len(receiver.wait_trace("d" * 32, WAIT)) == 1
    assert receiver.wait_trace("c" * 32, 0) == []
    sent = [header(h, "traceparent") for h in bad.requests_seen() + good.requests_seen()
            if h["target"] == "/retried/y"]
    unsampled = [v for v in sent if v.split("-")[1] == "c" * 32]
    assert unsampled and all(v.endswith("-00") and CLIENT_SPAN not in v for v in unsampled)
    # a 429 and an open breaker: spans with the verdicts, errors for the 5xx
    assert get(w.gw + "/limited/x").status_code == 200
    r = get(w.gw + "/limited/x", headers={"traceparent": f"00-{'a' * 32}-{CLIENT_SPAN}-01"})
    assert r.status_code == 429
    [(_, s429, _)] = receiver.wait_trace("a" * 32, WAIT)
    a = attrs(s429)
    assert a["weft.ratelimit"] == "rejected" and a["weft.decision"] == "rate_limited"
    assert int(a["http.response.status_code"]) == 429 and "server.address" not in a
    assert get(w.gw + "/brk/x").status_code == 503  # the upstream's; opens the breaker
    r = get(w.gw + "/brk/x", headers={"traceparent": f"00-{'b' * 32}-{CLIENT_SPAN}-01"})
    assert r.status_code == 503 and r.headers["X-Weft-Breaker"] == "open"
    [(_, s503, _)] = receiver.wait_trace("b" * 32, WAIT)
    a = attrs(s503)
    assert a["weft.breaker"] == "open" and a["weft.decision"] == "breaker_open"
    assert a["error.type"] == "503" and s503["status"]["code"] == 2  # STATUS_CODE_ERROR
    # the breaker refused before any try: the upstream never saw that trace
    assert not [h for h in bad.requests_seen() if "b" * 32 in (header(h, "traceparent") or "")]


def read_log(path, n):
    """The access log's lines, parsed, once n of them are there, without those of the
    probes that waited for the gateway to listen (GET /, no route)."""
    def lines():
        if not path.exists():
            return []
        text = path.read_text()
        return [x for x in map(json.loads, text[:text.rfind("\n") + 1].splitlines())
                if x["path"] != "/"]
    wait_for(lambda: len(lines()) >= n, f"{n} access log lines in {path}")
    return lines()


def test_access_log_decisions(spawn, tmp_path, faulty):
    """gateway.access_log.path: one JSON object per request, naming the decision taken:
    proxied, rate_limited, rate_limited_shadow, breaker_open, no_route, no_upstream, retried
    (a count, with every instance tried), timeout, upstream_error (with its kind)."""
    up, bad = faulty("up"), faulty("bad")
    bad.set_fault("status", status=503)
    log = tmp_path / "access.log"
    dead = free_port()
    w = start_weft(spawn, tmp_path, f"""gateway:
  access_log: {{ path: {log} }}
  routes:
    - name: ok
      match: {{ path_prefix: /ok }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
    - name: limited
      match: {{ path_prefix: /limited }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      rate_limit: {{ algorithm: token_bucket, rate: 1/m, burst: 1, key: route }}
    - name: shadow
      match: {{ path_prefix: /shadow }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      rate_limit: {{ algorithm: token_bucket, rate: 1/m, burst: 1, key: route, shadow: true }}
    - name: brk
      match: {{ path_prefix: /brk }}
      upstream: {{ targets: [127.0.0.1:{bad.port}] }}
      circuit_breaker: {{ consecutive_failures: 1, open_for: 30s }}
    - name: retried
      match: {{ path_prefix: /retried }}
      upstream: {{ targets: [127.0.0.1:{bad.port}, 127.0.0.1:{up.port}] }}
      retry: {{ attempts: 1, on: [503] }}
    - name: slow
      match: {{ path_prefix: /slow }}
      strip_prefix: true
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      timeout: 300ms
    - name: dead
      match: {{ path_prefix: /dead }}
      upstream: {{ targets: [127.0.0.1:{dead}] }}
    - name: nobody
      match: {{ path_prefix: /nobody }}
      service: nobody
""")
    calls = [
        ("GET", "/ok/x", {"X-Request-Id": "rid-1"}, b"", 200),
        ("POST", "/ok/echo", {}, b"0123456789", 200),
        ("GET", "/limited/x", {}, b"", 200),
        ("GET", "/limited/x", {}, b"", 429),
        ("GET", "/shadow/x", {}, b"", 200),
        ("GET", "/shadow/x", {}, b"", 200),
        ("GET", "/brk/x", {}, b"", 503),
        ("GET", "/brk/x", {}, b"", 503),
        ("GET", "/retried/a", {}, b"", 200),
        ("GET", "/retried/b", {}, b"", 200),
        ("GET", "/slow/delay/3000", {}, b"", 504),
        ("GET", "/dead/x", {}, b"", 502),
        ("GET", "/nobody/x", {}, b"", 503),
        ("GET", "/nowhere", {}, b"", 404),
    ]
    tp = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    for method, path, hdrs, body, status in calls:
        r = requests.request(method, w.gw + path, headers={**hdrs, "traceparent": tp},
                             data=body, timeout=WAIT)
        assert r.status_code == status, (path, r.status_code, r.text)
    lines = read_log(log, len(calls))
    assert len(lines) == len(calls)
    by = {}
    for (method, path, _, _, status), line in zip(calls, lines):
        assert line["method"] == method and line["path"] == path.split("?")[0], line
        assert line["status"] == status, line
        assert line["client_ip"] == "127.0.0.1" and line["duration_ms"] >= 0
        # the gateway's own span (into weft's trace store), in the client's trace
        assert line["trace_id"] == CLIENT_TRACE
        assert len(line["span_id"]) == 16 and line["span_id"] != CLIENT_SPAN
        assert line["time"].endswith("Z") and "T" in line["time"]
        by.setdefault(path, []).append(line)
    ok, post = by["/ok/x"][0], by["/ok/echo"][0]
    assert ok["decision"] == "proxied" and ok["route"] == "ok" and ok["retries"] == 0
    assert ok["upstream"] == f"127.0.0.1:{up.port}" and ok["tried"] == [ok["upstream"]]
    assert ok["request_id"] == "rid-1" and ok["upstream_error"] is None
    assert ok["bytes_in"] == 0 and ok["bytes_out"] > 0
    assert post["bytes_in"] == 10 and len(post["request_id"]) == 16
    assert [x["decision"] for x in by["/limited/x"]] == ["proxied", "rate_limited"]
    assert [x["ratelimit"] for x in by["/limited/x"]] == ["allowed", "rejected"]
    assert by["/limited/x"][1]["tried"] == [] and by["/limited/x"][1]["upstream"] is None
    assert [x["decision"] for x in by["/shadow/x"]] == ["proxied", "rate_limited_shadow"]
    assert by["/shadow/x"][1]["ratelimit"] == "shadow"
    assert [x["decision"] for x in by["/brk/x"]] == ["proxied", "breaker_open"]
    assert [x["breaker"] for x in by["/brk/x"]] == ["closed", "open"]
    assert by["/brk/x"][1]["tried"] == []
    retried = [x for p in ("/retried/a", "/retried/b") for x in by[p] if x["retries"]]
    assert len(retried) == 1, by  # round robin: one of the two tried bad first
    rt = retried[0]
    assert rt["decision"] == "proxied" and rt["retries"] == 1
    assert rt["tried"] == [f"127.0.0.1:{bad.port}", f"127.0.0.1:{up.port}"]
    assert rt["upstream"] == f"127.0.0.1:{up.port}"
    slow = by["/slow/delay/3000"][0]
    assert slow["decision"] == "timeout" and "timeout" in slow["upstream_error"]
    dead_line = by["/dead/x"][0]
    assert dead_line["decision"] == "upstream_error"
    assert dead_line["upstream_error"] == "connect"
    assert dead_line["upstream"] == f"127.0.0.1:{dead}"
    nob = by["/nobody/x"][0]
    assert nob["decision"] == "no_upstream" and nob["route"] == "nobody"
    nr = by["/nowhere"][0]
    assert nr["decision"] == "no_route" and nr["route"] is None
    m = get(w.api + "/metrics").text
    assert "weft_gateway_access_log_dropped_total 0" in m


def test_access_log_bad_config_refused_with_its_position(tmp_path):
    for config, where, what in (
        ("gateway:\n  access_log: /tmp/x.log\n", ":2:15: gateway.access_log:", "map"),
        ("gateway:\n  access_log: { file: x }\n", ":2:17: gateway.access_log.file:", ""),
        ("gateway:\n  access_log: {}\n", ":2:15: gateway.access_log:", "path"),
        (f"gateway:\n  access_log: {{ path: {tmp_path}/no/such/dir/a.log }}\n",
         ":2:23: gateway.access_log.path:", "cannot open it: No such file"),
    ):
        cfg = tmp_path / "bad.yaml"
        cfg.write_text(config)
        r = subprocess.run([str(WEFT), "serve", "--config", str(cfg),
                            "--api", f"127.0.0.1:{free_port()}",
                            "--gateway", f"127.0.0.1:{free_port()}",
                            "--data-dir", str(tmp_path / "d")],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 2, r.stderr
        line = r.stderr.strip().splitlines()[-1]
        assert str(cfg) + where in line and what in line, line


def test_access_log_to_stdout(tmp_path, faulty):
    """path "-" writes the lines to standard output (weft's own log stays on stderr)."""
    up = faulty("up")
    api, gw = free_port(), free_port()
    cfg = tmp_path / "w.yaml"
    cfg.write_text(f"""gateway:
  access_log: {{ path: "-" }}
  routes:
    - name: ok
      match: {{ path_prefix: /ok }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
""")
    from conftest import sanitizer_env
    p = subprocess.Popen([str(WEFT), "serve", "--config", str(cfg), "--api", f"127.0.0.1:{api}",
                          "--gateway", f"127.0.0.1:{gw}", "--data-dir", str(tmp_path / "d"),
                          "--workers", "1", "--log-level", "warn"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sanitizer_env())
    try:
        wait_for(lambda: _answers(gw), "the gateway to listen")
        assert get(f"http://127.0.0.1:{gw}/ok/x").status_code == 200
    finally:
        p.terminate()
        out, err = p.communicate(timeout=WAIT)
    assert p.returncode == 0, err
    lines = [json.loads(x) for x in out.decode().splitlines()]
    # the probe while waiting (no route) and the request; written out before exiting
    assert lines[-1]["path"] == "/ok/x" and lines[-1]["decision"] == "proxied"
    assert all(x["decision"] == "no_route" for x in lines[:-1])
    assert b"ERROR" not in err and b"runtime error" not in err
