"""The dashboard's Gateway and Circuit breakers views (docs/ui.md), in a real browser.

The real `weft serve` runs a gateway with two routes: `hello` to a real examples/hello, which
this test keeps busy with a steady trickle of requests, and `flaky` to faulty.py, whose
breaker tests/e2e/gateway.mjs trips (faulty answering 503) and then lets go half-open. The
page reads weft's own history (GET /v1/weft/history, .../transitions), so what it shows is
checked against those numbers: the route's requests/s, the breaker's state, its reason.
Chromium, playwright-core and axe-core as in test_ui.py (its `npm ci` and skips)."""
import re
import threading

import pytest
import requests

from conftest import HELLO, WEFT, free_port, get, wait_for
from test_ui import assert_clean_run, e2e_script

OPEN_FOR_MS = 8000   # long enough to scan and photograph the open breaker's views
TRIP = 12            # requests that trip it: failure_rate 50% over min_requests 10


@pytest.fixture
def e2e_gateway():
    """run(config) -> what tests/e2e/gateway.mjs saw (test_ui.e2e_script)."""
    return e2e_script("gateway.mjs")


class Trickle:
    """Requests to url from a thread, about `rate` a second, until stop(); counts answers."""

    def __init__(self, url, rate=40):
        self.url, self.pause, self.codes = url, 1.0 / rate, {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        with requests.Session() as s:
            while not self.done.is_set():
                try:
                    code = s.get(self.url, timeout=5).status_code
                except requests.RequestException:
                    code = 0
                self.codes[code] = self.codes.get(code, 0) + 1
                self.done.wait(self.pause)

    def stop(self):
        self.done.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def test_ui_gateway_and_breakers(spawn, tmp_path, faulty, e2e_gateway):
    """The Gateway view shows the route's real requests/s (as the history has them) and
    its charts; a breaker tripped by a failing upstream shows open (with its reason and a
    countdown that goes down) and then half-open on the Breakers view; axe-core finds no
    serious or critical violation on any view (light and dark); screenshots of each."""
    hp = free_port()
    spawn([HELLO, "--port", hp, "--workers", "1", "--log-level", "warn"], hp, name="hello")
    up = faulty("bad")
    api, gw = free_port(), free_port()
    cfg = tmp_path / "weft.yaml"
    cfg.write_text(f"""gateway:
  routes:
    - name: hello
      match: {{ path_prefix: /hello }}
      upstream: {{ targets: [127.0.0.1:{hp}] }}
      retry: {{ attempts: 1 }}
      circuit_breaker: {{ consecutive_failures: 5 }}
    - name: flaky
      match: {{ path_prefix: /flaky }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      circuit_breaker: {{ failure_rate: 50%, min_requests: 10, window: 10s, open_for: {OPEN_FOR_MS}ms, half_open_requests: 3, scope: route }}
""")
    spawn([WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{api}",
           "--gateway", f"127.0.0.1:{gw}", "--data-dir", tmp_path / "data",
           "--workers", "2", "--log-level", "warn"], api, name="weft")
    base, gw_url = f"http://127.0.0.1:{api}", f"http://127.0.0.1:{gw}"
    wait_for(lambda: _status(gw_url + "/hello") == 200, "the hello route to answer")
    trickle = Trickle(gw_url + "/hello")
    try:
        out = e2e_gateway({"url": base, "gw": gw_url, "faulty": up.url, "route": "hello",
                           "flaky": "flaky", "trip_requests": TRIP, "open_for_ms": OPEN_FOR_MS})
        hist = get(base + "/v1/weft/history", params={"route": "hello"}).json()
    finally:
        trickle.stop()
    assert_clean_run(out)
    assert set(trickle.codes) == {200}, trickle.codes

    # Gateway: the route's requests/s as the history has them (the trickle: ~40/s at most)
    row = next(r for r in out["routes"] if r["route"] == "hello")
    [hello] = hist["routes"]
    seen = [v for v in hello["requests_per_s"] if v]
    assert 0 < row["rps"] <= 60 and min(seen) <= row["rps"] <= max(seen), (row, seen)
    assert row["cells"][0] == "hello" and row["cells"][-1] == "closed", row
    assert ["Gateway", "#/gateway", "page"] in out["nav"], out["nav"]
    assert ["Breakers", "#/breakers", None] in out["nav"], out["nav"]
    assert out["route_h1"] == "Route hello"
    assert out["route_status"].startswith("Now ") and "requests/s" in out["route_status"]
    titles = [c["title"] for c in out["charts"]]
    assert titles == ["Requests/s", "Error ratio (5xx)", "Latency", "Rate limit and retries",
                      "Retry budget (all routes)"], titles
    rps_chart, err_chart, lat_chart = out["charts"][:3]
    assert rps_chart["paths"][0] > 10, rps_chart  # a line was drawn
    assert "requests/s now" in rps_chart["label"] and "highest" in rps_chart["label"], rps_chart
    assert err_chart["legend"] == ["5xx share: 0%"], err_chart
    assert [x.split(":")[0] for x in lat_chart["legend"]] == ["p50", "p95", "p99"]
    assert out["traces_href"].startswith("#/traces?service=weft&tags=weft.route%3Dhello"), out["traces_href"]
    assert "minDuration=" in out["traces_href"], out["traces_href"]
    assert "#/breakers/hello" in out["breakers_links"], out["breakers_links"]
    # exemplars: the gateway's spans go to weft's own collector, so its latency buckets
    # name traces, and the latency chart links to them
    assert out["exemplars"] and all(re.fullmatch(r"#/traces/[0-9a-f]{32}", x)
                                    for x in out["exemplars"]), out["exemplars"]
    assert re.fullmatch(r"\d\d:\d\d:\d\d: requests/s [0-9.]+", out["hover_readout"]), out["hover_readout"]
    assert re.fullmatch(r"\d\d:\d\d:\d\d: requests/s [0-9.]+", out["readout"]), out["readout"]
    assert out["readout_focus"] == out["readout_focus_later"] == "chart-box"
    assert out["readout_later"] == out["readout"], (out["readout"], out["readout_later"])

    # Breakers: open, with its reason, counting down; then half-open after one probe
    assert out["trip_codes"][:10] == [503] * 10, out["trip_codes"]
    assert out["open_state"] == "open"
    assert out["open_reason"] == \
        "open: failure_rate (failure rate 1.00 >= 0.50 over 10 requests)", out["open_reason"]
    c1, c2 = (int(c.split()[2]) for c in (out["countdown1"], out["countdown2"]))
    assert out["countdown1"].startswith("half-open in ") and 0 < c2 < c1 <= OPEN_FOR_MS / 1000, \
        (out["countdown1"], out["countdown2"])
    tiles = {(t["route"], t["upstream"]): t for t in out["tiles"]}
    assert tiles[("flaky", "")]["state"] == "open"
    assert tiles[("hello", "")]["state"] == "closed"
    assert "#/gateway/flaky" in tiles[("flaky", "")]["links"]
    assert "#/breakers/flaky/route" in tiles[("flaky", "")]["links"]
    # size by volume: the busy hello route's circle is the larger one
    assert tiles[("hello", "")]["r"] > tiles[("flaky", "")]["r"], tiles
    assert any("closed → open" in x and "failure_rate" in x for x in out["open_timeline"])
    assert out["breaker_h1"] == "Breaker: flaky route\u2019s own breaker"
    assert out["breaker_strip"] > 0
    assert out["breaker_gateway_link"] == "#/gateway/flaky"
    assert out["probe_code"] == 200
    assert out["half_state"] == "half-open"
    assert out["half_reason"] == \
        "half-open: open_timeout (open for 8000 ms; letting 3 probe requests through)", out["half_reason"]
    assert out["half_timeline"][0]["to"] == "half_open", out["half_timeline"]
    assert out["half_timeline"][0]["reason"] == "open_timeout"
    for name in ("gateway", "gateway-route", "breakers", "breaker"):
        assert out[f"{name}_overflow"] <= 0, (name, out[f"{name}_overflow"])
    for name in ("gateway", "gateway-route", "breakers", "breaker"):
        assert f"{name}-light" in out["axe"] and f"{name}-dark" in out["axe"], out["axe"].keys()


def _status(url):
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return 0
