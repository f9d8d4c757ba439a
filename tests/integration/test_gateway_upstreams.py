"""The gateway's policies per upstream instance (issue 19, items 4 and 5): a breaker per
instance beside the route's, the concurrency limits (max_requests, max_connections,
max_pending_requests) and ring-hash balancing, against real upstreams (faulty.py) and the
real weft binary."""
import concurrent.futures
import subprocess
import time

import pytest
import requests

from conftest import WAIT, WEFT, free_port, get, wait_for


def start_weft(spawn, tmp_path, config, workers=2, name="weft"):
    api, gw = free_port(), free_port()
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(config)
    p = spawn([WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{api}",
               "--gateway", f"127.0.0.1:{gw}", "--data-dir", tmp_path / f"{name}-data",
               "--workers", str(workers), "--log-level", "warn"], api, name=name)
    p.api = f"http://127.0.0.1:{api}"
    p.gw = f"http://127.0.0.1:{gw}"
    wait_for(lambda: _answers(p.gw), "the gateway to listen")
    return p


def _answers(url):
    try:
        requests.get(url + "/", timeout=1)
        return True
    except requests.RequestException:
        return False


def metrics(w):
    return get(w.api + "/metrics").text


def test_one_faulty_instance_opens_alone(spawn, tmp_path, faulty):
    """Of three instances one answers 503: its own breaker opens after 3 failures, the
    route's stays closed, and the traffic goes to the two healthy ones; once it recovers
    and open_for has passed, a trial closes it and it gets traffic again."""
    a, b, c = faulty("a"), faulty("b"), faulty("c")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: three
      match: {{ path_prefix: /three }}
      upstream: {{ targets: [127.0.0.1:{a.port}, 127.0.0.1:{b.port}, 127.0.0.1:{c.port}] }}
      circuit_breaker: {{ consecutive_failures: 3, open_for: 1s, half_open_requests: 1 }}
""")
    c.set_fault("status", status=503, count=100000)
    codes = []
    for _ in range(60):
        codes.append(get(w.gw + "/three/x").status_code)
        if c.stats()["requests_by_path"].get("/three/x", 0) == 3:
            break
    assert c.stats()["requests_by_path"]["/three/x"] == 3, codes
    # c is open: everything goes to a and b; the route's breaker never opened
    names = [get(w.gw + "/three/x") for _ in range(30)]
    assert all(r.status_code == 200 for r in names), [r.status_code for r in names]
    assert {r.headers["X-Faulty-Name"] for r in names} == {"a", "b"}
    assert c.stats()["requests_by_path"]["/three/x"] == 3
    m = metrics(w)
    up_c = f"127.0.0.1:{c.port}"
    assert f'weft_breaker_state{{route="three",upstream="{up_c}"}} 1' in m
    assert 'weft_breaker_state{route="three",upstream=""} 0' in m
    assert f'weft_breaker_state{{route="three",upstream="127.0.0.1:{a.port}"}} 0' in m
    assert (f'weft_breaker_transitions_total{{route="three",upstream="{up_c}",from="closed",'
            f'to="open",reason="consecutive_failures"}} 1') in m
    assert 'weft_breaker_transitions_total{route="three",upstream="",' not in m
    # the admin API shows each instance's own breaker
    ups = get(w.api + "/v1/gateway/upstreams").json()
    inst = {i["port"]: i for i in ups[0]["instances"]}
    assert inst[c.port]["breaker"]["state"] == "open"
    assert inst[c.port]["breaker"]["last_reason"] == "consecutive_failures"
    assert inst[a.port]["breaker"]["state"] == "closed"
    assert inst[a.port]["active"] == 0
    assert ups[0]["breaker"]["state"] == "closed"
    # c recovers; after open_for its trial succeeds and it is picked again
    c.set_fault("off")
    time.sleep(1.1)
    wait_for(lambda: get(w.gw + "/three/x").headers.get("X-Faulty-Name") == "c",
             "c to get traffic again once its breaker half-opens")
    m = metrics(w)
    assert f'weft_breaker_state{{route="three",upstream="{up_c}"}} 0' in m
    for frm, to, why in (("open", "half_open", "open_timeout"),
                         ("half_open", "closed", "half_open_success")):
        assert (f'weft_breaker_transitions_total{{route="three",upstream="{up_c}",from="{frm}",'
                f'to="{to}",reason="{why}"}} 1') in m, (frm, to)
    # and every transition, with its reason and time, in the admin API
    ts = get(w.api + "/v1/gateway/upstreams").json()[0]["transitions"]
    assert [(t["upstream"], t["from"], t["to"], t["reason"]) for t in ts] == [
        (up_c, "closed", "open", "consecutive_failures"),
        (up_c, "open", "half_open", "open_timeout"),
        (up_c, "half_open", "closed", "half_open_success")], ts
    assert all(t["time"].endswith("Z") for t in ts) and ts[0]["time"] <= ts[-1]["time"]


@pytest.mark.parametrize("scope", ["instance", "route"])
def test_breaker_scope(spawn, tmp_path, faulty, scope):
    """circuit_breaker.scope: "instance" makes only the instances' breakers (a failing
    instance is set aside after its own two failures, the route never opens: Envoy's outlier
    detection); "route" only the route's (both instances failing: after two failures the
    route answers 503 itself, and no instance has a breaker)."""
    a, b = faulty("a"), faulty("b")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: two
      match: {{ path_prefix: /two }}
      upstream: {{ targets: [127.0.0.1:{a.port}, 127.0.0.1:{b.port}] }}
      circuit_breaker: {{ consecutive_failures: 2, open_for: 30s, scope: {scope} }}
""")
    b.set_fault("status", status=503, count=100000)
    if scope == "route":
        a.set_fault("status", status=503, count=100000)
    rs = [get(w.gw + "/two/x") for _ in range(12)]
    codes = [r.status_code for r in rs]
    route = get(w.api + "/v1/gateway/routes").json()[0]
    assert route["circuit_breaker"]["scope"] == scope
    up = get(w.api + "/v1/gateway/upstreams").json()[0]
    inst = {i["port"]: i for i in up["instances"]}
    if scope == "instance":
        assert up["breaker"] is None
        assert inst[b.port]["breaker"]["state"] == "open"
        assert inst[a.port]["breaker"]["state"] == "closed"
        assert b.stats()["requests"] == 2  # set aside after its second failure
        assert codes.count(503) == 2 and codes.count(200) == 10, codes
    else:
        assert up["breaker"]["state"] == "open"
        assert inst[a.port]["breaker"] is None and inst[b.port]["breaker"] is None
        assert a.stats()["requests"] + b.stats()["requests"] == 2
        assert codes == [503] * 12
        assert all(r.headers.get("X-Weft-Breaker") == "open" for r in rs[2:])


def test_breaker_failure_on(spawn, tmp_path, faulty):
    """circuit_breaker.failure_on says what a breaker counts: with [429], five 503s leave it
    closed, and two 429s open it (the route's and the instance's)."""
    up = faulty("fo")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: fo
      match: {{ path_prefix: / }}
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      circuit_breaker: {{ consecutive_failures: 2, open_for: 30s, failure_on: [429] }}
""")
    up.reset_stats()  # start_weft's own probe went through the route
    up.set_fault("status", status=503, count=5)
    assert [get(w.gw + "/x").status_code for _ in range(5)] == [503] * 5
    ups = get(w.api + "/v1/gateway/upstreams").json()[0]
    assert ups["breaker"]["state"] == "closed"
    assert ups["instances"][0]["breaker"]["state"] == "closed"
    up.set_fault("status", status=429, count=2)
    assert [get(w.gw + "/x").status_code for _ in range(2)] == [429] * 2
    r = get(w.gw + "/x")
    assert r.status_code == 503 and r.headers["X-Weft-Breaker"] == "open"
    assert up.stats()["requests"] == 7
    ups = get(w.api + "/v1/gateway/upstreams").json()[0]
    assert ups["breaker"]["state"] == "open"
    assert ups["instances"][0]["breaker"]["state"] == "open"


def test_every_instance_open_fails_fast(spawn, tmp_path, faulty):
    """a fails until its breaker opens (b answering meanwhile), then b fails until its own
    opens: with every instance open the gateway answers 503 at once, without asking either,
    with Retry-After, X-Weft-Breaker: open and the JSON body."""
    a, b = faulty("a"), faulty("b")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: both
      match: {{ path_prefix: /both }}
      upstream: {{ targets: [127.0.0.1:{a.port}, 127.0.0.1:{b.port}] }}
      circuit_breaker: {{ consecutive_failures: 3, open_for: 5s, half_open_requests: 1 }}
""")
    a.set_fault("status", status=500, count=100000)

    def asked(up):
        return up.stats()["requests_by_path"].get("/both/x", 0)

    for _ in range(20):  # a gets every other request of each worker: b's answers between
        get(w.gw + "/both/x")
        if asked(a) == 3:
            break
    assert asked(a) == 3
    # a is open: b takes everything (the route's own count of failures in a row starts
    # again), then fails 3 times in a row: it opens too
    rs = [get(w.gw + "/both/x") for _ in range(2)]
    assert [(r.status_code, r.headers["X-Faulty-Name"]) for r in rs] == [(200, "b")] * 2
    b.set_fault("status", status=500, count=100000)
    before = asked(b)
    assert [get(w.gw + "/both/x").status_code for _ in range(3)] == [500] * 3
    assert asked(b) == before + 3 and asked(a) == 3
    t = time.monotonic()
    r = get(w.gw + "/both/x")
    assert time.monotonic() - t < 0.5
    assert r.status_code == 503
    assert r.headers["X-Weft-Breaker"] == "open"
    assert 1 <= int(r.headers["Retry-After"]) <= 5
    assert r.json()["error"] == "circuit breaker open" and r.json()["route"] == "both"
    assert "every upstream instance's breaker is open" in r.json()["detail"]
    assert asked(a) == 3 and asked(b) == before + 3
    m = metrics(w)
    for up in (a, b):
        assert f'weft_breaker_state{{route="both",upstream="127.0.0.1:{up.port}"}} 1' in m
    assert 'weft_gateway_upstream_errors_total{route="both",kind="breaker_open"} 1' in m


def test_max_requests_rejects_exactly_the_excess(spawn, tmp_path, faulty):
    """max_requests: 2 on one slow instance, 5 requests at once (over both workers): 2 go
    through, 3 get 503 at once naming the limit."""
    up = faulty("up")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: lim
      match: {{ path_prefix: /lim }}
      strip_prefix: true
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      circuit_breaker: {{ max_requests: 2 }}
""")
    with concurrent.futures.ThreadPoolExecutor(5) as ex:
        def one(i):
            t = time.monotonic()
            r = requests.get(w.gw + "/lim/delay/1500", timeout=WAIT)
            return r, time.monotonic() - t
        rs = list(ex.map(one, range(5)))
    codes = sorted(r.status_code for r, _ in rs)
    assert codes == [200, 200, 503, 503, 503], codes
    for r, took in rs:
        if r.status_code == 503:
            assert took < 1.0, took
            assert r.headers["X-Weft-Overflow"] == "max_requests"
            assert r.json()["error"] == "upstream overflow"
            assert "max_requests" in r.json()["detail"]
    assert up.stats()["requests_by_path"]["/delay/1500"] == 2
    m = metrics(w)
    assert 'weft_gateway_upstream_errors_total{route="lim",kind="overflow"} 3' in m
    # the admin API shows the limits, as configured and per instance
    route = get(w.api + "/v1/gateway/routes").json()[0]
    assert route["limits"] == {"max_connections": 0, "max_pending_requests": None,
                               "max_requests": 2}
    inst = get(w.api + "/v1/gateway/upstreams").json()[0]["instances"][0]
    assert inst["limits"]["max_requests"] == 2 and inst["active"] == 0
    # the count came back down: two more pass one after the other
    assert [get(w.gw + "/lim/x").status_code for _ in range(2)] == [200, 200]


def test_max_connections_and_pending(spawn, tmp_path, faulty):
    """One worker: max_connections 2 and max_pending_requests 1 on a slow instance; 5
    requests at once: 2 on the two connections, 1 waits for one of them, 2 get 503 naming
    max_pending_requests. The instance never sees more than 2 connections."""
    up = faulty("up")
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: conns
      match: {{ path_prefix: /conns }}
      strip_prefix: true
      upstream: {{ targets: [127.0.0.1:{up.port}] }}
      circuit_breaker: {{ max_connections: 2, max_pending_requests: 1 }}
""", workers=1)
    with concurrent.futures.ThreadPoolExecutor(5) as ex:
        rs = list(ex.map(lambda i: requests.get(w.gw + "/conns/delay/1000", timeout=WAIT),
                         range(5)))
    codes = sorted(r.status_code for r in rs)
    assert codes == [200, 200, 200, 503, 503], codes
    for r in rs:
        if r.status_code == 503:
            assert r.headers["X-Weft-Overflow"] == "max_pending_requests"
            assert r.json()["error"] == "upstream overflow"
    st = up.stats()
    assert st["requests_by_path"]["/delay/1000"] == 3
    assert st["connections_accepted"] <= 2
    m = metrics(w)
    assert 'weft_gateway_upstream_errors_total{route="conns",kind="overflow"} 2' in m


def _register(w, name, id_, port):
    r = requests.put(w.api + "/v1/agent/service/register", timeout=WAIT, json={
        "Name": name, "ID": id_, "Address": "127.0.0.1", "Port": port})
    assert r.status_code == 200, r.text


def test_ring_hash_same_key_same_instance_and_few_move(spawn, tmp_path, faulty):
    """Ring hash on a header over a service's three instances: a key always reaches the same
    instance, from either worker; deregistering one moves only the keys it had (about a
    third), and registering it again brings them back. On the client address (the default)
    every request from here goes to one instance."""
    ups = [faulty(n) for n in ("a", "b", "c")]
    w = start_weft(spawn, tmp_path, """gateway:
  routes:
    - name: ring
      match: { path_prefix: /ring }
      service: ring
      upstream: { lb: ring_hash, hash_on: header:X-User }
    - name: byip
      match: { path_prefix: /byip }
      service: ring
      upstream: { lb: ring_hash }
""")
    routes = get(w.api + "/v1/gateway/routes").json()
    assert [(r["lb"], r.get("hash_on")) for r in routes] == [("ring_hash", "header:X-User"),
                                                            ("ring_hash", "client_ip")]
    for i, up in enumerate(ups):
        _register(w, "ring", f"ring-{i}", up.port)
    wait_for(lambda: len({get(w.gw + "/ring/x", headers={"X-User": f"u{k}"}).headers.get(
        "X-Faulty-Name") for k in range(40)}) == 3, "the three instances to get keys")

    def where(keys):
        out = {}
        for k in keys:
            r = get(w.gw + "/ring/x", headers={"X-User": k})
            assert r.status_code == 200
            out[k] = r.headers["X-Faulty-Name"]
        return out

    keys = [f"user-{k}" for k in range(150)]
    first = where(keys)
    assert where(keys) == first  # new connections each time: both workers, same answer
    counts = {n: list(first.values()).count(n) for n in ("a", "b", "c")}
    assert all(20 <= v <= 90 for v in counts.values()), counts
    # c leaves: only its keys move
    r = requests.put(w.api + "/v1/agent/service/deregister/ring-2", timeout=WAIT)
    assert r.status_code == 200
    wait_for(lambda: all(get(w.gw + "/ring/x", headers={"X-User": k}).headers["X-Faulty-Name"]
                         != "c" for k in keys if first[k] == "c"), "c's keys to move")
    second = where(keys)
    moved = [k for k in keys if second[k] != first[k]]
    assert set(moved) == {k for k in keys if first[k] == "c"}
    assert 0.15 <= len(moved) / len(keys) <= 0.55, len(moved)
    # c is back: the same ring as before
    _register(w, "ring", "ring-2", ups[2].port)
    wait_for(lambda: where(keys[:20]) == {k: first[k] for k in keys[:20]}, "c's keys to return")
    assert where(keys) == first
    # on the client's address: all of this test's requests come from 127.0.0.1
    assert len({get(w.gw + "/byip/x").headers["X-Faulty-Name"] for _ in range(12)}) == 1


def test_ring_hash_moves_on_from_an_open_instance(spawn, tmp_path, faulty):
    """Static targets, ring hash on a header, a breaker: the instance a key maps to fails
    until its breaker opens; the key then goes to the next instance on the ring (the same
    one every time), and keys of the other instances stay where they were."""
    ups = {n: faulty(n) for n in ("a", "b", "c")}
    targets = ", ".join(f"127.0.0.1:{u.port}" for u in ups.values())
    w = start_weft(spawn, tmp_path, f"""gateway:
  routes:
    - name: ring
      match: {{ path_prefix: /ring }}
      upstream: {{ targets: [{targets}], lb: ring_hash, hash_on: "header:X-User" }}
      circuit_breaker: {{ consecutive_failures: 2, open_for: 30s }}
""")

    def at(k):
        r = get(w.gw + "/ring/x", headers={"X-User": k})
        return r.status_code, r.headers.get("X-Faulty-Name")

    keys = [f"k{n}" for n in range(60)]
    first = {k: at(k)[1] for k in keys}
    victim = first["k0"]
    other = next(k for k in keys if first[k] != victim)
    ups[victim].set_fault("status", status=503, count=100000)
    # a success of another key between the two failures: the route's own breaker (same
    # settings, every request) does not see two failures in a row; the instance's does
    assert [at("k0")[0], at(other)[0], at("k0")[0]] == [503, 200, 503]
    then = at("k0")
    assert then[0] == 200 and then[1] != victim
    assert all(at("k0") == then for _ in range(5))
    for k in keys:
        if first[k] != victim:
            assert at(k) == (200, first[k]), k


def test_reload_rebuilds_the_ring_and_keeps_instance_breakers(spawn, tmp_path, faulty):
    """A reload that drops one of three static targets of a ring_hash route (its breaker
    settings unchanged) moves only that target's keys; an instance whose breaker was open
    before the reload is still open after it (its state kept with the route's)."""
    ups = {n: faulty(n) for n in ("a", "b", "c", "d")}

    def config(names):
        targets = ", ".join(f"127.0.0.1:{ups[n].port}" for n in names)
        return f"""gateway:
  routes:
    - name: ring
      match: {{ path_prefix: /ring }}
      upstream: {{ targets: [{targets}], lb: ring_hash, hash_on: "header:X-User" }}
      circuit_breaker: {{ consecutive_failures: 2, open_for: 60s }}
"""
    w = start_weft(spawn, tmp_path, config("abcd"))

    def where(keys):
        out = {}
        for k in keys:
            r = get(w.gw + "/ring/x", headers={"X-User": k})
            out[k] = (r.status_code, r.headers.get("X-Faulty-Name"))
        return out

    keys = [f"user-{k}" for k in range(120)]
    first = where(keys)
    assert all(code == 200 for code, _ in first.values())
    # d's breaker opens: two of its keys fail, with another key's success between them so
    # that the route's own breaker does not open
    dk = [k for k in keys if first[k][1] == "d"]
    ok = next(k for k in keys if first[k][1] != "d")
    ups["d"].set_fault("status", status=503, count=100000)
    codes = [where([dk[0]])[dk[0]][0], where([ok])[ok][0], where([dk[1]])[dk[1]][0]]
    assert codes == [503, 200, 503]
    after_open = where(keys)
    assert all(after_open[k][0] == 200 and after_open[k][1] != "d" for k in dk)
    # reload without c: only c's keys move; d stays open (nothing of d's is asked)
    asked = ups["d"].stats()["requests_by_path"]["/ring/x"]
    (tmp_path / "weft.yaml").write_text(config("abd"))
    r = requests.post(w.api + "/v1/gateway/reload", timeout=WAIT)
    assert r.status_code == 200 and r.json()["summary"]["kept"] == ["ring"], r.text
    second = where(keys)
    for k in keys:
        if after_open[k][1] == "c":
            assert second[k][0] == 200 and second[k][1] in ("a", "b"), k
        else:
            assert second[k] == after_open[k], k
    assert ups["d"].stats()["requests_by_path"]["/ring/x"] == asked
    m = metrics(w)
    assert f'weft_breaker_state{{route="ring",upstream="127.0.0.1:{ups["d"].port}"}} 1' in m


@pytest.mark.parametrize("route,where,what", [
    ("      upstream: { targets: [127.0.0.1:1], lb: random, hash_on: client_ip }\n",
     ":6:64: gateway.routes[0].upstream.hash_on:", "hash_on needs lb: ring_hash"),
    ("      upstream: { targets: [127.0.0.1:1], lb: ring_hash, hash_on: cookie }\n",
     ":6:67: gateway.routes[0].upstream.hash_on:", "client_ip or header:NAME"),
    ("      service: s\n      upstream: { targets: [127.0.0.1:1] }\n",
     ":7:28: gateway.routes[0].upstream.targets:", "not both"),
    ("      upstream: { targets: [127.0.0.1:1] }\n"
     "      circuit_breaker: { max_pending: 1, max_pending_requests: 2 }\n",
     ":7:39: gateway.routes[0].circuit_breaker.max_pending:", "one setting"),
    ("      upstream: { targets: [127.0.0.1:1] }\n"
     "      circuit_breaker: { max_requests: 0 }\n",
     ":7:40: gateway.routes[0].circuit_breaker.max_requests:", "below the minimum 1"),
    ("      upstream: { targets: [127.0.0.1:1] }\n      circuit_breaker: { open_for: 1s }\n",
     ":7:24: gateway.routes[0].circuit_breaker:", "max_requests"),
    ("      upstream: { targets: [127.0.0.1:1] }\n"
     "      circuit_breaker: { consecutive_failures: 1, scope: outlier }\n",
     ":7:58: gateway.routes[0].circuit_breaker.scope:", "both"),
    ("      upstream: { targets: [127.0.0.1:1] }\n"
     "      circuit_breaker: { consecutive_failures: 1, failure_on: [reset, 302] }\n",
     ":7:71: gateway.routes[0].circuit_breaker.failure_on[1]:", "a status 400-599"),
    ("      upstream: { targets: [127.0.0.1:1] }\n"
     "      rate_limit: { algorithm: token_bucket, rate: 1/s, max_keys: 8 }\n",
     ":7:67: gateway.routes[0].rate_limit.max_keys:", "below the minimum 16"),
])
def test_bad_upstream_config_refused(tmp_path, route, where, what):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("gateway:\n  routes:\n    - name: x\n      match: { path: /x }\n"
                   "      timeout: 1s\n" + route)
    r = subprocess.run([str(WEFT), "serve", "--config", str(cfg), "--api", f"127.0.0.1:{free_port()}",
                        "--gateway", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert str(cfg) + where in line and what in line, line
