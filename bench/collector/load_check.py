#!/usr/bin/python3
"""bench/collector/load_check.py - checks bench/collector/load.c (collector_load) against a
receiver that decodes every body it sends, without weft:

    bench/collector/load_check.py [--build DIR]   (DIR/bench/collector_load; default build)

The receiver (http.server, HTTP/1.1 keep-alive) takes POST /v1/traces and POST
/api/v2/spans and decodes each body with a real parser: OTLP protobuf with the protobuf
runtime and the messages of tests/integration/otlp_trace.proto (compiled with protoc), OTLP
JSON with json.loads and then the protobuf runtime's JSON parser (ids turned from OTLP's
hex into the base64 that protobuf's JSON mapping wants), Zipkin v2 with json.loads. It
checks what the generator promises: every trace and span id unique in the run, traces of
10 spans with one root and every parent in the trace, each child inside its parent's time,
times within the last 10 s, durations 1 ms..2 s, 8-10 attributes a span, resources naming
one of 20 services with service.version, host.name and telemetry.sdk.*, events on some
spans. It answers every 7th request 429 (Retry-After: 0) and checks that the generator sends
the very same body again on that connection; in a second run of each OTLP format it
reports spans rejected (partial_success) and checks that the generator counts them and
exits 1. It checks the generator's accounting (spans acknowledged, 429s, the ids file: only
acknowledged traces), a timed run, and the query client against answers it makes up
(a right one, then a trace with a span missing, which must count as failed).
Exit status 0 when every check holds.
"""
import argparse
import base64
import collections
import importlib
import json
import math
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROTO = ROOT / "tests" / "integration" / "otlp_trace.proto"
SERVICES = {
    "frontend", "api-gateway", "cart", "checkout", "payment", "shipping", "currency", "email",
    "recommendation", "product-catalog", "ad", "quote", "fraud-detection", "accounting",
    "inventory", "user", "auth", "search", "review", "notification"}
TRACE_SPANS = 10

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        if len(failures) <= 20:
            print("FAIL:", what, file=sys.stderr)
    return cond


def load_pb(tmp):
    subprocess.run(["protoc", f"--proto_path={PROTO.parent}", f"--python_out={tmp}", str(PROTO)], check=True)
    sys.path.insert(0, str(tmp))
    return importlib.import_module("otlp_trace_pb2")


def anyvalue(v):
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


def from_otlp(req):
    """ExportTraceServiceRequest -> common spans"""
    out = []
    for rs in req.resource_spans:
        res = {kv.key: anyvalue(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            check(ss.scope.name != "", "a scope without a name")
            for s in ss.spans:
                out.append({
                    "trace": s.trace_id.hex(), "span": s.span_id.hex(),
                    "parent": s.parent_span_id.hex(), "name": s.name, "kind": s.kind,
                    "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                    "service": res.get("service.name"), "resource": res,
                    "attrs": {kv.key: anyvalue(kv.value) for kv in s.attributes},
                    "events": [(e.time_unix_nano, e.name) for e in s.events],
                    "status": s.status.code,
                })
    return out


def hex_to_b64(o):
    if isinstance(o, dict):
        r = {}
        for k, v in o.items():
            if k in ("traceId", "spanId", "parentSpanId"):
                check(isinstance(v, str) and re.fullmatch(r"[0-9a-f]+", v) is not None, f"{k} not lowercase hex: {v!r}")
                r[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                r[k] = hex_to_b64(v)
        return r
    if isinstance(o, list):
        return [hex_to_b64(x) for x in o]
    return o


def from_zipkin(body):
    out = []
    check(isinstance(body, list), "a Zipkin body that is not a list")
    for s in body:
        for k in ("traceId", "id", "name", "timestamp", "duration", "localEndpoint", "tags"):
            check(k in s, f"a Zipkin span without {k}")
        check(isinstance(s["timestamp"], int) and isinstance(s["duration"], int), "Zipkin times not integers")
        check(all(isinstance(v, str) for v in s["tags"].values()), "a Zipkin tag that is not a string")
        if s.get("kind") == "CLIENT":
            check("remoteEndpoint" in s and s["remoteEndpoint"].get("serviceName"), "a CLIENT span without remoteEndpoint")
        out.append({
            "trace": s["traceId"], "span": s["id"], "parent": s.get("parentId", ""), "name": s["name"],
            "kind": {"SERVER": 2, "CLIENT": 3}.get(s.get("kind"), 1),
            "start": s["timestamp"] * 1000, "end": (s["timestamp"] + s["duration"]) * 1000,
            "service": s["localEndpoint"].get("serviceName"), "resource": None,
            "attrs": s["tags"], "events": [(a["timestamp"] * 1000, a["value"]) for a in s.get("annotations", [])],
            "status": 2 if "error" in s["tags"] else 0,
        })
    return out


class Receiver:
    def __init__(self, pb):
        self.pb = pb
        self.lock = threading.Lock()
        self.reset()

    def reset(self, reject_every=0):
        self.requests = 0
        self.r429 = 0
        self.accepted_spans = 0
        self.rejected = 0
        self.reject_every = reject_every
        self.trace_ids = set()
        self.span_ids = set()
        self.accepted_traces = set()
        self.stats = collections.Counter()
        self.durations = []
        self.nattrs = []
        self.resend_ok = 0
        self.stored = {}  # trace id -> spans (for the query answers)
        self.query_spans = TRACE_SPANS

    def decode(self, path, ctype, body):
        if path == "/v1/traces" and ctype == "application/x-protobuf":
            req = self.pb.ExportTraceServiceRequest()
            req.ParseFromString(body)
            check(req.SerializeToString() == body, "a protobuf body that does not re-encode to itself")
            return from_otlp(req), "otlp-proto"
        if path == "/v1/traces" and ctype == "application/json":
            from google.protobuf import json_format
            d = json.loads(body)
            req = self.pb.ExportTraceServiceRequest()
            json_format.ParseDict(hex_to_b64(d), req)
            return from_otlp(req), "otlp-json"
        if path == "/api/v2/spans" and ctype == "application/json":
            return from_zipkin(json.loads(body)), "zipkin"
        raise ValueError(f"unexpected {path} {ctype}")

    def check_batch(self, spans, fmt):
        now = time.time_ns()
        traces = collections.defaultdict(list)
        for s in spans:
            traces[s["trace"]].append(s)
            check(len(s["trace"]) == 32 and s["trace"] != "0" * 32, f"bad trace id {s['trace']}")
            check(len(s["span"]) == 16 and s["span"] != "0" * 16, f"bad span id {s['span']}")
            check(s["span"] not in self.span_ids, f"span id {s['span']} seen twice")
            self.span_ids.add(s["span"])
            check(s["service"] in SERVICES, f"unknown service {s['service']}")
            if s["resource"] is not None:
                for k in ("service.version", "host.name", "telemetry.sdk.name", "telemetry.sdk.language",
                          "telemetry.sdk.version"):
                    check(k in s["resource"], f"a resource without {k}")
            d = s["end"] - s["start"]
            check(1_000_000 <= d <= 2_000_000_000, f"duration {d} ns out of 1 ms..2 s")
            check(now - 10_000_000_000 <= s["start"] and s["end"] <= now + 500_000_000,
                  f"times not near now: {s['start']}..{s['end']} (now {now})")
            check(8 <= len(s["attrs"]) <= 12, f"{len(s['attrs'])} attributes")
            check(s["name"] != "", "a span without a name")
            self.durations.append(d)
            self.nattrs.append(len(s["attrs"]))
            self.stats["spans"] += 1
            self.stats["events"] += len(s["events"]) > 0
            self.stats["errors"] += s["status"] == 2
            self.stats["kind%d" % s["kind"]] += 1
            for t, _ in s["events"]:
                check(s["start"] <= t <= s["end"], "an event outside its span")
            if fmt != "zipkin" and s["kind"] == 2:
                for k in ("http.request.method", "http.route", "url.path", "http.response.status_code",
                          "server.address", "server.port", "network.peer.address", "user_agent.original"):
                    check(k in s["attrs"], f"a SERVER span without {k}")
                check(isinstance(s["attrs"]["http.response.status_code"], int), "status code not an int")
        for tid, ts in traces.items():
            check(tid not in self.trace_ids, f"trace {tid} in two requests")
            self.trace_ids.add(tid)
            check(len(ts) == TRACE_SPANS, f"trace {tid} has {len(ts)} spans")
            by_id = {s["span"]: s for s in ts}
            roots = [s for s in ts if not s["parent"]]
            check(len(roots) == 1, f"trace {tid} has {len(roots)} roots")
            for s in ts:
                if s["parent"]:
                    p = by_id.get(s["parent"])
                    if check(p is not None, f"span {s['span']}: parent {s['parent']} not in its trace"):
                        check(p["start"] <= s["start"] and s["end"] <= p["end"], f"{fmt}: a child outside its parent")
        return list(traces)

    def summary(self):
        d = sorted(self.durations)
        n = len(d)
        return (f"{self.stats['spans']} spans, {len(self.trace_ids)} traces; attributes a span "
                f"{statistics.mean(self.nattrs):.1f}; with an event {100 * self.stats['events'] / n:.1f}%; "
                f"error status {100 * self.stats['errors'] / n:.1f}%; durations p10/p50/p90/max "
                f"{d[n // 10] / 1e6:.1f}/{d[n // 2] / 1e6:.1f}/{d[9 * n // 10] / 1e6:.1f}/{d[-1] / 1e6:.0f} ms, "
                f">= 100 ms {100 * sum(x >= 100_000_000 for x in d) / n:.0f}%; kinds "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.stats.items()) if k.startswith("kind")))


def make_handler(rcv):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        refused = None

        def log_message(self, *a):
            pass

        def answer(self, code, body=b"", ctype="application/json", extra=()):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers["Content-Length"])
            body = self.rfile.read(n)
            ctype = self.headers.get("Content-Type")
            with rcv.lock:
                rcv.requests += 1
                k = rcv.requests
            if self.refused is not None:
                check(body == self.refused, "the body sent after a 429 is not the refused one")
                with rcv.lock:
                    rcv.resend_ok += body == self.refused
                self.refused = None
            elif k % 7 == 0:
                self.refused = body
                with rcv.lock:
                    rcv.r429 += 1
                return self.answer(429, b'{"error":"busy"}', extra=(("Retry-After", "0"),))
            try:
                spans, fmt = rcv.decode(self.path, ctype, body)
            except Exception as e:  # noqa: BLE001 - any decoding failure is the finding
                check(False, f"cannot decode a body ({self.path}, {ctype}): {e!r}")
                return self.answer(400, b'{"error":"bad body"}')
            with rcv.lock:
                tids = rcv.check_batch(spans, fmt)
                rej = 1 if rcv.reject_every and k % rcv.reject_every == 0 else 0
                rcv.rejected += rej
                rcv.accepted_spans += len(spans) - rej
                rcv.accepted_traces.update(tids)
                for s in spans:
                    rcv.stored.setdefault(s["trace"], []).append(s)
            if fmt == "zipkin":
                return self.answer(202)
            if fmt == "otlp-proto":
                ps = b"\x08\x01" + b"\x12\x04busy" if rej else b""
                return self.answer(200, (b"\x0a" + bytes([len(ps)]) + ps) if rej else b"", "application/x-protobuf")
            body = b'{"partialSuccess":{"rejectedSpans":"1","errorMessage":"busy"}}' if rej else b"{}"
            return self.answer(200, body)

        def do_GET(self):
            m = re.fullmatch(r"/api/traces/([0-9a-f]{32})", self.path)
            if m:
                spans = rcv.stored.get(m.group(1), [])
                if not spans:
                    return self.answer(404, b'{"data":null}')
                spans = spans[: rcv.query_spans]
                tid = m.group(1).lstrip("0")
                body = json.dumps({"data": [{"traceID": tid, "spans": [
                    {"traceID": tid, "spanID": s["span"], "operationName": s["name"]} for s in spans],
                    "processes": {}}]}).encode()
                return self.answer(200, body)
            if self.path.startswith("/api/traces?"):
                # chunked, to check the client reads such answers too
                traces = list(rcv.stored)[:3]
                body = json.dumps({"data": [{"traceID": t, "spans": [], "processes": {}} for t in traces]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(body), 50):
                    c = body[i:i + 50]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                self.wfile.write(b"0\r\n\r\n")
                return None
            return self.answer(404)

    return H


def result(out):
    line = [l for l in out.splitlines() if l.startswith("result ")]
    check(len(line) == 1, f"no result line in {out!r}")
    return dict(kv.split("=", 1) for kv in line[0].split()[1:]) if line else {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    args = ap.parse_args()
    gen = pathlib.Path(args.build) / "bench" / "collector_load"
    if not gen.exists():
        sys.exit(f"load_check: missing {gen} (cmake --build {args.build} --target collector_load)")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="weft-loadcheck."))
    try:
        check_all(gen, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"load_check: {len(failures)} checks failed", file=sys.stderr)
        sys.exit(1)
    print("load_check: every check held")


def check_all(gen, tmp):
    pb = load_pb(tmp)
    rcv = Receiver(pb)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(rcv))
    srv.daemon_threads = True
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    def run(*a, expect=0):
        p = subprocess.run([str(gen), *a, "--port", str(port)], capture_output=True, text=True, timeout=120)
        check(p.returncode == expect, f"collector_load {' '.join(a)}: exit {p.returncode}, not {expect}: {p.stderr[-500:]}")
        return result(p.stdout), p

    for fmt in ("otlp-proto", "otlp-json", "zipkin"):
        rcv.reset()
        ids, sent = tmp / f"ids-{fmt}", tmp / f"sent-{fmt}"
        r, _ = run("ingest", "--format", fmt, "--spans", "20000", "--conns", "6", "--templates", "16",
                   "--ids", str(ids), "--ids-max", "500", "--sent", str(sent), "--retry-max-ms", "0")
        print(f"{fmt}: {rcv.summary()}")
        check(int(r.get("spans", -1)) == 20000 == rcv.accepted_spans,
              f"{fmt}: generator says {r.get('spans')} spans acknowledged, receiver took {rcv.accepted_spans}")
        check(int(r.get("r429", -1)) == rcv.r429 > 0, f"{fmt}: 429s: generator {r.get('r429')}, receiver {rcv.r429}")
        check(rcv.resend_ok == rcv.r429, f"{fmt}: {rcv.resend_ok} of {rcv.r429} refused bodies sent again unchanged")
        got = ids.read_text().split()
        check(len(got) == 500 and len(set(got)) == 500, f"{fmt}: ids file holds {len(got)} ids ({len(set(got))} distinct)")
        check(set(got) <= rcv.accepted_traces, f"{fmt}: the ids file names traces that were not acknowledged")
        lines = sent.read_text().split("\n")[:-1]
        check(sum(int(l.split()[2]) for l in lines) == 20000, f"{fmt}: the sent file does not add up to 20000 spans")

        if fmt == "otlp-proto":  # the query client against this receiver's answers
            r, _ = run("query", "--kind", "trace", "--ids", str(ids), "--count", "300", "--warmup", "5")
            check(r.get("queries") == "300" and r.get("failed") == "0" and r.get("spans_mean") == "10.00",
                  f"query trace: {r}")
            r, _ = run("query", "--kind", "search", "--count", "50", "--warmup", "0", "--limit", "20")
            check(r.get("queries") == "50" and r.get("failed") == "0" and r.get("traces_mean") == "3.00",
                  f"query search (chunked answers): {r}")
            rcv.query_spans = TRACE_SPANS - 1  # a span missing: every query must fail
            r, _ = run("query", "--kind", "trace", "--ids", str(ids), "--count", "20", "--warmup", "0", expect=1)
            check(r.get("failed") == "20", f"query trace with a span missing: {r}")
            rcv.query_spans = TRACE_SPANS

        if fmt != "zipkin":  # partial success: counted, and the run fails
            rcv.reset(reject_every=5)
            r, _ = run("ingest", "--format", fmt, "--spans", "3000", "--conns", "3", "--templates", "4", expect=1)
            check(int(r.get("rejected", -1)) == rcv.rejected > 0, f"{fmt}: rejected: generator {r.get('rejected')}, receiver {rcv.rejected}")
            check(int(r.get("spans", -1)) == rcv.accepted_spans, f"{fmt}: spans {r.get('spans')} vs {rcv.accepted_spans}")

    # a timed run: a window after a warm-up; what it counts was acknowledged
    rcv.reset()
    t0 = time.monotonic()
    r, _ = run("ingest", "--format", "otlp-proto", "--warmup", "0.5", "--duration", "1.5", "--conns", "2",
               "--templates", "8", "--server-pid", str(os.getpid()))
    took = time.monotonic() - t0
    check(abs(float(r.get("seconds", 0)) - 1.5) < 0.05, f"timed run: window {r.get('seconds')} s, not 1.5")
    check(0 < int(r.get("spans", 0)) <= int(r.get("all_spans", 0)) == rcv.accepted_spans,
          f"timed run: {r.get('spans')} in the window, {r.get('all_spans')} in all, receiver {rcv.accepted_spans}")
    check(float(r.get("server_cpu_s", -1)) >= 0, "timed run: no server CPU from --server-pid")
    check(took < 10, f"timed run took {took:.1f} s")
    print(f"timed run: {r.get('spans_per_s')} spans/s into this receiver (Python), p99 {r.get('p99_ms')} ms")

    srv.shutdown()


if __name__ == "__main__":
    main()
