"""Forwarding (collector.forward.*, issue 20 item 6): weft A forwards every span it keeps to
an external OTLP/HTTP receiver, here weft B's OTLP port (a real receiver that decodes what
it gets and answers as OTLP/HTTP says). Spans sent to A in every ingest format read back from
B's Jaeger API exactly as from A's; a receiver that is down at first gets the spans once it
is up; a full forward queue drops (and counts) spans without slowing ingest; a bad endpoint
is a configuration error."""
import base64
import json
import random
import re
import time

import requests

from conftest import WAIT, WEFT, free_port, get, run_cli, wait_for, wait_port


def rand_hex(n):
    return "".join(random.choice("0123456789abcdef") for _ in range(n))


def start(spawn, tmp_path, name, config=None, otlp=None, wait=True, env=None):
    """weft serve with its collector on loopback ports (otlp: a given OTLP port), and
    config (YAML text) as its --config file."""
    api, zipkin, otlp = free_port(), free_port(), otlp or free_port()
    args = [WEFT, "serve", "--api", f"127.0.0.1:{api}", "--otlp", f"127.0.0.1:{otlp}",
            "--zipkin", f"127.0.0.1:{zipkin}", "--data-dir", tmp_path / f"{name}-data",
            "--workers", "2", "--log-level", "warn"]
    if config is not None:
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(config)
        args += ["--config", cfg]
    p = spawn(args, api, name=name, env=env)
    wait_port(otlp, p.proc, p.log)
    wait_port(zipkin, p.proc, p.log)
    p.api, p.otlp = f"http://127.0.0.1:{api}", f"http://127.0.0.1:{otlp}/v1/traces"
    p.zipkin, p.otlp_port = f"http://127.0.0.1:{zipkin}", otlp
    return p


def forward_config(port, **opts):
    lines = ["collector:", "  forward:", f"    endpoint: \"http://127.0.0.1:{port}/v1/traces\""]
    lines += [f"    {k}: {v}" for k, v in opts.items()]
    return "\n".join(lines) + "\n"


def metric(w, name, labels=""):
    """The value of metric name{labels} in w's /metrics (0 when it is not there yet)."""
    text = get(f"{w.api}/metrics").text
    want = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


def jaeger(w, tid):
    r = get(f"{w.api}/api/traces/{tid}")
    if r.status_code != 200:
        return None
    return r.json()["data"][0]


def normal(t):
    """A Jaeger trace with each span's process inlined, spans in id order: what two
    collectors holding the same spans must answer alike (process ids are per answer)."""
    spans = []
    for s in t["spans"]:
        s = dict(s)
        s["process"] = t["processes"][s.pop("processID")]
        spans.append(s)
    return {"traceID": t["traceID"], "spans": sorted(spans, key=lambda s: s["spanID"])}


def same_in_b(a, b, tid):
    """Waits until B holds as many spans of trace tid as A, and asserts both answer the
    same trace."""
    ta = jaeger(a, tid)
    assert ta is not None, f"trace {tid} is not in A"
    n = len(ta["spans"])
    got = wait_for(lambda: (lambda t: t if t and len(t["spans"]) >= n else None)(jaeger(b, tid)),
                   f"trace {tid} with {n} spans forwarded to B")
    assert normal(got) == normal(ta)
    return ta


def kv(k, v):
    return {"key": k, "value": v}


def rich_otlp_json(tid):
    """An OTLP/JSON request that uses every field the collector keeps."""
    now = time.time_ns()
    root, child = rand_hex(16), rand_hex(16)
    attrs = [
        kv("s", {"stringValue": "h\u00e9llo \"q\""}), kv("i", {"intValue": "-42"}),
        kv("big", {"intValue": "9007199254740993"}), kv("d", {"doubleValue": 2.5}),
        kv("b", {"boolValue": True}),
        kv("bytes", {"bytesValue": base64.b64encode(b"\x00\xffbin").decode()}),
        kv("arr", {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"},
                                             {"doubleValue": 0.5}, {"boolValue": False}]}}),
        kv("map", {"kvlistValue": {"values": [kv("x", {"stringValue": "y"}),
                                              kv("n", {"arrayValue": {"values": []}})]}}),
        kv("empty", {}),
    ]
    spans = [
        {"traceId": tid, "spanId": root, "name": "GET /orders", "kind": 2,
         "traceState": "vendor=1,other=2", "flags": 257,
         "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 5_000_123),
         "attributes": attrs, "droppedAttributesCount": 2, "droppedEventsCount": 1,
         "droppedLinksCount": 3,
         "events": [{"timeUnixNano": str(now + 1000), "name": "cache miss",
                     "attributes": [kv("key", {"stringValue": "o:1"}),
                                    kv("n", {"intValue": "3"})],
                     "droppedAttributesCount": 1}],
         "links": [{"traceId": rand_hex(32), "spanId": rand_hex(16), "traceState": "l=1",
                    "attributes": [kv("why", {"stringValue": "batch"})]}],
         "status": {"code": 2, "message": "upstream said no"}},
        {"traceId": tid, "spanId": child, "parentSpanId": root, "name": "SELECT", "kind": 3,
         "startTimeUnixNano": str(now + 10_000), "endTimeUnixNano": str(now + 3_000_000),
         "attributes": [kv("db.system", {"stringValue": "postgresql"})],
         "status": {"code": 1}},
    ]
    return {"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", {"stringValue": "orders"}),
                                    kv("host.name", {"stringValue": "node-1"}),
                                    kv("pid", {"intValue": "4242"})],
                     "droppedAttributesCount": 1},
        "scopeSpans": [
            {"scope": {"name": "orders-lib", "version": "3.1",
                       "attributes": [kv("scope.k", {"stringValue": "v"})]},
             "spans": spans[:1]},
            {"scope": {"name": "db-lib"}, "spans": spans[1:]}]}]}


def zipkin_spans(tid):
    """Zipkin v2 spans with both endpoints (addresses, ports, a remote service), an error
    tag, annotations and shared."""
    now = time.time_ns() // 1000
    root, child = rand_hex(16), rand_hex(16)
    return [
        {"traceId": tid, "id": root, "kind": "SERVER", "name": "get /cart", "timestamp": now,
         "duration": 4000, "shared": True,
         "localEndpoint": {"serviceName": "cart", "ipv4": "10.1.2.3", "port": 8080},
         "remoteEndpoint": {"ipv6": "2001:db8::9", "port": 51234},
         "annotations": [{"timestamp": now + 5, "value": "wr"}],
         "tags": {"http.method": "GET", "http.path": "/cart"}},
        {"traceId": tid, "id": child, "parentId": root, "kind": "CLIENT", "name": "query",
         "timestamp": now + 100, "duration": 2500,
         "localEndpoint": {"serviceName": "cart", "ipv4": "10.1.2.3"},
         "remoteEndpoint": {"serviceName": "redis", "ipv4": "10.9.9.9", "port": 6379},
         "tags": {"error": "timeout", "db.statement": "GET cart:1"}},
    ]


def test_forward_every_format_reads_back_the_same(spawn, tmp_path, otel_js):
    """Spans sent to A as OTLP protobuf, OTLP/JSON and Zipkin JSON (by the OpenTelemetry JS
    SDK's exporters, and by hand with every field) read back from B's Jaeger API exactly as
    from A's: ids, parents, times, attributes of every type, events, links, status, trace
    state, resource and scope. A's own spans (its API's) are forwarded too."""
    b = start(spawn, tmp_path, "b")
    a = start(spawn, tmp_path, "a", forward_config(b.otlp_port, flush_interval="50ms"))
    tids = []
    for exporter, url in (("otlp-proto", a.otlp), ("otlp-http", a.otlp),
                          ("zipkin", a.zipkin + "/api/v2/spans")):
        out = otel_js(exporter, url, f"js-{exporter}")
        tids.append(out["spans"][0]["traceId"])
    tid = rand_hex(32)
    r = requests.post(a.otlp, data=json.dumps(rich_otlp_json(tid)),
                      headers={"Content-Type": "application/json"}, timeout=WAIT)
    assert r.status_code == 200, r.text
    tids.append(tid)
    tid = rand_hex(32)
    r = requests.post(a.zipkin + "/api/v2/spans", json=zipkin_spans(tid), timeout=WAIT)
    assert r.status_code == 202, r.text
    tids.append(tid)

    for tid in tids:
        same_in_b(a, b, tid)
    # the hand-made traces really carry what they were meant to (not two empty answers)
    t = normal(jaeger(b, tids[3]))
    root = next(s for s in t["spans"] if s["operationName"] == "GET /orders")
    tags = {g["key"]: g for g in root["tags"]}
    assert tags["arr"]["value"] == '["a",1,0.5,false]'
    assert tags["big"]["value"] in (9007199254740993, "9007199254740993")
    assert tags["w3c.tracestate"]["value"] == "vendor=1,other=2"
    assert tags["otel.status_description"]["value"] == "upstream said no"
    z = normal(jaeger(b, tids[4]))
    ztags = {s["operationName"]: {g["key"]: g["value"] for g in s["tags"]} for s in z["spans"]}
    assert ztags["query"]["net.host.ip"] == "10.1.2.3"
    assert ztags["query"]["net.peer.port"] == 6379
    assert ztags["query"]["peer.service"] == "redis"
    assert ztags["get /cart"]["net.peer.ip"] == "2001:db8::9"
    assert ztags["get /cart"]["net.host.port"] == 8080

    # A's own spans: its API traced the queries above; they reach B under A's service
    services = set(get(f"{a.api}/api/services").json()["data"])
    own = services - {"orders", "cart", "js-otlp-proto", "js-otlp-http", "js-zipkin"}
    assert own, services
    svc = sorted(own)[0]

    # (B is weft too, with the same service name: the trace is picked from A's answer)
    r = get(f"{a.api}/api/traces", params={"service": svc, "limit": 5})
    assert r.status_code == 200 and r.json()["data"], r.text
    same_in_b(a, b, r.json()["data"][0]["traceID"])

    sent = wait_for(lambda: metric(a, "weft_collector_forward_spans_total", 'outcome="sent"'),
                    "forwarded spans counted")
    assert sent >= 3 * 3 + 2 + 2
    assert metric(a, "weft_collector_forward_spans_total", 'outcome="dropped"') == 0
    assert metric(a, "weft_collector_forward_spans_total", 'outcome="failed"') == 0


def otlp_body(tid, n, service="svc", pad=0):
    now = time.time_ns()
    spans = [{"traceId": tid, "spanId": rand_hex(16), "name": f"op-{i}", "kind": 2,
              "startTimeUnixNano": str(now + i), "endTimeUnixNano": str(now + i + 1000),
              "attributes": [kv("pad", {"stringValue": "x" * pad})] if pad else []}
             for i in range(n)]
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", {"stringValue": service})]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]})


def post(w, body):
    return requests.post(w.otlp, data=body, headers={"Content-Type": "application/json"},
                         timeout=WAIT)


def test_forward_waits_for_a_receiver_that_starts_late(spawn, tmp_path):
    """B is not running when A takes the spans: A keeps them queued and retries (with
    backoff); once B starts on that port, every span arrives."""
    port = free_port()
    a = start(spawn, tmp_path, "a", forward_config(port, flush_interval="20ms"),
              env={"WEFT_TRACING": "false"})
    tids = [rand_hex(32) for _ in range(3)]
    for tid in tids:
        assert post(a, otlp_body(tid, 5)).status_code == 200
    wait_for(lambda: metric(a, "weft_collector_forward_retries_total") >= 1,
             "a retry of the refused forward request")
    assert metric(a, "weft_collector_forward_queued_spans") == 15
    assert metric(a, "weft_collector_forward_spans_total", 'outcome="sent"') == 0
    b = start(spawn, tmp_path, "b", otlp=port)
    for tid in tids:
        same_in_b(a, b, tid)
    wait_for(lambda: metric(a, "weft_collector_forward_spans_total", 'outcome="sent"') == 15,
             "15 spans counted as sent")
    assert metric(a, "weft_collector_forward_queued_spans") == 0
    assert metric(a, "weft_collector_forward_spans_total", 'outcome="failed"') == 0


def test_forward_queue_full_drops_without_slowing_ingest(spawn, tmp_path):
    """A tiny forward queue and no receiver: ingest still answers 200 at once, the spans
    that did not fit are counted as dropped (queued + dropped = all of them), A keeps
    serving, stores every span, and stops promptly (the final flush gives up on a receiver
    that refuses connections)."""
    port = free_port()  # nothing listens there
    a = start(spawn, tmp_path, "a",
              forward_config(port, queue_size="4KiB", flush_interval="10ms",
                             shutdown_timeout="3s"),
              env={"WEFT_TRACING": "false"})
    total, tids = 0, []
    for i in range(40):
        tid = rand_hex(32)
        t0 = time.monotonic()
        r = post(a, otlp_body(tid, 10, pad=200))
        assert r.status_code == 200, r.text
        assert time.monotonic() - t0 < 2.0
        total += 10
        tids.append(tid)
    dropped = metric(a, "weft_collector_forward_spans_total", 'outcome="dropped"')
    queued = metric(a, "weft_collector_forward_queued_spans")
    assert dropped > 0
    assert queued > 0
    assert dropped + queued == total, (dropped, queued)
    for tid in tids:  # every span is stored all the same
        assert len(jaeger(a, tid)["spans"]) == 10
    t0 = time.monotonic()
    assert a.stop() == 0
    assert time.monotonic() - t0 < 3.0 + 2.0


def test_forward_bad_endpoint_is_a_config_error(tmp_path):
    """A forward endpoint that is not an http:// URL is refused at start-up with the file,
    line and column of the value, and exit status 2."""
    for bad, words in (("https://tempo:4318/v1/traces", "http://"),
                       ("127.0.0.1:4318", "http://"),
                       ("http://tempo:99999/v1/traces", "port")):
        cfg = tmp_path / "bad.yaml"
        cfg.write_text(f"collector:\n  forward:\n    endpoint: \"{bad}\"\n")
        r = run_cli(WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{free_port()}",
                    "--data-dir", tmp_path / "data")
        assert r.returncode == 2, r.stderr
        line = r.stderr.strip().splitlines()[-1]
        assert re.match(rf"weft: {re.escape(str(cfg))}:3:15: collector\.forward\.endpoint: ", line), line
        assert words in line, line
    # a bad headers value is refused the same way, and never quoted: it may hold a key
    cfg.write_text("collector:\n  forward:\n    endpoint: \"http://127.0.0.1:1\"\n"
                   "    headers: \"Authorization=Bearer%zz-s3cret\"\n")
    r = run_cli(WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{free_port()}",
                "--data-dir", tmp_path / "data")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line == (f"weft: {cfg}:4:14: collector.forward.headers: "
                    "'%' must start an escape of two hex digits"), line
    assert "s3cret" not in r.stderr


def test_forward_retry_after_headers_and_refusals(spawn, tmp_path, faulty):
    """Against a receiver that answers 503 with Retry-After: 1, then 200: the batch is sent
    again after that second, with the configured headers and the protobuf Content-Type. A
    400 drops the batch at once (counted as failed, not retried)."""
    up = faulty("otlp-up")
    cfg = forward_config(up.port, flush_interval="10ms",
                         headers='"X-Scope-OrgID=shop,Authorization=Bearer%20s3cret"')
    cfg = cfg.replace(f"127.0.0.1:{up.port}/v1/traces", f"127.0.0.1:{up.port}/otlp/v1/traces")
    a = start(spawn, tmp_path, "a", cfg, env={"WEFT_TRACING": "false"})
    up.set_fault("status", status=503, retry_after="1", count=1)
    t0 = time.monotonic()
    assert post(a, otlp_body(rand_hex(32), 4)).status_code == 200
    wait_for(lambda: metric(a, "weft_collector_forward_spans_total", 'outcome="sent"') == 4,
             "4 spans sent after the 503")
    assert time.monotonic() - t0 >= 0.9  # Retry-After: 1 was waited for
    st = up.stats()
    assert st["requests"] == 2 and st["responses_by_status"] == {"503": 1, "200": 1}, st
    assert metric(a, "weft_collector_forward_retries_total") == 1
    seen = up.requests_seen()
    assert len(seen) == 2
    for r in seen:
        assert r["method"] == "POST" and r["target"] == "/otlp/v1/traces"
        h = {k.lower(): v for k, v in r["headers"]}
        assert h["content-type"] == "application/x-protobuf"
        assert h["x-scope-orgid"] == "shop"
        assert h["authorization"] == "Bearer s3cret"

    up.set_fault("status", status=400)
    up.reset_stats()
    assert post(a, otlp_body(rand_hex(32), 3)).status_code == 200
    wait_for(lambda: metric(a, "weft_collector_forward_spans_total", 'outcome="failed"') == 3,
             "3 spans failed on a 400")
    assert up.stats()["requests"] == 1
    assert metric(a, "weft_collector_forward_queued_spans") == 0
    assert metric(a, "weft_collector_forward_spans_total", 'outcome="sent"') == 4


def test_forward_final_flush_at_shutdown(spawn, tmp_path, faulty):
    """Spans still waiting for their batch when A stops are sent in its final flush; a
    receiver that does not answer holds the stop up for shutdown_timeout at most."""
    b = start(spawn, tmp_path, "b")
    a = start(spawn, tmp_path, "a", forward_config(b.otlp_port, flush_interval="1m"),
              env={"WEFT_TRACING": "false"})
    tid = rand_hex(32)
    assert post(a, otlp_body(tid, 5)).status_code == 200
    assert metric(a, "weft_collector_forward_queued_spans") == 5
    assert jaeger(b, tid) is None  # waiting for the batch to fill or the minute to pass
    assert a.stop() == 0
    t = jaeger(b, tid)
    assert t is not None and len(t["spans"]) == 5

    up = faulty("hangs")
    up.set_fault("delay", ms=30000)
    a = start(spawn, tmp_path, "a2",
              forward_config(up.port, flush_interval="1m", shutdown_timeout="1s"),
              env={"WEFT_TRACING": "false"})
    assert post(a, otlp_body(rand_hex(32), 5)).status_code == 200
    t0 = time.monotonic()
    assert a.stop() == 0
    took = time.monotonic() - t0
    assert 0.9 <= took < 1.0 + 3.0, took
    assert up.stats()["requests"] == 1
