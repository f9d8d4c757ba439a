"""The OTLP/HTTP span exporter through the real hello binary (hello --otlp HOST:PORT).

There is no real OTLP receiver packaged in Debian here (weft's own collector is a later
issue), so the receiver is a fake: a Python http.server on a free loopback port, in a thread,
that records every POST and answers 200. The test checks the bodies against the documented
OTLP/JSON encoding (opentelemetry-proto's JSON mapping: hex ids, decimal-string times and
int64, integer enums), then that hello still exits 0 promptly on SIGTERM after the receiver
went away (the spans it could not send are dropped; nothing hangs), and that it retries
when the receiver answers 503 or 429.
"""
import gzip
import http.server
import json
import pathlib
import threading
import time

import pytest

from conftest import HELLO, free_port, get, need_module, need_tool
from test_service import promtool_check

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Receiver:
    """A fake OTLP/HTTP receiver: records (path, content type, parsed JSON body) per POST,
    and the request headers of each in heads. While `fail` holds (status, Retry-After or
    None) pairs, it answers the next POST with the first of them instead of 200 and records
    that body in `rejected`."""

    def __init__(self):
        self.posts = []
        self.heads = []
        self.fail = []
        self.rejected = []
        self.protobuf = []  # raw http/protobuf bodies (not in posts)
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with outer.lock:
                    answer = outer.fail.pop(0) if outer.fail else None
                    if answer:
                        outer.rejected.append(body)
                    elif self.headers.get("Content-Type") == "application/x-protobuf":
                        outer.protobuf.append(body)
                        outer.heads.append(dict(self.headers))
                    else:
                        outer.posts.append((self.path, self.headers.get("Content-Type"),
                                            json.loads(body)))
                        outer.heads.append(dict(self.headers))
                self.send_response(answer[0] if answer else 200)
                if answer and answer[1] is not None:
                    self.send_header("Retry-After", answer[1])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.stopped = False

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)

    def wait_trace(self, trace_id, timeout):
        """(resource attributes, span, scope) of the spans of trace_id, once at least one
        has arrived or `timeout` seconds have passed (then an empty list)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [x for x in self.spans() if x[1]["traceId"] == trace_id]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def spans(self):
        """(resource attributes, span) for every span received so far."""
        out = []
        with self.lock:
            posts = list(self.posts)
        for _, _, body in posts:
            for rs in body["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        out.append((rs["resource"]["attributes"], s, ss["scope"]))
        return out


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def attr(attrs, key):
    vals = [a["value"] for a in attrs if a["key"] == key]
    assert len(vals) == 1, f"{key}: {attrs}"
    return vals[0]


def test_hello_sends_server_spans(spawn, receiver):
    port = free_port()
    p = spawn([HELLO, "--name", "otlp-test", "--port", port, "--workers", "2",
               "--log-level", "warn", "--otlp", f"127.0.0.1:{receiver.port}"], port,
              name="hello-otlp")
    r = get(p.url + "/hello/x", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert r.status_code == 200

    # the flush interval is 1 s: the span arrives well within 5 s
    found = receiver.wait_trace(TRACE_ID, 5)
    assert len(found) == 1, receiver.spans()
    rattrs, span, scope = found[0]
    path, ctype, _ = receiver.posts[0]
    assert path == "/v1/traces" and ctype == "application/json"
    assert attr(rattrs, "service.name") == {"stringValue": "otlp-test"}
    assert attr(rattrs, "telemetry.sdk.name") == {"stringValue": "weft"}
    version = get(p.url + "/health").json()["version"]
    assert attr(rattrs, "service.version") == {"stringValue": version}
    assert scope["name"] == "weft"
    assert span["name"] == "GET /hello/:name"
    assert span["parentSpanId"] == PARENT_ID
    assert len(span["spanId"]) == 16 and span["spanId"] == span["spanId"].lower()
    assert span["spanId"] != PARENT_ID
    assert span["kind"] == 2  # SPAN_KIND_SERVER
    assert span["flags"] & 0xff == 1 and span["flags"] & 0x300 == 0x300  # sampled, remote parent
    start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
    assert isinstance(span["startTimeUnixNano"], str) and 0 < start <= end
    assert abs(start / 1e9 - time.time()) < 60
    attrs = span["attributes"]
    assert attr(attrs, "http.request.method") == {"stringValue": "GET"}
    assert attr(attrs, "http.route") == {"stringValue": "/hello/:name"}
    assert attr(attrs, "http.response.status_code") == {"intValue": "200"}
    assert "status" not in span  # 200: unset

    # /health and /metrics are traced too; a root span has no parentSpanId
    get(p.url + "/health")
    deadline = time.monotonic() + 5
    roots = []
    while time.monotonic() < deadline and not roots:
        roots = [s for _, s, _ in receiver.spans() if s["name"] == "GET /health"]
        time.sleep(0.05)
    assert roots and "parentSpanId" not in roots[0]

    # the exporter's counters are on /metrics, and they agree with what the receiver got
    # (each scrape is a span too, sent later: compare with what had arrived at that moment)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        posts = len(receiver.posts)
        spans = len(receiver.spans())
        text = get(p.url + "/metrics").text
        exported = metric(text, "weft_otlp_spans_exported_total")
        if exported == spans and len(receiver.posts) == posts:
            break
        time.sleep(0.05)
    assert exported == spans and spans >= 2, text
    assert metric(text, 'weft_otlp_batches_total{result="sent"}') == posts
    assert metric(text, 'weft_otlp_batches_total{result="failed"}') == 0
    assert metric(text, 'weft_otlp_spans_dropped_total{reason="queue_full"}') == 0
    assert metric(text, 'weft_otlp_spans_dropped_total{reason="failed"}') == 0
    promtool_check(text)


def metric(text, series):
    """The value of one series (name with its labels, as written) in an exposition."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} missing from:\n{text}")


def test_hello_exits_promptly_when_the_receiver_is_gone(spawn, receiver):
    port = free_port()
    p = spawn([HELLO, "--name", "otlp-test", "--port", port, "--workers", "2",
               "--log-level", "warn", "--otlp", f"127.0.0.1:{receiver.port}"], port,
              name="hello-otlp")
    receiver.stop()
    for i in range(5):
        r = get(p.url + f"/hello/{i}",
                headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert r.status_code == 200
    t0 = time.monotonic()
    assert p.stop(timeout=10) == 0
    took = time.monotonic() - t0
    assert took < 3, f"hello took {took:.2f}s to exit"
    assert receiver.spans() == []
    # one warning for the run of failures, not one per batch or span
    log = p.log.read_text()
    assert log.count("export failing") == 1, log


def test_hello_retries_when_the_receiver_asks(spawn, receiver):
    """A receiver that answers 503 with Retry-After, then 429, then takes the batch: the
    spans arrive once, after the wait it asked for, and /metrics counts the retries."""
    receiver.fail = [(503, "1"), (429, None)]
    port = free_port()
    p = spawn([HELLO, "--name", "otlp-retry", "--port", port, "--workers", "1",
               "--log-level", "info", "--otlp", f"127.0.0.1:{receiver.port}"], port,
              name="hello-otlp-retry")
    t0 = time.monotonic()
    r = get(p.url + "/hello/r", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert r.status_code == 200
    found = [s for _, s, _ in receiver.wait_trace(TRACE_ID, 10)]
    took = time.monotonic() - t0
    assert len(found) == 1, receiver.spans()
    # the flush (0.5-1 s after the span), Retry-After (1 s), then the second backoff
    # (1.5 s +-20%)
    assert took >= 2.5, f"the batch arrived after {took:.2f}s"
    assert len(receiver.rejected) == 2
    assert all(b == receiver.rejected[0] for b in receiver.rejected)
    text = get(p.url + "/metrics").text
    assert metric(text, 'weft_otlp_batches_total{result="retried"}') == 2
    assert metric(text, 'weft_otlp_batches_total{result="failed"}') == 0
    assert metric(text, 'weft_otlp_spans_dropped_total{reason="failed"}') == 0
    promtool_check(text)
    assert p.stop(timeout=10) == 0
    log = p.log.read_text()
    assert log.count("export failing") == 1 and "action=retry" in log, log
    assert log.count("export recovered") == 1, log


def test_hello_compresses_with_gzip_when_asked(spawn, receiver):
    """OTEL_EXPORTER_OTLP_COMPRESSION=gzip, as with OpenTelemetry's SDKs: bodies go with
    Content-Encoding: gzip, and what they inflate to is the usual OTLP/JSON."""
    port = free_port()
    p = spawn([HELLO, "--name", "hello-gzip", "--port", port, "--workers", "1",
               "--log-level", "warn"], port, name="hello-gzip",
              env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                   "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_BSP_SCHEDULE_DELAY": "50"})
    r = get(p.url + "/hello/gz", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert r.status_code == 200
    found = [s for _, s, _ in receiver.wait_trace(TRACE_ID, 5)]
    assert len(found) == 1 and found[0]["parentSpanId"] == PARENT_ID, receiver.spans()
    assert receiver.heads[0]["Content-Encoding"] == "gzip"
    assert receiver.heads[0]["Content-Type"] == "application/json"


def otlp_pb(tmp_path):
    """The module protoc makes of otlp_trace.proto (the OTLP trace messages)."""
    import importlib
    import subprocess
    import sys
    need_module("google.protobuf")  # the runtime the generated module imports
    here = pathlib.Path(__file__).resolve().parent
    subprocess.run([need_tool("protoc"), f"--proto_path={here}", f"--python_out={tmp_path}",
                    str(here / "otlp_trace.proto")], check=True)
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module("otlp_trace_pb2")
    finally:
        sys.path.remove(str(tmp_path))


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_hello_sends_protobuf_when_asked(spawn, receiver, tmp_path, compression):
    """OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf: bodies in protobuf's wire format
    (Content-Type: application/x-protobuf) that the protobuf runtime reads as an
    ExportTraceServiceRequest holding the same span the JSON encoding would; also
    gzip-compressed (the receiver inflates first, as collectors do)."""
    pb = otlp_pb(tmp_path)
    port = free_port()
    p = spawn([HELLO, "--name", "hello-pb", "--port", port, "--workers", "1",
               "--log-level", "warn"], port, name="hello-pb",
              env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                   "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                   "OTEL_EXPORTER_OTLP_COMPRESSION": compression,
                   "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging",
                   "OTEL_BSP_SCHEDULE_DELAY": "50"})
    r = get(p.url + "/hello/pb?q=1", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert r.status_code == 200
    deadline = time.monotonic() + 5
    found = []
    while time.monotonic() < deadline and not found:
        with receiver.lock:
            bodies = list(receiver.protobuf)
        for body in bodies:
            req = pb.ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    found += [(rs.resource, ss.scope, s) for s in ss.spans
                              if s.trace_id.hex() == TRACE_ID]
        time.sleep(0.02)
    assert len(found) == 1 and not receiver.posts, (found, receiver.posts)
    res, scope, span = found[0]
    assert receiver.heads[0]["Content-Type"] == "application/x-protobuf"
    assert receiver.heads[0].get("Content-Encoding") == ("gzip" if compression == "gzip" else None)
    rattrs = {kv.key: kv.value.string_value for kv in res.attributes}
    assert rattrs["service.name"] == "hello-pb" and rattrs["telemetry.sdk.language"] == "c"
    assert rattrs["deployment.environment"] == "staging"
    assert scope.name == "weft" and scope.version
    assert span.parent_span_id.hex() == PARENT_ID and len(span.span_id) == 8
    assert span.name == "GET /hello/:name" and span.kind == 2  # SPAN_KIND_SERVER
    assert span.flags == 0x301  # sampled; the parent is known to be remote
    assert 0 < span.start_time_unix_nano <= span.end_time_unix_nano
    assert abs(span.start_time_unix_nano / 1e9 - time.time()) < 60
    attrs = {kv.key: kv.value for kv in span.attributes}
    assert attrs["http.request.method"].string_value == "GET"
    assert attrs["http.route"].string_value == "/hello/:name"
    assert attrs["http.response.status_code"].WhichOneof("value") == "int_value"
    assert attrs["http.response.status_code"].int_value == 200
    assert not span.HasField("status")  # 200: unset


def test_bad_otlp_address_is_a_config_error(tmp_path):
    from conftest import run_cli
    r = run_cli(HELLO, "--otlp", "bad..name:4318", "--port", "0")
    assert r.returncode == 2
    assert "--otlp" in r.stderr and "host" in r.stderr and "\n" == r.stderr[-1]
    r = run_cli(HELLO, "--otlp", "127.0.0.1:0", "--port", "0")
    assert r.returncode == 2 and "port" in r.stderr


def test_hello_takes_the_opentelemetry_environment(spawn, receiver):
    """OTEL_* variables set an exporter up without code or flags, as OpenTelemetry SDKs do.
    The endpoint names its host (localhost, from /etc/hosts): the exporter looks it up."""
    port = free_port()
    p = spawn([HELLO, "--name", "hello-env", "--port", port, "--workers", "1",
               "--log-level", "warn"], port, name="hello-env",
              env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://localhost:{receiver.port}",
                   "OTEL_SERVICE_NAME": "from-env", "OTEL_BSP_SCHEDULE_DELAY": "100",
                   "OTEL_RESOURCE_ATTRIBUTES":
                       "deployment.environment=staging, team=a%2Cb ,service.name=not-this",
                   "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20t0k,x-team=core",
                   "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    r = get(p.url + "/hello/env", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert r.status_code == 200
    found = receiver.wait_trace(TRACE_ID, 5)
    assert len(found) == 1, receiver.spans()
    rattrs, span, _ = found[0]
    assert attr(rattrs, "service.name") == {"stringValue": "from-env"}
    assert attr(rattrs, "deployment.environment") == {"stringValue": "staging"}
    assert attr(rattrs, "team") == {"stringValue": "a,b"}
    assert attr(rattrs, "telemetry.sdk.language") == {"stringValue": "c"}
    assert receiver.heads[0]["Authorization"] == "Bearer t0k"
    assert receiver.heads[0]["x-team"] == "core"
    assert span["parentSpanId"] == PARENT_ID
    assert receiver.posts[0][0] == "/v1/traces"


def test_opentelemetry_propagators_from_the_environment(spawn, receiver):
    """OTEL_PROPAGATORS=b3: a traceparent from the client is not trusted, a b3 header is."""
    port = free_port()
    p = spawn([HELLO, "--name", "hello-b3", "--port", port, "--workers", "1",
               "--log-level", "warn"], port, name="hello-b3",
              env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                   "OTEL_PROPAGATORS": "b3", "OTEL_BSP_SCHEDULE_DELAY": "50"})
    b3_trace = "80f198ee56343ba864fe8b2a57d3eff7"
    assert get(p.url + "/hello/w3c",
               headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}).status_code == 200
    assert get(p.url + "/hello/b3",
               headers={"b3": f"{b3_trace}-e457b5a2e4d86bd1-1"}).status_code == 200
    deadline = time.monotonic() + 5
    got = []
    while time.monotonic() < deadline and len(got) < 2:
        got = [s for _, s, _ in receiver.spans() if s["name"] == "GET /hello/:name"]
        time.sleep(0.02)
    assert len(got) == 2, got
    assert all(s["traceId"] != TRACE_ID for s in got)  # the traceparent was ignored
    w3c = [s for s in got if s["traceId"] != b3_trace]
    b3 = [s for s in got if s["traceId"] == b3_trace]
    assert len(w3c) == 1 and "parentSpanId" not in w3c[0]  # a new root
    assert len(b3) == 1 and b3[0]["parentSpanId"] == "e457b5a2e4d86bd1"


@pytest.mark.parametrize("propagators,winner", [("tracecontext,b3", "b3"),
                                                 ("b3,tracecontext", "w3c")])
def test_opentelemetry_propagators_order(spawn, receiver, propagators, winner):
    """Both a traceparent and a b3 header: the format listed last wins, as in OpenTelemetry."""
    port = free_port()
    p = spawn([HELLO, "--name", "hello-order", "--port", port, "--workers", "1",
               "--log-level", "warn"], port, name="hello-order",
              env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                   "OTEL_PROPAGATORS": propagators, "OTEL_BSP_SCHEDULE_DELAY": "50"})
    b3_trace, b3_span = "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1"
    assert get(p.url + "/hello/both",
               headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
                        "b3": f"{b3_trace}-{b3_span}-1"}).status_code == 200
    deadline = time.monotonic() + 5
    got = []
    while time.monotonic() < deadline and not got:
        got = [s for _, s, _ in receiver.spans() if s["name"] == "GET /hello/:name"]
        time.sleep(0.02)
    assert len(got) == 1, got
    want = (b3_trace, b3_span) if winner == "b3" else (TRACE_ID, PARENT_ID)
    assert (got[0]["traceId"], got[0]["parentSpanId"]) == want


def test_opentelemetry_sampler_from_the_environment(spawn, receiver):
    port = free_port()
    p = spawn([HELLO, "--name", "hello-off", "--port", port, "--workers", "1",
               "--log-level", "warn"], port, name="hello-off",
              env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":
                   f"http://127.0.0.1:{receiver.port}/v1/traces",
                   "OTEL_TRACES_SAMPLER": "always_off", "OTEL_BSP_SCHEDULE_DELAY": "50"})
    for i in range(5):  # a sampled parent does not matter to always_off (not parent-based)
        h = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"} if i % 2 else {}
        assert get(p.url + f"/hello/{i}", headers=h).status_code == 200
    text = get(p.url + "/metrics").text
    assert metric(text, "weft_otlp_spans_exported_total") == 0  # the exporter exists
    # a graceful stop sends whatever the exporter holds before the process exits: once it
    # has exited, nothing more can come (no waiting for a quiet receiver)
    assert p.stop() == 0
    assert receiver.spans() == [] and not receiver.protobuf and not receiver.rejected
    assert "shutdown timed out" not in p.log.read_text()


@pytest.mark.parametrize("var,value,says", [
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318", "https"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector-:4318", "host name"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:99999/v1/traces", "port"),
    ("OTEL_TRACES_EXPORTER", "jaeger", "otlp only"),
    ("OTEL_RESOURCE_ATTRIBUTES", "team", "key=value"),
    ("OTEL_TRACES_SAMPLER", "sometimes", "always_on"),
    ("OTEL_PROPAGATORS", "jaeger", "tracecontext"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "content-type=text/plain", "exporter's"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0", "whole number"),
])
def test_bad_opentelemetry_environment_is_refused(var, value, says):
    from conftest import run_cli, sanitizer_env
    env = {var: value}
    if var.startswith(("OTEL_BSP", "OTEL_RESOURCE", "OTEL_EXPORTER_OTLP_HEADERS")):
        # read only when exporting
        env["OTEL_TRACES_EXPORTER"] = "otlp"
    r = run_cli(HELLO, "--port", "0", env=sanitizer_env(env))
    assert r.returncode == 2, r.stderr
    line = [x for x in r.stderr.splitlines() if "OpenTelemetry" in x]
    assert len(line) == 1 and var in line[0] and says in line[0], r.stderr
