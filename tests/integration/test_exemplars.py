"""Exemplars on the gateway's latency histogram (issue 20, item 7).

`weft serve` with a gateway route to faulty.py and spans exported (OTEL_* environment, to the
fake OTLP receiver of test_otlp): a sampled request's span becomes the exemplar of the
bucket its duration fell in, which /metrics shows when asked for OpenMetrics (as Prometheus
asks), and a real Prometheus with exemplar storage takes them in and answers them."""
import re
import time

import requests

from conftest import HELLO, WAIT, free_port, get, need_tool, wait_for
from test_gateway_observe import CLIENT_SPAN, attrs, start_weft
from test_otlp import Receiver  # noqa: F401 (the fixture below uses it)
from test_otlp import receiver  # noqa: F401 (a pytest fixture)

OM_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
             "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
OM_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
BUCKET = "weft_gateway_request_duration_seconds_bucket"
EXEMPLAR = re.compile(r'^(\S+)\{([^}]*)\} (\d+) # \{trace_id="([0-9a-f]{32})",'
                      r'span_id="([0-9a-f]{16})"\} (\S+) (\d+\.\d{3})$')


def config(port):
    return f"""gateway:
  routes:
    - name: r
      match: {{ path_prefix: /r }}
      upstream: {{ targets: [127.0.0.1:{port}] }}
"""


def exemplars(text):
    """{trace id: (le, span id, value, timestamp)} of the gateway histogram's exemplars."""
    out = {}
    for line in text.splitlines():
        m = EXEMPLAR.match(line)
        if m and m.group(1) == BUCKET and 'route="r"' in m.group(2):
            le = re.search(r'le="([^"]+)"', m.group(2)).group(1)
            out[m.group(4)] = (le, m.group(5), float(m.group(6)), float(m.group(7)))
    return out


def test_exemplars_in_openmetrics(spawn, tmp_path, faulty, receiver):
    """Sampled requests (the client's sampled traceparent, or none: a root span) leave their
    span as their bucket's exemplar; the exemplar's value is the observation, in the bucket,
    its time now; a client's unsampled request changes nothing. OpenMetrics only when asked:
    the Prometheus text (curl's, a browser's) stays as it was, without exemplars."""
    up = faulty("up")
    w = start_weft(spawn, tmp_path, config(up.port),
                   env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                        "OTEL_BSP_SCHEDULE_DELAY": "50"})
    t0 = time.time()
    trace = "5" * 32
    r = get(w.gw + "/r/a", headers={"traceparent": f"00-{trace}-{CLIENT_SPAN}-01"})
    assert r.status_code == 200
    [(_, span, _)] = receiver.wait_trace(trace, WAIT)
    r = requests.get(w.api + "/metrics", headers={"Accept": OM_ACCEPT}, timeout=WAIT)
    assert r.status_code == 200 and r.headers["Content-Type"] == OM_TYPE
    text = r.text
    assert text.endswith("\n# EOF\n") and text.count("# EOF") == 1
    assert "# TYPE weft_gateway_requests counter\n" in text  # the family without _total
    assert "\nweft_gateway_requests_total{" in text
    ex = exemplars(text)
    assert list(ex) == [trace], text
    le, span_id, value, ts = ex[trace]
    assert span_id == span["spanId"]  # the gateway's span, child of the client's
    assert 0 < value <= (float(le) if le != "+Inf" else 1e300)
    assert t0 - 1 <= ts <= time.time() + 1
    # the observation's duration is the span's, near enough (both time the same request)
    dur = (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e9
    assert abs(value - dur) < 0.05

    # an unsampled request: counted, but its trace is no exemplar and the last one stays
    r = get(w.gw + "/r/a", headers={"traceparent": f"00-{'6' * 32}-{CLIENT_SPAN}-00"})
    assert r.status_code == 200
    text = requests.get(w.api + "/metrics", headers={"Accept": OM_ACCEPT}, timeout=WAIT).text
    assert list(exemplars(text)) == [trace], text
    assert re.search(r'weft_gateway_request_duration_seconds_count\{route="r"\} 2\n', text)

    # a request without a trace context: a root span, sampled (always_on), its own trace
    get(w.gw + "/r/b")

    def root_spans():
        return [s for _, s, _ in receiver.spans()
                if s["traceId"] != trace and attrs(s).get("url.path") == "/r/b"]
    wait_for(root_spans, "the span of GET /r/b")
    [root] = root_spans()
    text = requests.get(w.api + "/metrics", headers={"Accept": OM_ACCEPT}, timeout=WAIT).text
    ex = exemplars(text)
    assert root["traceId"] in ex and ex[root["traceId"]][1] == root["spanId"], text

    # the Prometheus text: no exemplar, no # EOF, counters' families named with _total
    for accept in (None, "*/*", "text/plain;version=0.0.4",
                   "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"):
        r = requests.get(w.api + "/metrics", headers={"Accept": accept} if accept else {},
                         timeout=WAIT)
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert " # {" not in r.text and "# EOF" not in r.text
        assert "# TYPE weft_gateway_requests_total counter\n" in r.text
        assert re.search(r'\nweft_gateway_request_duration_seconds_bucket\{route="r",'
                         r'le="\+Inf"\} 3\n', r.text)


def test_sdk_service_request_histogram(spawn, receiver):
    """An SDK service (examples/hello) does the same with http_request_duration_seconds: a
    sampled request's server span is its bucket's exemplar, an unsampled one's is not."""
    port = free_port()
    p = spawn([HELLO, "--name", "hello-ex", "--port", port, "--workers", "1",
               "--log-level", "warn"], port, name="hello-ex",
              env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                   "OTEL_BSP_SCHEDULE_DELAY": "50"})
    sampled, unsampled = "8" * 32, "9" * 32
    assert get(p.url + "/hello/x", headers={
        "traceparent": f"00-{unsampled}-{CLIENT_SPAN}-00"}).status_code == 200
    assert get(p.url + "/hello/x", headers={
        "traceparent": f"00-{sampled}-{CLIENT_SPAN}-01"}).status_code == 200
    [(_, span, _)] = receiver.wait_trace(sampled, WAIT)
    r = requests.get(p.url + "/metrics", headers={"Accept": OM_ACCEPT}, timeout=WAIT)
    assert r.headers["Content-Type"] == OM_TYPE and r.text.endswith("\n# EOF\n")
    found = []
    for line in r.text.splitlines():
        m = EXEMPLAR.match(line)
        if m and m.group(1) == "http_request_duration_seconds_bucket":
            found.append((m.group(4), m.group(5)))
    assert (sampled, span["spanId"]) in found, r.text
    assert unsampled not in r.text


def test_no_exemplars_without_an_exporter(spawn, tmp_path, faulty):
    """Tracing off: the gateway makes no span, so no exemplar, even for a client's sampled
    trace (an exemplar must name a trace someone can find)."""
    up = faulty("up")
    w = start_weft(spawn, tmp_path, config(up.port) + "tracing: { enabled: false }\n")
    get(w.gw + "/r/a", headers={"traceparent": f"00-{'7' * 32}-{CLIENT_SPAN}-01"})
    r = requests.get(w.api + "/metrics", headers={"Accept": OM_ACCEPT}, timeout=WAIT)
    assert r.headers["Content-Type"] == OM_TYPE and r.text.endswith("\n# EOF\n")
    assert re.search(r'weft_gateway_request_duration_seconds_count\{route="r"\} 1\n', r.text)
    assert " # {" not in r.text


def test_prometheus_stores_the_exemplars(spawn, tmp_path, faulty, receiver):
    """A real Prometheus (exemplar storage on) scrapes weft's /metrics - negotiating
    OpenMetrics, which it must parse whole, # EOF and all - and answers the requests' trace
    ids from /api/v1/query_exemplars; the classic series are there too under their names."""
    prometheus = need_tool("prometheus")
    up = faulty("up")
    w = start_weft(spawn, tmp_path, config(up.port),
                   env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                        "OTEL_BSP_SCHEDULE_DELAY": "50"})
    api_port = int(w.api.rsplit(":", 1)[1])
    prom_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: weft
    static_configs:
      - targets: ['127.0.0.1:{api_port}']
""")
    spawn([prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
           "--enable-feature=exemplar-storage",
           f"--web.listen-address=127.0.0.1:{prom_port}"], prom_port, name="prometheus")
    base = f"http://127.0.0.1:{prom_port}"
    traces = {f"{i + 0xa0:032x}" for i in range(3)}
    for t in sorted(traces):
        r = get(w.gw + "/r/x", headers={"traceparent": f"00-{t}-{CLIENT_SPAN}-01"})
        assert r.status_code == 200
    seen, health, count = set(), None, None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (max(traces) in seen and count):
        try:
            targets = requests.get(base + "/api/v1/targets", timeout=2).json()
            health = [(t["health"], t["lastError"]) for t in targets["data"]["activeTargets"]]
            now = time.time()
            q = requests.get(base + "/api/v1/query_exemplars",
                             params={"query": BUCKET + '{route="r"}', "start": now - 300,
                                     "end": now + 60}, timeout=2).json()
            for series in q["data"]:
                assert series["seriesLabels"]["__name__"] == BUCKET
                for e in series["exemplars"]:
                    seen.add(e["labels"]["trace_id"])
                    assert len(e["labels"]["span_id"]) == 16
            c = requests.get(base + "/api/v1/query",
                             params={"query": 'weft_gateway_requests_total{route="r"}'},
                             timeout=2).json()
            if c["data"]["result"]:
                count = float(c["data"]["result"][0]["value"][1])
        except (requests.RequestException, KeyError, ValueError):
            pass
        time.sleep(0.5)
    assert health and all(h == ("up", "") for h in health), health
    # each bucket keeps its latest exemplar: the three requests' durations may share one,
    # but the last request's is its bucket's latest
    assert seen <= traces and max(traces) in seen, (seen, traces)
    assert count == 3
