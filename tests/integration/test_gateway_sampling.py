"""The gateway's sampling per route (issue 20, item 4): head sampling by ratio and by rate,
parent-based, and tail-style keeping of the requests that failed or were slow when the head
said "drop".

`weft serve` exports its own spans into its trace store; the tests read them back through
its Jaeger API on the API port (GET /api/traces?service=weft). Every configuration sets the
global tracing.sample_ratio to 0, so the API's own requests (those queries) make no traces:
what the store holds is the gateway's. The upstreams are faulty.py, which records the
heads it received (the traceparent each request carried upstream)."""
import subprocess
import time

from conftest import WAIT, WEFT, get, wait_for

CLIENT_SPAN = "00f067aa0ba902b7"


def tags(span):
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def stored(w):
    """{trace id: its spans} of every trace of service weft in the store."""
    r = get(f"{w.api}/api/traces", params={"service": "weft", "limit": 1000})
    assert r.status_code == 200, r.text
    return {t["traceID"]: t["spans"] for t in r.json()["data"]}


def stored_when(w, n):
    """The store's traces once it holds n (the gateway's exporter queues them)."""
    got = {}

    def enough():
        got["t"] = stored(w)
        return len(got["t"]) >= n
    wait_for(enough, f"{n} traces in the store")
    return got["t"]


def upstream_contexts(up, with_target=False):
    """(trace id, flags) of the traceparent of each request the upstream received (and its
    target first, with_target)."""
    out = []
    for head in up.requests_seen():
        tp = [v for n, v in head["headers"] if n.lower() == "traceparent"]
        assert len(tp) == 1, head
        _, tid, _, flags = tp[0].split("-")
        out.append((head["target"], tid, flags) if with_target else (tid, flags))
    return out


def route(up, name, tracing, prefix=None):
    return f"""    - name: {name}
      match: {{ path_prefix: /{prefix or name} }}
      strip_prefix: true
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      tracing: {tracing}
"""


def config(routes, rate=None):
    extra = f"\n  sample_rate: {rate}" if rate is not None else ""
    return "gateway:\n  routes:\n" + "".join(routes) + f"tracing:\n  sample_ratio: 0{extra}\n"


def test_keep_errors_with_ratio_zero(gateway, faulty):
    """sample_ratio 0 with keep_errors: only the failing requests' traces are stored (a 503
    of the upstream, and the gateway's own 502 for an upstream that resets), each as the
    gateway's span alone, marked weft.sampling=tail-error; every upstream was told
    sampled=0, and the kept trace ids are those the upstream saw."""
    up = faulty("up")
    w = gateway(config([route(up, "r", "{ sample_ratio: 0, keep_errors: true }")]))
    for i in range(6):
        assert get(w.gw + f"/r/ok{i}").status_code == 200
    assert get(w.gw + "/r/status/503").status_code == 503
    assert get(w.gw + "/r/status/500").status_code == 500
    assert get(w.gw + "/r/reset").status_code == 502
    assert get(w.gw + "/r/status/404").status_code == 404  # a 4xx is no error here
    traces = stored_when(w, 3)
    seen = upstream_contexts(up, with_target=True)
    assert all(f == "00" for _, _, f in seen), seen
    by_target = {}
    for target, tid, _ in seen:
        by_target.setdefault(target, set()).add(tid)
    assert all(len(v) == 1 for v in by_target.values())  # a retry carries the same trace
    assert len(by_target) == 10
    failing = by_target["/status/503"] | by_target["/status/500"] | by_target["/reset"]
    assert set(traces) == failing
    statuses = set()
    for tid, spans in traces.items():
        assert len(spans) == 1
        s = tags(spans[0])
        assert s["weft.sampling"] == "tail-error"
        assert s["weft.route"] == "r"
        assert spans[0]["references"] == []
        statuses.add(s.get("http.response.status_code"))
    assert statuses == {503, 500, 502}
    # a later failure is stored as well, and still nothing else
    assert get(w.gw + "/r/status/504").status_code == 504
    assert get(w.gw + "/r/fine").status_code == 200
    traces = stored_when(w, 4)
    late = [t for target, t, _ in upstream_contexts(up, with_target=True)
            if target in ("/status/504", "/fine")]
    assert len(traces) == 4 and late[0] in traces and late[1] not in traces


def test_keep_slower_than(gateway, faulty):
    """keep_slower_than: a request slower than the threshold is kept (weft.sampling =
    tail-slow), faster ones are not; errors are not kept without keep_errors."""
    up = faulty("up")
    w = gateway(config([route(up, "s", "{ sample_ratio: 0, keep_slower_than: 300ms }")]))
    for _ in range(3):
        assert get(w.gw + "/s/delay/0").status_code == 200
    assert get(w.gw + "/s/status/500").status_code == 500
    assert get(w.gw + "/s/delay/500").status_code == 200
    traces = stored_when(w, 1)
    seen = upstream_contexts(up)
    assert list(traces) == [seen[4][0]]
    (span,) = traces[seen[4][0]]
    assert tags(span)["weft.sampling"] == "tail-slow"
    assert span["duration"] >= 500_000  # microseconds
    # a slow error is kept as an error when both rules are on
    w2 = gateway(config([route(up, "b", "{ sample_ratio: 0, keep_errors: true, "
                                        "keep_slower_than: 300ms }")]), name="gw2")
    assert get(w2.gw + "/b/status/503", headers={"X-Fault": "delay=400"}).status_code == 503
    (spans,) = stored_when(w2, 1).values()
    assert tags(spans[0])["weft.sampling"] == "tail-error"


def test_sample_rate_caps_the_traces_kept(gateway, faulty):
    """sample_rate 2/s on a route sampling everything: a burst of requests gets 2 sampled at
    once and 2 a second after; exactly those (told sampled=1 upstream) are stored, with no
    weft.sampling mark (a head decision). A route with sample_rate 0 in a process whose
    global tracing.sample_rate is 1 is not capped."""
    up, up2 = faulty("up"), faulty("up2")
    w = gateway(config([route(up, "rl", "{ sample_ratio: 1, sample_rate: 2/s }"),
                        route(up2, "all", "{ sample_ratio: 1, sample_rate: 0 }")], rate=1))
    t0 = time.monotonic()
    for i in range(30):
        assert get(w.gw + f"/rl/{i}").status_code == 200
    elapsed = time.monotonic() - t0
    seen = upstream_contexts(up)
    sampled = [t for t, f in seen if f == "01"]
    assert 2 <= len(sampled) <= 2 + int(elapsed * 2) + 1, (len(sampled), elapsed)
    assert len(sampled) < 30
    assert seen[0][1] == seen[1][1] == "01"  # the bucket starts full
    for i in range(10):
        assert get(w.gw + f"/all/{i}").status_code == 200
    seen2 = upstream_contexts(up2)
    assert all(f == "01" for _, f in seen2)
    traces = stored_when(w, len(sampled) + 10)
    assert set(traces) == set(sampled) | {t for t, _ in seen2}
    for spans in traces.values():
        assert "weft.sampling" not in tags(spans[0])


def test_global_sample_rate(gateway, faulty):
    """tracing.sample_rate (global) caps the traces started on a route without a tracing
    block, through the tracer's own bucket (a burst of 3, then 3 a second), and a client's
    sampled=1 is still followed past the cap."""
    up = faulty("up")
    w = gateway(f"""gateway:
  routes:
    - name: g
      match: {{ path_prefix: /g }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
tracing: {{ sample_ratio: 1, sample_rate: 3 }}
""")
    t0 = time.monotonic()
    for i in range(30):
        assert get(w.gw + f"/g/{i}").status_code == 200
    elapsed = time.monotonic() - t0
    tid = "c" * 32
    get(w.gw + "/g/parent", headers={"traceparent": f"00-{tid}-{CLIENT_SPAN}-01"})
    seen = upstream_contexts(up)
    sampled = [t for t, f in seen[:30] if f == "01"]
    # the bucket is the API's too: the start-up probe (GET /health) may have taken a token
    assert 2 <= len(sampled) <= 3 + int(elapsed * 3) + 1, (len(sampled), elapsed)
    assert len(sampled) < 30
    assert seen[30] == (tid, "01")


def test_client_sampled_parent_always_followed(gateway, faulty):
    """Parent-based: a client's traceparent with sampled=1 is followed on a route sampling
    nothing (ratio 0, a rate of 1/h), and the gateway's span hangs under the client's; one
    with sampled=0 is followed too: nothing is stored for it and upstream hears 0 (with
    keep_errors, its failure is still kept)."""
    up = faulty("up")
    w = gateway(config([route(up, "p", "{ sample_ratio: 0, sample_rate: 1/h, keep_errors: true }")]))
    ids = [f"{i + 1}" * 32 for i in range(5)]
    for tid in ids:
        r = get(w.gw + "/p/x", headers={"traceparent": f"00-{tid}-{CLIENT_SPAN}-01"})
        assert r.status_code == 200
    dropped = "a" * 32
    get(w.gw + "/p/x", headers={"traceparent": f"00-{dropped}-{CLIENT_SPAN}-00"})
    failed = "b" * 32
    assert get(w.gw + "/p/status/503",
               headers={"traceparent": f"00-{failed}-{CLIENT_SPAN}-00"}).status_code == 503
    traces = stored_when(w, 6)
    assert set(traces) == set(ids) | {failed}
    for tid in ids:
        (span,) = traces[tid]
        assert span["references"] == [{"refType": "CHILD_OF", "traceID": tid,
                                       "spanID": CLIENT_SPAN}]
        assert "weft.sampling" not in tags(span)
    assert tags(traces[failed][0])["weft.sampling"] == "tail-error"
    seen = upstream_contexts(up)
    assert [t for t, _ in seen] == ids + [dropped, failed]
    assert [f for _, f in seen] == ["01"] * 5 + ["00", "00"]


def test_tracing_config_errors(tmp_path):
    """A bad tracing block is refused at start with FILE:LINE:COLUMN: KEY: reason, exit 2."""
    cases = [
        ("{ sample_ratio: 2 }", "gateway.routes[0].tracing.sample_ratio", "above the maximum"),
        ("{ sample_rate: fast }", "gateway.routes[0].tracing.sample_rate", "expected"),
        ("{ sample_rate: 5/x }", "gateway.routes[0].tracing.sample_rate", "expected"),
        ("{ keep_slower_than: soon }", "gateway.routes[0].tracing.keep_slower_than", "expected"),
        ("{ keep_errors: maybe }", "gateway.routes[0].tracing.keep_errors", "expected"),
        ("{ keep_error: true }", "gateway.routes[0].tracing.keep_error", "unknown key"),
        ("[1]", "gateway.routes[0].tracing", "expected a mapping"),
    ]
    for i, (block, key, why) in enumerate(cases):
        cfg = tmp_path / f"bad{i}.yaml"
        cfg.write_text("gateway:\n  routes:\n    - name: r\n      match: { path_prefix: /r }\n"
                       "      upstream: { targets: [127.0.0.1:9] }\n"
                       f"      tracing: {block}\n")
        p = subprocess.run([WEFT, "serve", "--config", cfg, "--api", "127.0.0.1:0",
                            "--gateway", "127.0.0.1:0", "--data-dir", tmp_path / "d"],
                           capture_output=True, text=True, timeout=WAIT)
        assert p.returncode == 2, (block, p.stderr)
        line = p.stderr.strip().splitlines()[-1]
        assert f"bad{i}.yaml:6:" in line and f"{key}:" in line and why in line, (block, line)
    p = subprocess.run([WEFT, "serve", "--trace-sample-rate", "-1", "--api", "127.0.0.1:0",
                        "--gateway", "127.0.0.1:0", "--data-dir", tmp_path / "d"],
                       capture_output=True, text=True, timeout=WAIT)
    assert p.returncode == 2 and "--trace-sample-rate" in p.stderr, p.stderr
