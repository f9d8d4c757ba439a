"""weft's own history for the dashboard (issue 21, item 2): the gateway's per-route and
per-upstream series sampled every second (GET /v1/weft/history), the breakers' transitions
with their reasons (GET /v1/weft/history/transitions) and each health check's transitions
with its output (GET /v1/weft/checks/ID/history), against the real `weft serve`, a real
upstream (faulty.py) and a real gateway route."""
import time

import pytest
import requests

from conftest import WAIT, get, wait_for
from test_gateway_upstreams import start_weft  # weft serve with a gateway config


def history(w, **params):
    r = get(w.api + "/v1/weft/history", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def series_of(h, key, route, upstream=None):
    """The list of `key` values of route (and upstream) in history answer h, or None."""
    for e in h["routes" if upstream is None else "upstreams"]:
        if e["route"] == route and (upstream is None or e["upstream"] == upstream):
            assert len(e[key]) == len(h["times"]), (key, e)
            return e[key]
    return None


def test_route_traffic_shows_within_two_seconds(spawn, tmp_path, faulty):
    """Requests through a route show up as requests/s with latency quantiles in the next
    samples; ?since= answers only the samples taken after it, so a page polls for what is
    new; a second route with no traffic has zeros, not nulls (its counters were seen at 0)."""
    up = faulty("up")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: api
      match: {{ path_prefix: /api }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
    - name: idle
      match: {{ path_prefix: /idle }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
""")
    h0 = history(w)
    assert h0["series"] == "routes" and h0["interval_ms"] == 1000
    assert h0["samples_max"] == 900 and h0["limit"] == 64 and h0["left_out"] == 0
    assert h0["memory_bytes"] > 0
    since = h0["now_ms"]
    sent_at = time.monotonic()
    for _ in range(40):
        assert get(w.gw + "/api/x").status_code == 200
        assert get(w.gw + "/api/x", headers={"X-Fault": "status=502"}).status_code == 502
    first = [None]

    def seen():
        h = history(w, since=since)
        reqs = series_of(h, "requests_per_s", "api") or []
        if any(v and v > 0 for v in reqs):
            first[0] = h
            return True
        return False
    wait_for(seen, "the route's requests in the history", timeout=4)
    assert time.monotonic() - sent_at < 4
    h = first[0]
    assert all(t > since for t in h["times"]) and h["times"] == sorted(h["times"])
    # every request of the burst is in the samples after since, half of them 5xx
    def counted():
        h = history(w, since=since)
        prev = [since] + h["times"][:-1]
        reqs = series_of(h, "requests_per_s", "api")
        return sum((v or 0) * (t - p) / 1000 for v, t, p in zip(reqs, h["times"], prev)) > 79.5
    wait_for(counted, "all 80 requests counted", timeout=4)
    h = history(w, since=since)
    reqs = series_of(h, "requests_per_s", "api")
    errs = series_of(h, "error_ratio", "api")
    p50 = series_of(h, "p50_ms", "api")
    p99 = series_of(h, "p99_ms", "api")
    busy = [i for i, v in enumerate(reqs) if v]
    assert busy
    # a rate is per second of the time since the sample before (since is the one before the
    # first): rate x that time gives back the 80 requests
    prev = [since] + h["times"][:-1]
    secs = [(t - p) / 1000 for t, p in zip(h["times"], prev)]
    total = sum(reqs[i] * secs[i] for i in busy)
    assert abs(total - 80) < 0.5, (reqs, secs)
    bad = sum(reqs[i] * secs[i] * errs[i] for i in busy)
    assert abs(bad / total - 0.5) < 0.02, (reqs, errs)
    for i in busy:
        assert p50[i] is not None and 0 < p50[i] <= p99[i] <= 10000, (p50, p99)
    idle = series_of(h, "requests_per_s", "idle")
    assert idle and all(v == 0 for v in idle), idle
    assert series_of(h, "p50_ms", "idle") == [None] * len(idle)
    assert len(h["retry_budget"]["limit"]) == len(h["times"])
    # the upstream's own series: its requests/s and error ratio
    hu = history(w, series="upstreams", since=since)
    assert hu["series"] == "upstreams"
    ureq = series_of(hu, "requests_per_s", "api", f"127.0.0.1:{up.port}")
    uprev = [since] + hu["times"][:-1]
    assert ureq is not None
    assert abs(sum((v or 0) * (t - p) / 1000 for v, t, p in zip(ureq, hu["times"], uprev))
               - 80) < 0.5, ureq
    # nothing newer than the last sample: empty arrays, same shape
    last = history(w)
    later = history(w, since=last["now_ms"] + 10_000)
    assert later["times"] == [] and series_of(later, "requests_per_s", "api") == []


def test_breaker_trip_and_its_reason(spawn, tmp_path, faulty):
    """A failing upstream trips the route's breaker on its failure rate: the transition is
    logged with its numbers ("failure rate 1.00 >= 0.50 over 10 requests"), the upstreams'
    series show it open with the time until half-open, and once open_for has passed the next
    request's probe shows open -> half_open with its own reason."""
    up = faulty("bad")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: flaky
      match: {{ path_prefix: /flaky }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      circuit_breaker: {{ failure_rate: 50%, min_requests: 10, window: 10s, open_for: 2s, half_open_requests: 1, scope: route }}
""")
    up.set_fault("status", status=503, count=100000)
    codes = [get(w.gw + "/flaky/x").status_code for _ in range(12)]
    assert codes[:10] == [503] * 10 and codes[10:] == [503, 503], codes
    tr = get(w.api + "/v1/weft/history/transitions", params={"route": "flaky"}).json()
    assert tr["kept_per_route"] == 64
    [r] = tr["routes"]
    assert r["route"] == "flaky" and r["breaker"] is True and r["dropped"] == 0
    [t] = r["transitions"]
    assert (t["upstream"], t["from"], t["to"], t["reason"]) == ("", "closed", "open",
                                                                 "failure_rate")
    assert t["detail"] == "failure rate 1.00 >= 0.50 over 10 requests", t
    assert abs(t["time_ms"] - time.time() * 1000) < 10_000
    # the upstreams' series: the route's own breaker ("") open, with the time to half-open
    def open_sampled():
        h = history(w, series="upstreams")
        st = series_of(h, "state", "flaky", "") or []
        return st and st[-1] == 1 and (series_of(h, "ms_until_half_open", "flaky", "")[-1] or 0) > 0
    wait_for(open_sampled, "the open breaker in the history", timeout=4)
    # the admin API shows the same reason in words (extended, not duplicated)
    adm = get(w.api + "/v1/gateway/upstreams").json()[0]["transitions"]
    assert adm[-1]["detail"] == t["detail"]
    # after open_for, a request is the half-open probe; the upstream recovered: it closes
    up.set_fault("off")
    wait_for(lambda: get(w.api + "/v1/gateway/routes").json()[0]["breaker"]["ms_until_half_open"]
             == 0, "open_for to pass", timeout=5)
    assert get(w.gw + "/flaky/x").status_code == 200
    later = get(w.api + "/v1/weft/history/transitions",
                params={"route": "flaky", "since": t["time_ms"]}).json()["routes"][0]
    got = [(x["from"], x["to"], x["reason"], x["detail"]) for x in later["transitions"]]
    assert got == [("open", "half_open", "open_timeout",
                    "open for 2000 ms; letting 1 probe requests through"),
                   ("half_open", "closed", "half_open_success",
                    "half-open probes succeeded (1 of 1)")], got
    # ?upstream= filters: no instance breaker on a scope: route breaker
    none = get(w.api + "/v1/weft/history/transitions",
               params={"route": "flaky", "upstream": "127.0.0.1:1"}).json()
    assert none["routes"][0]["transitions"] == []


@pytest.mark.parametrize("path,params,name", [
    ("/v1/weft/history", {"series": "nodes"}, "series"),
    ("/v1/weft/history", {"since": "yesterday"}, "since"),
    ("/v1/weft/history", {"since": "-5"}, "since"),
    ("/v1/weft/history", {"route": "r" * 200}, "route"),
    ("/v1/weft/history/transitions", {"since": "1e3"}, "since"),
])
def test_bad_parameters(weft, path, params, name):
    """A bad parameter is a 400 whose JSON names it."""
    q = "&".join(f"{k}={v}" for k, v in params.items())
    r = requests.get(f"{weft.url}{path}?{q}", timeout=WAIT)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["field"] == name and body["error"].startswith(name + ": "), body


def test_check_history_with_output(weft, faulty):
    """A health check's transitions with the output it had at each: registered (critical,
    as Consul starts a check), passing at its first run against a healthy upstream, then
    critical when the upstream answers 503, with that answer in the output; ?since= keeps
    what is newer; an unknown check is a 404, a bad since a 400 naming it."""
    up = faulty("web")
    r = requests.put(weft.url + "/v1/agent/service/register", timeout=WAIT, json={
        "Name": "web", "ID": "web-1", "Port": up.port,
        "Check": {"HTTP": f"{up.url}/health", "Interval": "1s"}})
    assert r.status_code == 200, r.text
    url = weft.url + "/v1/weft/checks/service:web-1/history"

    def moves():
        r = get(url)
        assert r.status_code == 200, r.text
        return [(t["from"], t["to"]) for t in r.json()["transitions"]]
    wait_for(lambda: ("critical", "passing") in moves(), "the check to pass", timeout=5)
    up.set_fault("status", status=503, count=100000)
    wait_for(lambda: ("passing", "critical") in moves(), "the check to fail", timeout=5)
    h = get(url).json()
    assert h["check_id"] == "service:web-1" and h["kept_max"] == 32 and h["dropped"] == 0
    ts = h["transitions"]
    assert [(t["from"], t["to"]) for t in ts] == [
        ("critical", "critical"), ("critical", "passing"), ("passing", "critical")], ts
    assert "200" in ts[1]["output"] and "503" in ts[2]["output"], ts
    assert [t["time_ms"] for t in ts] == sorted(t["time_ms"] for t in ts)
    assert abs(ts[2]["time_ms"] - time.time() * 1000) < 10_000
    newer = get(url, params={"since": ts[1]["time_ms"]}).json()["transitions"]
    assert [(t["from"], t["to"]) for t in newer] == [("passing", "critical")]
    r = get(weft.url + "/v1/weft/checks/service:nope/history")
    assert r.status_code == 404 and "service:nope" in r.json()["error"]
    r = get(url, params={"since": "soon"})
    assert r.status_code == 400 and r.json()["field"] == "since"
