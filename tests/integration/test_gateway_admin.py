"""The gateway's admin API on the API port (issue 19, item 10): GET /v1/gateway/routes,
GET /v1/gateway/upstreams, POST /v1/gateway/reload and SIGHUP. Every test starts the real
weft binary, with real upstreams (faulty.py, the hello example registered in the registry).

Checked: the routes listing is the configuration in match order (durations as text and in
ms) with each breaker's state; the upstreams listing shows a service's instances with their
health from the registry, static targets, and the client's connections to them; a reload by
POST and by SIGHUP changes routing; a bad file is refused with its position while the old
routes keep serving, and a reload needs the ACL token when one is set; an unchanged route
keeps its breaker (open stays open) and its rate limit across a reload, a changed one starts
afresh; and a steady stream of requests sees no error while the routes are reloaded 24 times.
"""
import concurrent.futures
import signal
import threading
import time

import requests

from conftest import WAIT, WEFT, free_port, get, tail, wait_for


class Weft:
    """weft serve with a config file this test rewrites: .api, .gw (URLs), .cfg, .proc."""

    def __init__(self, spawn, tmp_path, config, name="weft", extra=()):
        api, gw = free_port(), free_port()
        self.cfg = tmp_path / f"{name}.yaml"
        self.cfg.write_text(config)
        self.proc = spawn([WEFT, "serve", "--config", self.cfg, "--api", f"127.0.0.1:{api}",
                           "--gateway", f"127.0.0.1:{gw}", "--data-dir", tmp_path / f"{name}-data",
                           "--workers", "2", "--log-level", "info", *extra], api, name=name)
        self.api = f"http://127.0.0.1:{api}"
        self.gw = f"http://127.0.0.1:{gw}"
        wait_for(lambda: _answers(self.gw), "the gateway to listen")

    def routes(self):
        r = get(self.api + "/v1/gateway/routes")
        assert r.status_code == 200, r.text
        return r.json()

    def route(self, name):
        return next(r for r in self.routes() if r["name"] == name)

    def upstreams(self):
        r = get(self.api + "/v1/gateway/upstreams")
        assert r.status_code == 200, r.text
        return {u["route"]: u for u in r.json()}

    def reload(self, config=None, **kw):
        if config is not None:
            self.cfg.write_text(config)
        return requests.post(self.api + "/v1/gateway/reload", timeout=WAIT, **kw)

    def sighup(self, config):
        """Rewrites the file, sends SIGHUP, and waits for the log line it causes (the n-th
        "SIGHUP" outcome, reloaded or refused). Returns that line."""
        self.cfg.write_text(config)
        before = self._hup_lines()
        self.proc.proc.send_signal(signal.SIGHUP)
        return wait_for(lambda: self._hup_lines()[len(before):] and
                        self._hup_lines()[len(before)], "the outcome of SIGHUP in the log")

    def _hup_lines(self):
        return [ln for ln in tail(self.proc.log, 1 << 22).splitlines()
                if "comp=gateway" in ln and "trigger=SIGHUP" in ln]


def _answers(url):
    try:
        requests.get(url + "/", timeout=1)
        return True
    except requests.RequestException:
        return False


def static_route(name, prefix, port, extra=""):
    return (f"    - name: {name}\n"
            f"      match: {{ path_prefix: {prefix} }}\n"
            f"      upstream: {{ targets: [127.0.0.1:{port}] }}\n" + extra)


def test_routes_listing_reflects_the_config(spawn, tmp_path):
    w = Weft(spawn, tmp_path, """gateway:
  routes:
    - name: orders
      match: { path_prefix: /api/orders, methods: [GET, POST], headers: { X-Tenant: "*" } }
      strip_prefix: true
      service: orders
      timeout: 2s
      retry: { attempts: 2, on: [connect-failure, reset, 502, 503, 504], per_try_timeout: 500ms }
      rate_limit: { algorithm: token_bucket, rate: 100/s, burst: 50, key: client_ip }
      circuit_breaker: { consecutive_failures: 5, failure_rate: 50%, slow_call_duration: 1s, slow_call_rate: 80%, window: 10s, min_requests: 20, open_for: 30s, half_open_requests: 3 }
    - name: legacy
      match: { path: /legacy/:id/* }
      rewrite: /old
      upstream: { targets: [127.0.0.1:9001, { address: "127.0.0.1:9002", weight: 3 }], lb: least_request }
      timeout: 1m30s
      rate_limit: { algorithm: sliding_window, limit: 1000, window: 60s, key: header:X-Api-Key, shadow: true }
""")
    r = get(w.api + "/v1/gateway/routes")
    assert r.headers["Content-Type"].startswith("application/json")
    routes = r.json()
    assert [x["name"] for x in routes] == ["orders", "legacy"]  # match order
    o, lg = routes
    assert o["match"] == {"path_prefix": "/api/orders", "methods": ["GET", "POST"],
                          "headers": {"X-Tenant": "*"}}
    assert o["strip_prefix"] is True and o["rewrite"] is None
    assert o["service"] == "orders" and o["lb"] == "round_robin" and "upstream" not in o
    assert (o["timeout"], o["timeout_ms"]) == ("2s", 2000)
    assert o["retry"] == {"attempts": 2, "on": ["connect-failure", "reset", 502, 503, 504],
                          "per_try_timeout": "500ms", "per_try_timeout_ms": 500,
                          "methods": "idempotent"}
    rl = o["rate_limit"]
    assert (rl["algorithm"], rl["rate"], rl["rate_per_second"], rl["burst"], rl["key"],
            rl["shadow"], rl["rejected"]) == ("token_bucket", "100/s", 100, 50, "client_ip",
                                              False, 0)
    cb = o["circuit_breaker"]
    assert cb == {"consecutive_failures": 5, "failure_rate": "50%", "slow_call_duration": "1s",
                  "slow_call_duration_ms": 1000, "slow_call_rate": "80%", "window": "10s",
                  "window_ms": 10000, "min_requests": 20, "open_for": "30s",
                  "open_for_ms": 30000, "open_for_max": "5m", "open_for_max_ms": 300000,
                  "half_open_requests": 3, "scope": "both",
                  "failure_on": ["connect-failure", "reset", "timeout", "5xx"]}
    assert o["breaker"]["state"] == "closed" and o["breaker"]["ms_until_half_open"] == 0
    assert lg["match"] == {"path": "/legacy/:id/*", "pattern": True}
    assert lg["rewrite"] == "/old" and "service" not in lg
    assert lg["upstream"] == {"targets": [{"address": "127.0.0.1:9001", "weight": 1},
                                          {"address": "127.0.0.1:9002", "weight": 3}],
                              "lb": "least_request"}
    assert (lg["timeout"], lg["timeout_ms"]) == ("1m30s", 90000)
    assert lg["retry"] is None and lg["circuit_breaker"] is None and lg["breaker"] is None
    assert lg["rate_limit"]["window"] == "1m" and lg["rate_limit"]["window_ms"] == 60000
    assert lg["rate_limit"]["key"] == "header:X-Api-Key" and lg["rate_limit"]["shadow"] is True


def test_upstreams_show_registry_health_and_static_pools(spawn, tmp_path, hello, faulty):
    up = faulty("static")
    dead = free_port()
    w = Weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: svc
      match: {{ path_prefix: /svc }}
      strip_prefix: true
      service: hello
      circuit_breaker: {{ consecutive_failures: 3 }}
{static_route("static", "/static", up.port)}""")
    for iid, port in (("hello-1", hello.port), ("hello-dead", dead)):
        r = requests.put(w.api + "/v1/agent/service/register", timeout=WAIT, json={
            "Name": "hello", "ID": iid, "Address": "127.0.0.1", "Port": port,
            "Check": {"HTTP": f"http://127.0.0.1:{port}/health", "Interval": "1s"}})
        assert r.status_code == 200, r.text

    def healths():
        return {i["id"]: i["health"] for i in w.upstreams()["svc"]["instances"]}
    wait_for(lambda: healths() == {"hello-1": "passing", "hello-dead": "critical"},
             "both instances' health from their checks")
    assert get(w.gw + "/svc/hello").status_code == 200
    assert get(w.gw + "/static/x").status_code == 200
    ups = w.upstreams()
    svc = ups["svc"]
    assert svc["service"] == "hello" and svc["breaker"]["state"] == "closed"
    assert svc["in_flight"] == 0
    inst = {i["id"]: i for i in svc["instances"]}
    h = inst["hello-1"]
    assert (h["host"], h["port"], h["address"]) == ("127.0.0.1", hello.port,
                                                    f"127.0.0.1:{hello.port}")
    # the request went out on one worker's keep-alive connection, idle now
    assert h["pool"]["open"] == 1 and h["pool"]["idle"] == 1 and h["pool"]["busy"] == 0
    assert len(h["pool"]["workers"]) == 2
    assert sum(x["idle"] for x in h["pool"]["workers"]) == 1
    assert h["requests"] == 1
    assert inst["hello-dead"]["pool"]["open"] == 0 and inst["hello-dead"]["requests"] == 0
    st = ups["static"]
    assert st["service"] is None and st["breaker"] is None
    assert [(i["address"], i["health"]) for i in st["instances"]] == \
        [(f"127.0.0.1:{up.port}", None)]
    assert st["instances"][0]["pool"]["idle"] == 1

    # a request held at the upstream shows in flight on its route and its pool
    up.set_fault("delay", ms=3000, count=1)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(get, w.gw + "/static/slow")

        def busy():
            s = w.upstreams()["static"]
            return s["in_flight"] == 1 and s["instances"][0]["pool"]["busy"] == 1 and s
        s = wait_for(busy, "the held request in flight")
        assert s["instances"][0]["pool"]["in_flight"] == 1
        assert fut.result().status_code == 200
    assert w.upstreams()["static"]["in_flight"] == 0


def test_reload_by_post_and_by_sighup_changes_routing(spawn, tmp_path, faulty):
    a, b = faulty("a"), faulty("b")
    w = Weft(spawn, tmp_path, "gateway:\n  routes:\n" + static_route("r", "/r", a.port))
    assert get(w.gw + "/r/x").headers["X-Faulty-Name"] == "a"
    assert get(w.gw + "/s/x").status_code == 404

    r = w.reload("gateway:\n  routes:\n" + static_route("r", "/r", b.port) +
                 static_route("s", "/s", a.port))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reloaded"] is True
    assert body["summary"]["routes"] == 2 and body["summary"]["added"] == ["s"]
    assert body["summary"]["kept"] == ["r"]  # no policy: nothing to reset
    assert get(w.gw + "/r/x").headers["X-Faulty-Name"] == "b"
    assert get(w.gw + "/s/x").headers["X-Faulty-Name"] == "a"
    assert [x["name"] for x in w.routes()] == ["r", "s"]

    line = w.sighup("gateway:\n  routes:\n" + static_route("s", "/s", b.port))
    assert "msg=reloaded" in line and "routes=1" in line, line
    assert get(w.gw + "/s/x").headers["X-Faulty-Name"] == "b"
    assert get(w.gw + "/r/x").status_code == 404
    assert [x["name"] for x in w.routes()] == ["s"]
    gen = get(w.api + "/v1/gateway/routes").headers["X-Weft-Gateway-Generation"]
    assert gen == "3"  # the start, the POST, the SIGHUP


def test_bad_config_on_reload_is_refused_and_the_old_routes_serve(spawn, tmp_path, faulty):
    a = faulty("a")
    good = "gateway:\n  routes:\n" + static_route("r", "/r", a.port)
    w = Weft(spawn, tmp_path, good)
    bad = good + "    - name: r2\n      match: { path_prefix: /r2 }\n      service: s\n" \
                 "      retry: { attempts: two }\n"
    r = w.reload(bad)
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["reloaded"] is False
    assert err["error"] == (f"{w.cfg}:9:26: gateway.routes[1].retry.attempts: expected a "
                            f"whole number, got \"two\""), err
    assert get(w.gw + "/r/x").status_code == 200  # the old table serves
    assert [x["name"] for x in w.routes()] == ["r"]

    # a file that is not even YAML, and one that is not there: refused the same way
    r = w.reload("gateway: [\n")
    assert r.status_code == 400 and r.json()["error"].startswith(f"{w.cfg}:"), r.text
    w.cfg.unlink()
    r = w.reload()
    assert r.status_code == 400 and str(w.cfg) in r.json()["error"], r.text

    line = w.sighup(bad)
    assert "level=error" in line and "reload refused" in line and ":9:26:" in line, line
    assert get(w.gw + "/r/x").status_code == 200
    assert w.reload(good).status_code == 200


def test_reload_needs_the_acl_token_when_set(spawn, tmp_path, faulty):
    a = faulty("a")
    w = Weft(spawn, tmp_path, "acl:\n  token: s3cret\ngateway:\n  routes:\n" +
             static_route("r", "/r", a.port))
    r = w.reload()
    assert r.status_code == 403 and "token" in r.json()["error"], r.text
    assert w.reload(headers={"X-Consul-Token": "wrong"}).status_code == 403
    assert w.reload(headers={"X-Consul-Token": "s3cret"}).status_code == 200
    assert w.reload(headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert w.reload(params={"token": "s3cret"}).status_code == 200
    assert get(w.api + "/v1/gateway/routes").status_code == 200  # reads stay open


def test_unchanged_route_keeps_its_breaker_and_limit_across_reloads(spawn, tmp_path, faulty):
    up = faulty("up")
    breaker = "      circuit_breaker: { consecutive_failures: 3, open_for: 60s }\n"
    limit = "      rate_limit: { algorithm: token_bucket, rate: 1/m, burst: 3, key: route }\n"
    conf = ("gateway:\n  routes:\n" + static_route("flaky", "/flaky", up.port, breaker) +
            static_route("limited", "/limited", up.port, limit))
    w = Weft(spawn, tmp_path, conf)
    up.set_fault("status", status=503, count=1000, path="/flaky")
    assert [get(w.gw + "/flaky/x").status_code for _ in range(3)] == [503] * 3
    assert w.route("flaky")["breaker"]["state"] == "open"
    assert [get(w.gw + "/limited/x").status_code for _ in range(2)] == [200] * 2

    # unchanged policies, other changes around them (a new route first, a longer timeout)
    r = w.reload("gateway:\n  routes:\n" + static_route("new", "/new", up.port) +
                 static_route("flaky", "/flaky", up.port, breaker + "      timeout: 3s\n") +
                 static_route("limited", "/limited", up.port, limit))
    assert r.status_code == 200, r.text
    assert sorted(r.json()["summary"]["kept"]) == ["flaky", "limited"]
    fl = w.route("flaky")
    assert fl["breaker"]["state"] == "open" and fl["breaker"]["opens"] == 1
    assert fl["breaker"]["ms_until_half_open"] > 50000 and fl["timeout_ms"] == 3000
    asked = up.stats()["requests_by_path"]["/flaky/x"]
    r = get(w.gw + "/flaky/x")
    assert r.status_code == 503 and r.headers["X-Weft-Breaker"] == "open"
    assert up.stats()["requests_by_path"]["/flaky/x"] == asked  # failed fast
    # the bucket kept its count: one token left of three
    assert [get(w.gw + "/limited/x").status_code for _ in range(2)] == [200, 429]
    assert w.route("limited")["rate_limit"]["rejected"] == 1

    # changed policies start afresh: the breaker closed, the bucket full
    up.set_fault("off")
    r = w.reload("gateway:\n  routes:\n" +
                 static_route("flaky", "/flaky", up.port,
                              breaker.replace("failures: 3", "failures: 4")) +
                 static_route("limited", "/limited", up.port, limit.replace("burst: 3",
                                                                            "burst: 2")))
    assert r.status_code == 200, r.text
    s = r.json()["summary"]
    assert sorted(s["changed"]) == ["flaky", "limited"] and s["removed"] == ["new"]
    assert w.route("flaky")["breaker"]["state"] == "closed"
    assert get(w.gw + "/flaky/x").status_code == 200
    assert [get(w.gw + "/limited/x").status_code for _ in range(3)] == [200, 200, 429]


def test_no_request_dropped_or_failed_across_many_reloads(spawn, tmp_path, faulty):
    """Eight clients send requests without pause (keep-alive, and new connections) while
    the routes are reloaded 24 times, alternating two tables by POST and by SIGHUP (each
    with policies, one route's changing each time so its state is built and freed). Every
    request gets 200 and no client sees a connection error."""
    a, b = faulty("a"), faulty("b")
    limit = "      rate_limit: { algorithm: token_bucket, rate: 100000/s, burst: %d, key: route }\n"
    breaker = "      circuit_breaker: { consecutive_failures: 1000 }\n"

    def conf(i):
        up, other = (a, b) if i % 2 == 0 else (b, a)
        return ("gateway:\n  routes:\n" +
                (static_route("extra", "/extra", other.port) if i % 2 else "") +
                static_route("s", "/s", up.port, breaker + limit % (100000 + i)) +
                static_route("t", "/t", other.port, breaker))
    w = Weft(spawn, tmp_path, conf(0))
    stop = threading.Event()
    results = {"ok": 0, "names": set(), "bad": []}
    lock = threading.Lock()

    def client(k):
        s = requests.Session()
        n = 0
        while not stop.is_set():
            path = "/s/x" if n % 2 == 0 else "/t/y"
            try:
                if k % 2:  # half the clients on a new connection each time
                    r = requests.get(w.gw + path, timeout=WAIT)
                else:
                    r = s.get(w.gw + path, timeout=WAIT)
                with lock:
                    if r.status_code == 200:
                        results["ok"] += 1
                        results["names"].add(r.headers.get("X-Faulty-Name"))
                    else:
                        results["bad"].append((path, r.status_code, r.text[:200]))
            except requests.RequestException as e:
                with lock:
                    results["bad"].append((path, "error", repr(e)))
            n += 1
        s.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: results["ok"] >= 50, "the stream of requests to flow")
        for i in range(1, 25):
            before = results["ok"]
            if i % 3 == 0:
                line = w.sighup(conf(i))
                assert "msg=reloaded" in line, line
            else:
                r = w.reload(conf(i))
                assert r.status_code == 200, r.text
            # requests flow between reloads: each reload is exercised under traffic
            wait_for(lambda: results["ok"] >= before + 20, "requests after a reload")
    finally:
        stop.set()
        for t in threads:
            t.join(WAIT)
    assert not results["bad"], results["bad"][:10]
    assert results["ok"] > 24 * 20 and results["names"] == {"a", "b"}
    assert get(w.api + "/v1/gateway/routes").headers["X-Weft-Gateway-Generation"] == "25"
