"""The C SDK and the registry together: `examples/hello --registry URL` registers itself with
a real `weft serve`, calls other instances by name through its discovery client
(GET /call/SERVICE/PATH, GET /broadcast/SERVICE/PATH), and deregisters on SIGTERM.

Every test starts weft serve (API and DNS on free ports, its own data directory) and hellos
with short check intervals; every wait is for an event (a catalog state, a process exit)
bounded by conftest.WAIT or by the bound under test.
"""
import json
import signal
import time

import pytest
import requests

from conftest import HELLO, WAIT, WEFT, free_port, get, tail, wait_for


def start_weft(spawn, data, port=None):
    port = port or free_port()
    p = spawn([WEFT, "serve", "--api", f"127.0.0.1:{port}", "--dns", f"127.0.0.1:{free_port()}",
               "--data-dir", data, "--workers", "2", "--log-level", "warn"], port, name="weft")
    p.registry = f"http://127.0.0.1:{port}"
    return p


@pytest.fixture
def reg(spawn, tmp_path):
    return start_weft(spawn, tmp_path / "data")


def start_hello(spawn, registry, *extra, wait=True, port=None):
    port = port or free_port()
    p = spawn([HELLO, "--name", "hello", "--port", port, "--workers", "2", "--log-level", "info",
               "--registry", registry, "--registry-check-interval", "1s", *extra], port,
              name="hello", wait=wait)
    p.id = f"hello-127.0.0.1-{port}"
    return p


def health(reg, name="hello", passing=False):
    r = get(f"{reg.url}/v1/health/service/{name}" + ("?passing" if passing else ""))
    assert r.status_code == 200, r.text
    return r.json()


def passing_ids(reg, name="hello"):
    return sorted(e["Service"]["ID"] for e in health(reg, name, passing=True))


def service_check(entry):
    return [c for c in entry["Checks"] if c["CheckID"] == "service:" + entry["Service"]["ID"]][0]


def requests_served(hello, route="/hello/:name"):
    """http_requests_total of route (200s) from the instance's /metrics."""
    text = get(hello.url + "/metrics").text
    key = f'http_requests_total{{method="GET",route="{route}",code="200"}} '
    for line in text.splitlines():
        if line.startswith(key):
            return int(float(line[len(key):]))
    return 0


@pytest.fixture
def two(spawn, reg):
    """Two hellos registered with reg and passing their HTTP checks."""
    a = start_hello(spawn, reg.registry)
    b = start_hello(spawn, reg.registry)
    wait_for(lambda: passing_ids(reg) == sorted([a.id, b.id]), "both hellos passing")
    return a, b


def test_both_register_and_pass_their_http_checks(reg, two):
    a, b = two
    entries = {e["Service"]["ID"]: e for e in health(reg, passing=True)}
    for h in (a, b):
        svc = entries[h.id]["Service"]
        assert (svc["Service"], svc["Address"], svc["Port"]) == ("hello", "127.0.0.1", h.port)
        assert svc["Meta"]["version"] == "0.1.0"
        chk = service_check(entries[h.id])
        assert chk["Type"] == "http" and chk["Status"] == "passing"
        assert "registered" in tail(h.log, 1 << 20)
    checks = get(reg.url + "/v1/agent/checks").json()
    assert checks[f"service:{a.id}"]["Interval"] == "1s"


def test_call_by_name_alternates_across_instances(reg, two):
    a, b = two
    before = {h.id: requests_served(h) for h in two}
    seen = []
    with requests.Session() as s:  # one connection: one worker, one round-robin counter
        for _ in range(6):
            r = s.get(a.url + "/call/hello/hello/x", timeout=WAIT)
            assert r.status_code == 200, r.text
            assert r.text == "hello, x\n"
            assert r.headers["Content-Type"] == "text/plain"
            seen.append(r.headers["X-Weft-Instance"])
    assert set(seen) == {a.id, b.id}
    assert all(seen[i] != seen[i + 1] for i in range(5)), seen  # round robin
    after = {h.id: requests_served(h) for h in two}
    assert {k: after[k] - before[k] for k in after} == {a.id: 3, b.id: 3}
    # the query string goes along; an unknown service is 503 at once
    r = get(a.url + "/call/hello/hello/q?x=1")
    assert r.status_code == 200 and r.text == "hello, q\n"
    t = time.monotonic()
    r = get(a.url + "/call/nope/x")
    assert r.status_code == 503 and r.json()["error"] == "ENOENT"
    assert time.monotonic() - t < 2


def test_broadcast_reaches_every_instance(reg, two):
    a, b = two
    r = get(b.url + "/broadcast/hello/hello/all")
    assert r.status_code == 200, r.text
    got = r.json()
    assert [(x["instance"], x["status"], x["body"]) for x in got] == \
        sorted([(a.id, 200, "hello, all\n"), (b.id, 200, "hello, all\n")])
    # "*": every service of the catalog
    r = get(b.url + "/broadcast/*/health")
    assert r.status_code == 200, r.text
    hellos = [x for x in r.json() if x["service"] == "hello"]
    assert sorted(x["instance"] for x in hellos) == sorted([a.id, b.id])
    assert all(json.loads(x["body"])["status"] == "passing" for x in hellos)


def test_sigterm_deregisters_before_the_process_exits(reg, two):
    a, b = two
    assert b.stop() == 0
    # the process has exited: the registry must already have let it go
    assert [e["Service"]["ID"] for e in health(reg)] == [a.id]
    assert "deregistered" in tail(b.log, 1 << 20)
    # a caller's cache follows (the blocking query wakes on the deregistration)
    wait_for(lambda: [x["instance"] for x in get(a.url + "/broadcast/hello/hello/x").json()]
             == [a.id], "the caller's cache without the stopped instance")
    for _ in range(4):
        r = get(a.url + "/call/hello/hello/x")
        assert r.status_code == 200 and r.headers["X-Weft-Instance"] == a.id


def test_drain_deregisters_first(spawn, reg, tmp_path):
    """With http.shutdown_delay, SIGTERM deregisters at once, while the instance still serves
    (callers stop choosing it during the drain); a second SIGTERM ends it."""
    cfg = tmp_path / "hello.yaml"
    cfg.write_text("http:\n  shutdown_delay: 30s\n")
    a = start_hello(spawn, reg.registry)
    b = start_hello(spawn, reg.registry, "--config", cfg)
    wait_for(lambda: passing_ids(reg) == sorted([a.id, b.id]), "both hellos passing")
    b.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: [e["Service"]["ID"] for e in health(reg)] == [a.id],
             "deregistered when the drain began")
    assert b.proc.poll() is None, "exited before the drain was over"
    r = get(b.url + "/health")
    assert r.status_code == 503 and r.json()["status"] == "draining"
    assert get(b.url + "/hello/still").text == "hello, still\n"
    assert b.stop() == 0  # the second SIGTERM skips the rest of the delay
    assert tail(b.log, 1 << 20).count("msg=deregistered") == 1


def test_killed_instance_turns_critical_and_is_not_chosen(reg, two):
    a, b = two
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(WAIT)
    b.expect_exit = -signal.SIGKILL
    t0 = time.monotonic()

    def b_status():
        return [service_check(e)["Status"] for e in health(reg) if e["Service"]["ID"] == b.id]

    wait_for(lambda: b_status() == ["critical"], "the killed instance's check to fail",
             timeout=5)
    took = time.monotonic() - t0
    assert took < 1.0 + 1.0, f"critical after {took:.2f} s (interval 1 s)"
    # the caller's cache drops it: broadcasts list only passing instances
    wait_for(lambda: [x["instance"] for x in get(a.url + "/broadcast/hello/hello/x").json()]
             == [a.id], "the caller's cache without the killed instance", timeout=2)
    with requests.Session() as s:
        for _ in range(4):
            r = s.get(a.url + "/call/hello/hello/x", timeout=WAIT)
            assert r.status_code == 200 and r.headers["X-Weft-Instance"] == a.id


def parked(w):
    """weft_registry_blocking_queries: blocking queries parked at registry w now."""
    for line in get(w.url + "/metrics").text.splitlines():
        if line.startswith("weft_registry_blocking_queries "):
            return int(float(line.split()[1]))
    return 0


def uptime(h):
    return get(h.url + "/health").json()["uptime_seconds"]


def test_ttl_mode_heartbeats(spawn, reg):
    """--registry-check ttl: the service reports its own health every interval (1 s) and the
    registry's TTL is three intervals: it stays passing well past one TTL."""
    h = start_hello(spawn, reg.registry, "--registry-check", "ttl")
    wait_for(lambda: passing_ids(reg) == [h.id], "the TTL-checked hello passing")

    def check():
        return get(reg.url + "/v1/agent/checks").json()[f"service:{h.id}"]

    assert check()["Type"] == "ttl"
    # (a heartbeat that keeps the status is not published on its own: its output may not
    # show; the check staying passing past its TTL is what shows the heartbeats)
    wait_for(lambda: uptime(h) > 4.5, "past one TTL (3 s) and a half")
    chk = check()
    assert chk["Status"] == "passing", chk
    assert all(x["To"] != "critical" for x in chk["History"]), chk["History"]


def test_registers_once_the_registry_comes_and_again_after_it_lost_it(spawn, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    h = start_hello(spawn, url, "--registry-resync", "1s")
    wait_for(lambda: "cannot register with the registry; retrying" in tail(h.log, 1 << 20),
             "a failed registration logged")
    w1 = start_weft(spawn, tmp_path / "data1", port)
    wait_for(lambda: passing_ids(w1) == [h.id], "registered once the registry came")
    r = get(h.url + "/call/hello/hello/one")  # a cache entry, its query parked at w1
    assert r.status_code == 200 and r.text == "hello, one\n"
    # a registry that comes back without its data: the look-up (every 1 s) finds it gone
    assert w1.stop() == 0
    w2 = start_weft(spawn, tmp_path / "data2", port)
    wait_for(lambda: passing_ids(w2) == [h.id], "registered again")
    assert "registered again" in tail(h.log, 1 << 20)
    # the discovery client's watch found the new registry too: its query is parked there
    wait_for(lambda: parked(w2) >= 1, "the watch parked at the new registry")
    r = get(h.url + "/call/hello/hello/two")
    assert r.status_code == 200 and r.text == "hello, two\n"


def test_everything_stopped_at_once(spawn, reg):
    """weft serve and its registered instances get SIGTERM together (docker compose down):
    the instances' deregistrations arrive while weft serve shuts down. Each is answered (a
    503 once the registry has stopped, or 200), and weft serve exits at once: before, the
    answers could not reach the worker that held the request (its post queue closed at the
    stop), so weft serve waited its whole 10 s shutdown timeout and leaked the requests."""
    hellos = [start_hello(spawn, reg.registry) for _ in range(4)]
    wait_for(lambda: passing_ids(reg) == sorted(h.id for h in hellos), "four hellos passing")
    for p in [reg, *hellos]:
        p.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    for p in [reg, *hellos]:
        assert p.stop(timeout=15) == 0
    took = time.monotonic() - t0
    log = tail(reg.log, 1 << 20)
    assert "worker is gone" not in log, log
    assert took < 5, f"weft serve and the hellos took {took:.1f}s to stop: {log}"
