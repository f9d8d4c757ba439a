"""The tracing collector (issue 20) against clients nobody on weft wrote: spans sent with the
OpenTelemetry JS SDK's exporters (OTLP protobuf, OTLP JSON, Zipkin) and with Debian's
py_zipkin, read back through the Zipkin and Jaeger query APIs and compared field by field;
bad input refused with a clear answer; acknowledged spans surviving kill -9."""
import gzip
import json
import math
import os
import random
import signal
import time

import pytest
import requests

from conftest import WAIT, get, need_module, wait_for, wait_port


def jaeger_trace(w, tid, n):
    """The trace tid from Jaeger's API once it has n spans (the store acknowledges before
    the answer, so this is at once; the wait covers a client's own batching)."""
    got = {}

    def found():
        r = get(f"{w.api}/api/traces/{tid}")
        if r.status_code == 200 and len(r.json()["data"][0]["spans"]) >= n:
            got["t"] = r.json()["data"][0]
            return True
        return False
    wait_for(found, f"trace {tid} with {n} spans in the Jaeger API")
    return got["t"]


def zipkin_trace(w, tid):
    r = get(f"{w.zipkin}/api/v2/trace/{tid}")
    assert r.status_code == 200, r.text
    return r.json()


def jaeger_typed(v):
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int64", v)
    if isinstance(v, float):
        return ("float64", v)
    return ("string", v)


def zipkin_text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@pytest.mark.parametrize("exporter", ["otlp-proto", "otlp-http", "zipkin"])
def test_opentelemetry_js_round_trip(collector, otel_js, exporter):
    """A trace made and exported by the OpenTelemetry JS SDK reads back through both query
    APIs with the ids, parent links, timestamps, attributes and status the SDK gave it."""
    w = collector()
    url = w.otlp if exporter.startswith("otlp") else w.zipkin + "/api/v2/spans"
    out = otel_js(exporter, url, "orders-js")
    spans = out["spans"]
    assert len(spans) == 3
    tid = spans[0]["traceId"]
    via_zipkin = exporter == "zipkin"

    def js_us(ns):  # the Zipkin exporter's hrTimeToMicroseconds, in JavaScript's doubles
        return math.floor((ns // 10**9) * 1e6 + (ns % 10**9) / 1e3 + 0.5)

    def us(ns):  # weft truncates nanoseconds to microseconds
        return js_us(int(ns)) if via_zipkin else int(ns) // 1000

    def dur(s):
        d = int(s["endNs"]) - int(s["startNs"])
        return js_us(d) if via_zipkin else d // 1000

    t = jaeger_trace(w, tid, 3)
    assert t["traceID"] == tid
    by = {s["spanID"]: s for s in t["spans"]}
    assert sorted(by) == sorted(s["spanId"] for s in spans)
    for s in spans:
        js = by[s["spanId"]]
        assert js["traceID"] == tid
        assert js["operationName"] == s["name"]
        child_of = [r for r in js["references"] if r["refType"] == "CHILD_OF"]
        if s["parentSpanId"]:
            assert child_of == [{"refType": "CHILD_OF", "traceID": tid,
                                 "spanID": s["parentSpanId"]}]
        else:
            assert child_of == []
        assert js["startTime"] == us(s["startNs"])
        assert js["duration"] == dur(s)
        tags = {g["key"]: (g["type"], g["value"]) for g in js["tags"]}
        for k, v in s["attributes"].items():
            # Zipkin's tags are strings: the types do not survive its exporter
            want = ("string", zipkin_text(v)) if via_zipkin else jaeger_typed(v)
            assert tags[k] == want, (k, tags.get(k))
        if s["status"]["code"] == 2:
            assert tags["error"] in (("bool", True), ("string", "true")) or \
                tags["error"][0] == "bool"
            if not via_zipkin:
                assert tags["otel.status_code"] == ("string", "ERROR")
                assert tags["otel.status_description"] == ("string", s["status"]["message"])
        proc = t["processes"][js["processID"]]
        assert proc["serviceName"] == "orders-js"
        if not via_zipkin:
            ptags = {g["key"]: g["value"] for g in proc["tags"]}
            assert ptags["service.version"] == "1.2.3"
            assert ptags["deployment.environment"] == "test"
            assert tags["otel.scope.name"] == ("string", "weft-test-client")
            assert tags["otel.scope.version"] == ("string", "0.1.0")
        for ev in s["events"]:
            log = next(lg for lg in js["logs"] if lg["timestamp"] == us(ev["timeNs"]))
            fields = {f["key"]: f["value"] for f in log["fields"]}
            if via_zipkin:  # an annotation's value: "name" or "name":{attributes}
                assert ev["name"] in fields["event"]
            else:
                assert fields["event"] == ev["name"]
                for k, v in ev["attributes"].items():
                    assert fields[k] == v

    z = {s["id"]: s for s in zipkin_trace(w, tid)}
    assert sorted(z) == sorted(s["spanId"] for s in spans)
    for s in spans:
        zs = z[s["spanId"]]
        assert zs["traceId"] == tid
        assert zs.get("parentId", "") == s["parentSpanId"]
        assert zs["name"] == s["name"].lower()
        assert zs["timestamp"] == us(s["startNs"])
        assert zs["duration"] == max(1, dur(s))
        assert zs["localEndpoint"]["serviceName"] == "orders-js"
        for k, v in s["attributes"].items():
            assert zs["tags"][k] == zipkin_text(v)
        if s["status"]["code"] == 2:
            assert zs["tags"]["error"] == s["status"]["message"]
    kinds = {s["name"]: z[s["spanId"]].get("kind") for s in spans}
    assert kinds["GET /orders/:id"] == "SERVER" and kinds["SELECT orders"] == "CLIENT"


def test_py_zipkin_round_trip(collector):
    """Spans from Debian's py_zipkin (V2 JSON, its own HTTP transport) read back through the
    Zipkin API exactly as sent: ids, parent, kind, timestamps, endpoints, tags, annotations."""
    need_module("py_zipkin")
    from py_zipkin import Encoding
    from py_zipkin.transport import BaseTransportHandler
    from py_zipkin.zipkin import zipkin_span

    w = collector()
    sent = []

    class Http(BaseTransportHandler):
        def get_max_payload_bytes(self):
            return None

        def send(self, payload):
            sent.extend(json.loads(payload))
            r = requests.post(w.zipkin + "/api/v2/spans", data=payload,
                              headers={"Content-Type": "application/json"}, timeout=WAIT)
            assert r.status_code == 202, r.text

    from py_zipkin import Kind
    with zipkin_span(service_name="billing", span_name="charge card", transport_handler=Http(),
                     sample_rate=100.0, encoding=Encoding.V2_JSON, kind=Kind.SERVER,
                     use_128bit_trace_id=True, host="10.0.0.7", port=8080,
                     annotations={"authorized": time.time()},
                     binary_annotations={"card.type": "visa"}):
        with zipkin_span(service_name="billing", span_name="call bank", kind=Kind.CLIENT,
                         binary_annotations={"bank": "acme"}) as child:
            child.add_sa_binary_annotation(port=8443, service_name="bank-api", host="10.1.2.3")
            time.sleep(0.003)
    assert len(sent) == 2
    tid = sent[0]["traceId"]
    got = {s["id"]: s for s in zipkin_trace(w, tid)}
    assert sorted(got) == sorted(s["id"] for s in sent)
    for s in sent:
        g = got[s["id"]]
        for k in ("traceId", "parentId", "kind", "timestamp", "duration", "tags",
                  "annotations", "remoteEndpoint", "shared", "debug"):
            if k in s:
                assert g.get(k) == s[k], (k, g.get(k), s[k])
        assert g["name"] == s["name"].lower()
        assert g["localEndpoint"]["serviceName"] == s["localEndpoint"]["serviceName"]
        for k in ("ipv4", "ipv6", "port"):
            if s["localEndpoint"].get(k):
                assert g["localEndpoint"][k] == s["localEndpoint"][k]
    # and through Jaeger's API: one process, the remote endpoint as peer tags
    t = jaeger_trace(w, tid, 2)
    assert {p["serviceName"] for p in t["processes"].values()} == {"billing"}
    bank = next(s for s in t["spans"] if s["operationName"] == "call bank")
    tags = {g["key"]: g["value"] for g in bank["tags"]}
    assert tags["peer.service"] == "bank-api" and tags["net.peer.ip"] == "10.1.2.3"
    assert tags["span.kind"] == "client"


def otlp_json(tid, spans, service="svc"):
    """An OTLP/JSON ExportTraceServiceRequest of one resource with spans (dicts of Span
    fields; traceId filled in)."""
    for s in spans:
        s.setdefault("traceId", tid)
        s.setdefault("kind", 2)
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]}


def rand_hex(n):
    return "".join(random.choice("0123456789abcdef") for _ in range(n))


def span(name, start_ns, dur_ns, sid=None, parent="", **kw):
    d = {"spanId": sid or rand_hex(16), "name": name, "startTimeUnixNano": str(start_ns),
         "endTimeUnixNano": str(start_ns + dur_ns)}
    if parent:
        d["parentSpanId"] = parent
    d.update(kw)
    return d


def post_json(w, body, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", **headers}
    return requests.post(w.otlp, data=data, headers=h, timeout=WAIT)


def test_otlp_json_gzip_and_partial_success(collector):
    """A gzip'd OTLP/JSON body is taken; a span with an all-zero trace id is refused alone
    (partial_success names it) while the rest are stored."""
    w = collector()
    tid, now = rand_hex(32), time.time_ns()
    good = span("good", now, 5_000_000)
    bad = span("bad", now, 1_000, traceId="0" * 32)
    r = post_json(w, gzip.compress(json.dumps(otlp_json(tid, [good, bad])).encode()),
                  **{"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    ps = r.json()["partialSuccess"]
    assert int(ps["rejectedSpans"]) == 1
    assert "traceId" in ps["errorMessage"] and "zero" in ps["errorMessage"]
    t = jaeger_trace(w, tid, 1)
    assert [s["operationName"] for s in t["spans"]] == ["good"]
    assert t["spans"][0]["duration"] == 5000


@pytest.mark.parametrize("body,ctype,status,words", [
    (b"\x0a\x05\x0a\x03", "application/x-protobuf", 400, "resourceSpans"),
    (b'{"resourceSpans": [', "application/json", 400, "JSON"),
    (b'{"resourceSpans": 5}', "application/json", 400, "resourceSpans"),
    (b"{}", "text/plain", 415, "Content-Type"),
])
def test_otlp_bad_requests(collector, body, ctype, status, words):
    """Malformed requests get 400 (415 for a content type it does not take) with a JSON body
    that says what is wrong, and the collector keeps serving."""
    w = collector()
    r = requests.post(w.otlp, data=body, headers={"Content-Type": ctype}, timeout=WAIT)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert words in r.json()["message"]
    tid = rand_hex(32)
    assert post_json(w, otlp_json(tid, [span("after", time.time_ns(), 1000)])).status_code == 200
    jaeger_trace(w, tid, 1)


def test_otlp_size_limits(collector):
    """A body over collector.max_body_size is refused by the listener (413), and a gzip
    body that inflates past collector.max_decoded_size is refused once inflated (413),
    naming the setting."""
    w = collector()  # the defaults: 16 MiB as sent, 64 MiB inflated
    bomb = gzip.compress(b" " * (65 * 1024 * 1024))  # valid JSON blanks, 65 MiB inflated
    r = post_json(w, bomb, **{"Content-Encoding": "gzip"})
    assert r.status_code == 413, r.text
    assert "collector.max_decoded_size" in r.json()["message"]
    r = post_json(w, b" " * (17 * 1024 * 1024))
    assert r.status_code == 413


def test_kill_9_keeps_acknowledged_spans(collector, spawn):
    """Spans acknowledged (200) before a kill -9 are all there after a restart on the same
    data directory."""
    w = collector()
    tids, now = [], time.time_ns()
    for i in range(200):
        tid = rand_hex(32)
        root = span(f"op-{i}", now + i * 1000, 2_000_000)
        kids = [span("child", now + i * 1000 + 10, 1000, parent=root["spanId"])
                for _ in range(4)]
        assert post_json(w, otlp_json(tid, [root, *kids], service="crash")).status_code == 200
        tids.append(tid)
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait(timeout=WAIT)
    w.expect_exit = -signal.SIGKILL
    w2 = spawn(w.args, w.ports[0], name="col-again")
    wait_port(w.ports[2], w2.proc, w2.log)
    w2.api, w2.zipkin = w.api, w.zipkin
    for tid in tids:
        r = get(f"{w.api}/api/traces/{tid}")
        assert r.status_code == 200, (tid, r.text)
        assert len(r.json()["data"][0]["spans"]) == 5


def test_search_and_lists(collector):
    """Jaeger's and Zipkin's searches and lists over what was sent: services, operations,
    a search by service + minimum duration + tag, newest first, limit."""
    w = collector()
    now = time.time_ns()
    slow, fast = [], []
    for i in range(6):
        tid = rand_hex(32)
        d = 300_000_000 if i % 2 else 1_000_000
        s = span("GET /pay", now - (10 - i) * 1_000_000_000, d,
                 attributes=[{"key": "http.status_code", "value": {"intValue": "500" if i == 5 else "200"}}])
        assert post_json(w, otlp_json(tid, [s], service="pay")).status_code == 200
        (slow if i % 2 else fast).append(tid)
    tid = rand_hex(32)
    assert post_json(w, otlp_json(tid, [span("SELECT", now, 10, kind=3)], service="db")).status_code == 200
    # weft traces its own API's requests (as Jaeger's query service does): service "weft"
    assert get(f"{w.api}/api/services").json()["data"] in (["db", "pay"], ["db", "pay", "weft"])
    assert get(f"{w.zipkin}/api/v2/services").json() in (["db", "pay"], ["db", "pay", "weft"])
    assert get(f"{w.api}/api/services/pay/operations").json()["data"] == ["GET /pay"]
    ops = get(f"{w.api}/api/operations", params={"service": "db"}).json()["data"]
    assert ops == [{"name": "SELECT", "spanKind": "client"}]
    r = get(f"{w.api}/api/traces", params={"service": "pay", "minDuration": "100ms", "limit": 2})
    assert [t["traceID"] for t in r.json()["data"]] == [slow[2], slow[1]]
    r = get(f"{w.api}/api/traces", params={"service": "pay", "tags": '{"http.status_code":"500"}'})
    assert [t["traceID"] for t in r.json()["data"]] == [slow[2]]
    r = get(f"{w.zipkin}/api/v2/traces", params={"serviceName": "pay", "minDuration": 100000})
    assert [t[0]["traceId"] for t in r.json()] == slow[::-1]
    r = get(f"{w.zipkin}/api/v2/traces",
            params={"serviceName": "pay", "annotationQuery": "http.status_code=500"})
    assert [t[0]["traceId"] for t in r.json()] == [slow[2]]
    assert get(f"{w.zipkin}/api/v2/spans", params={"serviceName": "pay"}).json() == ["get /pay"]
    # bad parameters: 400 naming them
    for url, params, word in [(f"{w.api}/api/traces", {"service": "pay", "minDuration": "soon"}, "minDuration"),
                              (f"{w.api}/api/traces", {}, "service"),
                              (f"{w.zipkin}/api/v2/traces", {"limit": "0"}, "limit"),
                              (f"{w.zipkin}/api/v2/spans", {}, "serviceName")]:
        r = get(url, params=params)
        assert r.status_code == 400 and word in r.json()["message"], (url, r.text)
    assert get(f"{w.api}/api/traces/{rand_hex(32)}").status_code == 404
    assert get(f"{w.zipkin}/api/v2/trace/{rand_hex(32)}").status_code == 404
    assert get(f"{w.zipkin}/api/v2/trace/xyz").status_code == 400


def test_dependencies(collector):
    """A client span in one service whose child server span is in another makes one call
    on the edge between them, an error on either side one error; both APIs list it."""
    w = collector()
    now = time.time_ns()
    for i in range(3):
        tid = rand_hex(32)
        c = span("call", now, 2000, kind=3)
        sv = span("serve", now + 10, 1000, parent=c["spanId"], kind=2)
        if i == 0:
            sv["status"] = {"code": 2, "message": "boom"}
        assert post_json(w, otlp_json(tid, [c], service="front")).status_code == 200
        assert post_json(w, otlp_json(tid, [sv], service="back")).status_code == 200
    end = time.time_ns() // 1_000_000 + 60_000
    z = get(f"{w.zipkin}/api/v2/dependencies", params={"endTs": end, "lookback": 3600_000}).json()
    assert z == [{"parent": "front", "child": "back", "callCount": 3, "errorCount": 1}]
    j = get(f"{w.api}/api/dependencies", params={"endTs": end, "lookback": 3600_000}).json()
    assert j["data"] == [{"parent": "front", "child": "back", "callCount": 3, "errorCount": 1}]


def test_gateway_to_services_one_trace(collector, spawn, tmp_path):
    """A request through weft's gateway to examples/hello `front`, which calls hello `back`
    by name (weft_client, through the registry): one trace, with the gateway's span at the
    root, front's server span under it, back's under front's call, seen the same through
    Jaeger's and Zipkin's APIs. The services export with the SDK's OTLP/HTTP exporter to
    weft's OTLP port; the gateway's span goes to the store without HTTP."""
    from conftest import HELLO, free_port
    gw = free_port()
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("""gateway:
  routes:
    - name: shop
      match: { path_prefix: /shop }
      strip_prefix: true
      service: front
""")
    w = collector("weft", "--config", cfg, "--gateway", f"127.0.0.1:{gw}")
    otlp = w.otlp.split("//")[1].split("/")[0]
    for name in ("front", "back"):
        port = free_port()
        spawn([HELLO, "--name", name, "--port", port, "--workers", "1", "--log-level", "warn",
               "--registry", w.api, "--registry-check-interval", "1s", "--otlp", otlp],
              port, name=name)

    def through():
        r = requests.get(f"http://127.0.0.1:{gw}/shop/call/back/hello", timeout=WAIT)
        return r.status_code == 200 and r.text == "hello, world\n"
    wait_for(through, "front and back registered and passing, the call through")
    found = {}

    def exported():  # the services' exporters send in batches, within a few seconds
        r = get(f"{w.api}/api/traces",  # (the health checker's requests are traced too)
                params={"service": "back", "operation": "GET /hello", "limit": 1})
        found["d"] = r.json()["data"]
        return len(found["d"]) == 1 and len(found["d"][0]["spans"]) >= 4
    wait_for(exported, "back's spans, under front's call, exported to weft", timeout=30)
    tid = found["d"][0]["traceID"]
    t = jaeger_trace(w, tid, 4)
    svc = {p: v["serviceName"] for p, v in t["processes"].items()}
    spans = {s["spanID"]: s for s in t["spans"]}

    def parent(s):
        refs = [r["spanID"] for r in s["references"] if r["refType"] == "CHILD_OF"]
        return spans.get(refs[0]) if refs else None

    def kind(s):
        return next(g["value"] for g in s["tags"] if g["key"] == "span.kind")

    # the first request's (the one that went through) spans: one trace
    roots = [s for s in t["spans"] if parent(s) is None]
    assert len(roots) == 1 and svc[roots[0]["processID"]] == "weft"
    assert kind(roots[0]) == "server"
    back = [s for s in t["spans"] if svc[s["processID"]] == "back"]
    assert len(back) == 1 and kind(back[0]) == "server"
    chain = [back[0]]
    while parent(chain[-1]) is not None:
        chain.append(parent(chain[-1]))
    names = [(svc[s["processID"]], kind(s)) for s in reversed(chain)]
    # weft's gateway span, front's server span, front's call (client), back's server span
    assert names[0] == ("weft", "server") and names[-1] == ("back", "server")
    assert ("front", "server") in names and ("front", "client") in names
    assert names.index(("front", "server")) < names.index(("front", "client"))
    # Zipkin's API: the same spans, the same parents
    z = {s["id"]: s for s in zipkin_trace(w, tid)}
    assert sorted(z) == sorted(spans)
    for sid, s in spans.items():
        p = parent(s)
        assert z[sid].get("parentId", "") == (p["spanID"] if p else "")
    # and front -> back is an edge of the dependency graph (weft -> front too)
    end = time.time_ns() // 1_000_000 + 60_000
    deps = get(f"{w.zipkin}/api/v2/dependencies", params={"endTs": end}).json()
    edges = {(d["parent"], d["child"]) for d in deps}
    assert ("front", "back") in edges and ("weft", "front") in edges
