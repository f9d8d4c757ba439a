"""The registry through the clients people already use: Debian's python3-consul, curl-like
requests, Prometheus's consul_sd_configs. Every test starts a real `weft serve`."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import HELLO, WAIT, WEFT, free_port, get, need_module, need_tool, wait_for


def consul_client(port):
    consul = need_module("consul")
    return consul, consul.Consul(host="127.0.0.1", port=port)


def put(url, **kw):
    kw.setdefault("timeout", WAIT)
    return requests.put(url, **kw)


@pytest.fixture
def reg(spawn, tmp_path):
    """weft serve with the DNS interface on a known port; .dns is that port."""
    port, dns = free_port(), free_port()
    p = spawn([WEFT, "serve", "--api", f"127.0.0.1:{port}", "--dns", f"127.0.0.1:{dns}",
               "--data-dir", tmp_path / "data", "--workers", "2", "--log-level", "warn"],
              port, name="weft")
    p.dns = dns
    p.data = tmp_path / "data"
    return p


class TcpListener:
    """A socket that accepts connections (a TCP check's target); close() makes the port refuse."""

    def __init__(self):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.s.settimeout(0.1)
        while not self.stop:
            try:
                c, _ = self.s.accept()
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.t.join()
        self.s.close()


def health(port, name, passing=False):
    r = get(f"http://127.0.0.1:{port}/v1/health/service/{name}" + ("?passing" if passing else ""))
    assert r.status_code == 200
    return r.json()


def statuses(port, name):
    return {e["Service"]["ID"]: {c["CheckID"]: c["Status"] for c in e["Checks"]}
            for e in health(port, name)}


def test_python_consul_ttl_register_discover_deregister(reg):
    consul, c = consul_client(reg.port)
    assert c.agent.self()["Config"]["Datacenter"] == "dc1"
    assert c.agent.service.register("api", service_id="api-1", address="127.0.0.1", port=9000,
                                    tags=["v1", "blue"], check=consul.Check.ttl("10s"))
    # A new check starts critical, as in Consul: not in ?passing answers
    idx, nodes = c.health.service("api", passing=True)
    assert nodes == []
    assert c.agent.check.ttl_pass("service:api-1", notes="all good")
    idx, nodes = c.health.service("api", passing=True)
    assert [n["Service"]["ID"] for n in nodes] == ["api-1"]
    svc = nodes[0]["Service"]
    assert (svc["Address"], svc["Port"], svc["Tags"]) == ("127.0.0.1", 9000, ["v1", "blue"])
    chk = [k for k in nodes[0]["Checks"] if k["CheckID"] == "service:api-1"][0]
    assert chk["Status"] == "passing" and chk["Output"] == "all good" and chk["Type"] == "ttl"
    # tag filters: repeated tags are ANDed
    assert len(c.health.service("api", tag="blue")[1]) == 1
    r = get(reg.url + "/v1/health/service/api?tag=v1&tag=blue")
    assert len(r.json()) == 1
    r = get(reg.url + "/v1/health/service/api?tag=v1&tag=green")
    assert r.json() == []
    assert c.catalog.services()[1] == {"api": ["v1", "blue"]}
    assert c.catalog.service("api")[1][0]["ServicePort"] == 9000
    assert "api-1" in c.agent.services()
    assert c.agent.checks()["service:api-1"]["Status"] == "passing"
    assert c.agent.check.ttl_warn("service:api-1")
    assert c.health.state("warning")[1][0]["CheckID"] == "service:api-1"
    assert c.agent.check.ttl_fail("service:api-1", notes="down")
    assert c.health.service("api", passing=True)[1] == []
    assert c.agent.service.deregister("api-1")
    assert c.health.service("api")[1] == []
    assert c.catalog.services()[1] == {}


def test_ttl_expiry_turns_critical(reg):
    consul, c = consul_client(reg.port)
    c.agent.service.register("beat", service_id="beat-1", port=1, check=consul.Check.ttl("1s"))
    c.agent.check.ttl_pass("service:beat-1")
    assert statuses(reg.port, "beat")["beat-1"]["service:beat-1"] == "passing"
    t0 = time.monotonic()
    wait_for(lambda: statuses(reg.port, "beat")["beat-1"]["service:beat-1"] == "critical",
             "the TTL check to expire", timeout=5)
    assert time.monotonic() - t0 < 2.5
    out = [k for k in health(reg.port, "beat")[0]["Checks"] if k["CheckID"] == "service:beat-1"]
    assert "TTL expired" in out[0]["Output"]


def test_http_and_tcp_checks(reg, hello):
    consul, c = consul_client(reg.port)
    tcp = TcpListener()
    try:
        c.agent.service.register("hello", service_id="hello-1", address="127.0.0.1",
                                 port=hello.port,
                                 check=consul.Check.http(f"{hello.url}/health", "1s"))
        c.agent.service.register("db", service_id="db-1", address="127.0.0.1", port=tcp.port,
                                 check=consul.Check.tcp("127.0.0.1", tcp.port, "1s"))
        wait_for(lambda: [n["Service"]["ID"] for n in c.health.service("hello", passing=True)[1]]
                 == ["hello-1"], "the HTTP check to pass", timeout=5)
        wait_for(lambda: [n["Service"]["ID"] for n in c.health.service("db", passing=True)[1]]
                 == ["db-1"], "the TCP check to pass", timeout=5)
        out = c.agent.checks()["service:hello-1"]["Output"]
        assert "200" in out, out
        tcp.close()
        wait_for(lambda: statuses(reg.port, "db")["db-1"]["service:db-1"] == "critical",
                 "the TCP check to fail", timeout=5)
        # its history shows the transitions
        hist = c.agent.checks()["service:db-1"]["History"]
        assert [(h["From"], h["To"]) for h in hist][-2:] == [("critical", "passing"),
                                                            ("passing", "critical")]
    finally:
        tcp.close() if not tcp.stop else None


def test_http_check_statuses(reg, spawn):
    """2xx passing, 429 warning, else critical, as Consul reads an HTTP check."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    port = srv.getsockname()[1]
    status = {"code": 200}
    stop = threading.Event()

    def serve():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                cl, _ = srv.accept()
            except OSError:
                continue
            try:
                cl.settimeout(2)
                cl.recv(65536)
                code = status["code"]
                cl.sendall(f"HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                           .encode())
            except OSError:
                pass
            cl.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = put(reg.url + "/v1/agent/service/register",
                json={"Name": "flip", "ID": "flip-1", "Port": port,
                      "Check": {"HTTP": f"http://127.0.0.1:{port}/h", "Interval": "1s"}})
        assert r.status_code == 200, r.text
        st = lambda: statuses(reg.port, "flip")["flip-1"]["service:flip-1"]
        wait_for(lambda: st() == "passing", "passing on 200", timeout=5)
        status["code"] = 429
        wait_for(lambda: st() == "warning", "warning on 429", timeout=5)
        status["code"] = 503
        wait_for(lambda: st() == "critical", "critical on 503", timeout=5)
    finally:
        stop.set()
        t.join()
        srv.close()


def test_blocking_query_wakes_on_change_and_not_on_others(reg):
    consul, c = consul_client(reg.port)
    c.agent.service.register("w", service_id="w-1", port=1, check=consul.Check.ttl("60s"))
    c.agent.service.register("other", service_id="o-1", port=2)
    idx, _ = c.health.service("w")
    result = {}

    def watch():
        t = time.monotonic()
        result["index"], result["nodes"] = c.health.service("w", index=idx, wait="20s")
        result["took"] = time.monotonic() - t

    th = threading.Thread(target=watch)
    th.start()
    time.sleep(0.3)  # the watch is parked by now; a change to another service must not wake it
    c.agent.service.register("other", service_id="o-2", port=3)
    time.sleep(0.3)
    assert "index" not in result, "an unrelated change woke the watch"
    t_change = time.monotonic()
    c.agent.check.ttl_pass("service:w-1")
    th.join(WAIT)
    assert not th.is_alive()
    woke = time.monotonic() - t_change
    assert int(result["index"]) > int(idx)
    assert woke < 0.5, woke
    # timeout: the same index comes back
    t = time.monotonic()
    r = get(reg.url + f"/v1/health/service/w?index={result['index']}&wait=300ms")
    assert 0.25 < time.monotonic() - t < 3
    assert r.headers["X-Consul-Index"] == str(result["index"])


def test_many_waiters_share_one_wakeup(reg):
    consul, c = consul_client(reg.port)
    c.agent.service.register("fan", service_id="fan-1", port=1, check=consul.Check.ttl("60s"))
    idx = get(reg.url + "/v1/health/service/fan").headers["X-Consul-Index"]
    n = 50
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", reg.port))
        s.sendall(f"GET /v1/health/service/fan?index={idx}&wait=30s HTTP/1.1\r\nHost: x\r\n\r\n"
                  .encode())
        socks.append(s)
    time.sleep(0.3)
    c.agent.check.ttl_pass("service:fan-1")
    bodies = set()
    for s in socks:
        s.settimeout(WAIT)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0]
                     .split(b":")[1])
        while len(body) < length:
            body += s.recv(65536)
        assert b"200 OK" in head
        bodies.add(body)
        s.close()
    assert len(bodies) == 1  # every waiter got the same answer
    assert json.loads(bodies.pop())[0]["Checks"][1]["Status"] == "passing"


def test_bad_input_gets_400_naming_the_field_and_changes_nothing(reg):
    base = reg.url + "/v1/agent/service/register"
    before = get(reg.url + "/v1/agent/services").json()
    cases = [
        (b"{not json", "body"),
        ({"ID": "x"}, "Name"),
        ({"Name": "x", "Port": 70000}, "Port"),
        ({"Name": "x", "Port": 0}, "Port"),
        ({"Name": "x", "Port": "80"}, "Port"),
        ({"Name": "x", "Check": {"HTTP": "http://h/", "Interval": "ten seconds"}}, "Check.Interval"),
        ({"Name": "x", "Check": {"Script": "/bin/true", "Interval": "10s"}}, "Check.Script"),
        ({"Name": "x", "Check": {"Interval": "10s"}}, "Check"),
        ({"Name": "x", "Tags": "a"}, "Tags"),
        ({"Name": "x", "Meta": {"k": 1}}, "Meta.k"),
        ({"Name": "x/y"}, "Name"),
        ([1, 2], "body"),
    ]
    for body, field in cases:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = put(base, data=data)
        assert r.status_code == 400, (body, r.status_code, r.text)
        j = r.json()
        assert j["error"].startswith(field), (body, j)
        if ":" in j["error"] and field != "body":
            assert j.get("field") == field, (body, j)
    r = put(reg.url + "/v1/agent/check/register", json={"Name": "c", "TTL": "1y"})
    assert r.status_code == 400 and r.json()["field"] == "TTL"
    r = put(reg.url + "/v1/agent/check/register", json={"Name": "c", "Type": "docker"})
    assert r.status_code == 400 and "unknown check type" in r.json()["error"]
    r = put(reg.url + "/v1/agent/check/pass/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = put(reg.url + "/v1/agent/service/deregister/nope")
    assert r.status_code == 404
    r = get(reg.url + "/v1/health/service/x?index=abc")
    assert r.status_code == 400 and r.json()["field"] == "index"
    r = get(reg.url + "/v1/health/service/x?index=1&wait=forever")
    assert r.status_code == 400 and r.json()["field"] == "wait"
    assert get(reg.url + "/v1/agent/services").json() == before


def test_case_insensitive_keys_and_go_durations(reg):
    r = put(reg.url + "/v1/agent/service/register",
            json={"name": "snake", "id": "snake-1", "port": 7, "tags": ["t"],
                  "check": {"ttl": "1m30s", "deregister_critical_service_after": "120000ms",
                            "check_id": "snk"}})
    assert r.status_code == 200, r.text
    chk = get(reg.url + "/v1/agent/checks").json()["snk"]
    assert chk["ServiceID"] == "snake-1" and chk["TTL"] == "1m30s"
    assert chk["DeregisterCriticalServiceAfter"] == "2m0s"


def test_maintenance_and_check_register(reg):
    consul, c = consul_client(reg.port)
    c.agent.service.register("m", service_id="m-1", port=1, check=consul.Check.ttl("60s"))
    c.agent.check.ttl_pass("service:m-1")
    assert len(c.health.service("m", passing=True)[1]) == 1
    r = put(reg.url + "/v1/agent/service/maintenance/m-1?enable=true&reason=deploy")
    assert r.status_code == 200
    assert c.health.service("m", passing=True)[1] == []
    mc = c.agent.checks()["_service_maintenance:m-1"]
    assert mc["Status"] == "critical" and mc["Notes"] == "deploy"
    r = put(reg.url + "/v1/agent/service/maintenance/m-1?enable=false")
    assert r.status_code == 200
    assert len(c.health.service("m", passing=True)[1]) == 1
    # a second check, registered on its own, then removed
    r = put(reg.url + "/v1/agent/check/register",
            json={"Name": "extra", "ServiceID": "m-1", "TTL": "60s"})
    assert r.status_code == 200, r.text
    assert c.health.service("m", passing=True)[1] == []  # the new check starts critical
    r = put(reg.url + "/v1/agent/check/update/extra",
            json={"Status": "passing", "Output": "fine"})
    assert r.status_code == 200
    assert len(c.health.service("m", passing=True)[1]) == 1
    assert c.agent.check.deregister("extra")
    assert "extra" not in c.agent.checks()
    # replace-existing-checks drops the checks the new registration leaves out
    put(reg.url + "/v1/agent/check/register", json={"Name": "x2", "ServiceID": "m-1", "TTL": "9s"})
    r = put(reg.url + "/v1/agent/service/register?replace-existing-checks=true",
            json={"Name": "m", "ID": "m-1", "Port": 1, "Check": {"TTL": "60s"}})
    assert r.status_code == 200
    assert "x2" not in c.agent.checks()
    assert "service:m-1" in c.agent.checks()


def test_acl_token_guards_writes(spawn, tmp_path):
    port = free_port()
    cfg = tmp_path / "weft.yaml"
    cfg.write_text("acl:\n  token: s3cret\n")
    p = spawn([WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{port}",
               "--data-dir", tmp_path / "d", "--log-level", "warn"], port, name="weft")
    body = {"Name": "guarded", "Port": 1}
    for hdrs, params in [({}, {}), ({"X-Consul-Token": "wrong"}, {}),
                         ({"Authorization": "Bearer nope"}, {}), ({}, {"token": "s3cre"})]:
        r = put(p.url + "/v1/agent/service/register", json=body, headers=hdrs, params=params)
        assert r.status_code == 403, (hdrs, params, r.status_code)
        assert "token" in r.json()["error"]
    assert get(p.url + "/v1/agent/services").json() == {}
    for hdrs, params in [({"X-Consul-Token": "s3cret"}, {}),
                         ({"Authorization": "Bearer s3cret"}, {}), ({}, {"token": "s3cret"})]:
        r = put(p.url + "/v1/agent/service/register", json=body, headers=hdrs, params=params)
        assert r.status_code == 200, (hdrs, params, r.text)
    assert list(get(p.url + "/v1/agent/services").json()) == ["guarded"]
    assert put(p.url + "/v1/agent/service/deregister/guarded").status_code == 403


def test_catalog_survives_restart(spawn, tmp_path):
    port = free_port()
    args = [WEFT, "serve", "--api", f"127.0.0.1:{port}", "--data-dir", tmp_path / "d",
            "--log-level", "warn"]
    p = spawn(args, port, name="first")
    put(p.url + "/v1/agent/service/register",
        json={"Name": "keep", "ID": "keep-1", "Port": 5, "Meta": {"v": "2"},
              "Check": {"TTL": "60s", "Status": "passing"}})
    idx = int(get(p.url + "/v1/health/service/keep").headers["X-Consul-Index"])
    assert p.stop() == 0
    p2 = spawn(args, port, name="second")
    e = health(port, "keep")
    assert e[0]["Service"]["Meta"] == {"v": "2"}
    assert e[0]["Checks"][1]["Status"] == "passing"
    # indexes only grow across restarts
    assert int(get(p2.url + "/v1/health/service/keep").headers["X-Consul-Index"]) > idx


def test_kill_9_after_200_loses_nothing(spawn, tmp_path):
    """1,000 registrations, kill -9 right after the last 200 OK, restart: all 1,000 are there."""
    port = free_port()
    args = [WEFT, "serve", "--api", f"127.0.0.1:{port}", "--data-dir", tmp_path / "d",
            "--log-level", "warn"]
    p = spawn(args, port, name="first")
    s = requests.Session()
    errors = []

    def worker(k):
        for i in range(k, 1000, 8):
            r = s.put(p.url + "/v1/agent/service/register",
                      json={"Name": f"svc{i % 10}", "ID": f"inst-{i}", "Port": 1000 + i},
                      timeout=WAIT)
            if r.status_code != 200:
                errors.append(r.text)

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    assert not errors
    os.kill(p.proc.pid, signal.SIGKILL)
    p.proc.wait()
    p.expect_exit = -signal.SIGKILL
    p2 = spawn(args, port, name="second")
    assert len(get(p2.url + "/v1/agent/services").json()) == 1000


def test_event_stream(reg):
    r = requests.get(reg.url + "/v1/weft/events", stream=True, timeout=WAIT)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    lines = r.iter_lines(decode_unicode=True)
    events = []

    def read_event():
        ev = {}
        for line in lines:
            if line == "":
                if ev:
                    return ev
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(": ")
            ev[k] = v
        return ev

    assert read_event()["event"] == "hello"
    put(reg.url + "/v1/agent/service/register",
        json={"Name": "ev", "ID": "ev-1", "Port": 3, "Check": {"TTL": "60s"}})
    put(reg.url + "/v1/agent/check/pass/service:ev-1")
    put(reg.url + "/v1/agent/service/deregister/ev-1")
    while len(events) < 3:
        events.append(read_event())
    assert [e["event"] for e in events] == ["register", "health", "deregister"]
    d = json.loads(events[1]["data"])
    assert (d["ServiceID"], d["From"], d["To"]) == ("ev-1", "critical", "passing")
    assert int(events[2]["id"]) > int(events[0]["id"])
    r.close()


def prometheus_has_consul_sd(prom):
    """Debian 12's Prometheus (2.42.0+ds) is built with Consul SD disabled ("until its Debian
    package is back in shape", its changelog says): consul_sd_configs is not a known key."""
    r = subprocess.run(["strings", prom], capture_output=True, text=True)
    return "discovery/consul" in r.stdout


def test_prometheus_discovers_hello_through_weft(spawn, reg, hello, tmp_path):
    """Debian's Prometheus, pointed at weft, finds a registered examples/hello and scrapes it:
    with consul_sd_configs where the Prometheus build has Consul SD, else (Debian 12's build)
    with http_sd_configs against /v1/weft/prometheus-sd, which labels targets as consul_sd
    does."""
    consul, c = consul_client(reg.port)
    c.agent.service.register("hello", service_id="hello-1", address="127.0.0.1", port=hello.port,
                             tags=["demo"], check=consul.Check.http(f"{hello.url}/health", "1s"))
    prom = need_tool("prometheus")
    if prometheus_has_consul_sd(prom):
        sd = f"""consul_sd_configs:
      - server: '127.0.0.1:{reg.port}'
        refresh_interval: 1s"""
    else:
        sd = f"""http_sd_configs:
      - url: 'http://127.0.0.1:{reg.port}/v1/weft/prometheus-sd'
        refresh_interval: 1s"""
    prom_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: weft-registry
    {sd}
    relabel_configs:
      - source_labels: [__meta_consul_service]
        target_label: service
      - source_labels: [__meta_consul_tags]
        target_label: tags
""")
    spawn([prom, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
           f"--web.listen-address=127.0.0.1:{prom_port}"], prom_port, name="prometheus")
    base = f"http://127.0.0.1:{prom_port}"
    found = {}

    def scraped():
        try:
            q = requests.get(base + "/api/v1/query", params={"query": 'up{service="hello"}'},
                             timeout=2).json()
            res = q["data"]["result"]
            if res and res[0]["value"][1] == "1":
                found.update(res[0]["metric"])
                return True
        except (requests.RequestException, KeyError, ValueError):
            pass
        return False

    wait_for(scraped, "Prometheus to discover and scrape hello through weft", timeout=60,
             interval=0.5)
    assert found["instance"] == f"127.0.0.1:{hello.port}"
    assert found["tags"] == ",demo,"
    # what it scraped is hello's own metrics
    q = requests.get(base + "/api/v1/query",
                     params={"query": 'http_requests_total{service="hello"}'}, timeout=5).json()
    assert q["data"]["result"]


def test_prometheus_sd_endpoint(reg):
    put(reg.url + "/v1/agent/service/register",
        json={"Name": "p", "ID": "p-1", "Address": "10.0.0.1", "Port": 9100, "Tags": ["x", "y"],
              "Meta": {"team": "core", "a-b": "1"}, "Check": {"TTL": "60s"}})
    put(reg.url + "/v1/agent/service/register", json={"Name": "q", "ID": "q-1", "Port": 9200})
    assert [g["targets"] for g in get(reg.url + "/v1/weft/prometheus-sd").json()] \
        == [["127.0.0.1:9200"]]  # p-1 is critical (its TTL check has not passed)
    groups = get(reg.url + "/v1/weft/prometheus-sd?passing=false&service=p").json()
    assert len(groups) == 1
    g = groups[0]
    assert g["targets"] == ["10.0.0.1:9100"]
    l = g["labels"]
    assert l["__meta_consul_service"] == "p" and l["__meta_weft_service_id"] == "p-1"
    assert l["__meta_consul_tags"] == ",x,y,"
    assert l["__meta_consul_service_metadata_team"] == "core"
    assert l["__meta_consul_service_metadata_a_b"] == "1"
    assert l["__meta_weft_health"] == "critical"


def go_types_ok(entry):
    """The fields of a /v1/health/service entry that Prometheus's Consul SD decodes (with
    github.com/hashicorp/consul/api's structs: Go's decoder fails the whole answer on a type
    that does not match), with the JSON types those structs need."""
    def strmap(v):
        return v is None or (isinstance(v, dict) and all(isinstance(x, str) for x in v.values()))
    n, s = entry["Node"], entry["Service"]
    assert isinstance(n["Node"], str) and isinstance(n["Address"], str)
    assert strmap(n.get("Meta")) and strmap(n.get("TaggedAddresses"))
    assert isinstance(s["ID"], str) and isinstance(s["Service"], str)
    assert isinstance(s["Address"], str) and type(s["Port"]) is int
    assert s["Tags"] is None or all(isinstance(t, str) for t in s["Tags"])
    assert strmap(s.get("Meta"))
    for k in ("CreateIndex", "ModifyIndex"):
        assert type(n[k]) is int and type(s[k]) is int
    w = s.get("Weights")
    assert w is None or (type(w["Passing"]) is int and type(w["Warning"]) is int)
    for c in entry["Checks"]:
        assert isinstance(c["Status"], str) and isinstance(c["CheckID"], str)
        assert isinstance(c.get("Definition", {}), dict)


def test_consul_sd_protocol(reg):
    """What Prometheus's consul_sd_configs does (discovery/consul/consul.go, v2.42), replayed
    request by request, since Debian 12's Prometheus is built without Consul SD: the
    datacenter from /v1/agent/self; the catalog's services as a blocking query with Go's
    wait=30000ms; each service's /v1/health/service/NAME (every instance, tags ANDed, as a
    blocking query too); the labels it builds from those answers. weft's
    /v1/weft/prometheus-sd (what the Prometheus test uses instead) must give the same
    targets and __meta_consul_* labels."""
    base = reg.url
    dc = get(base + "/v1/agent/self").json()["Config"]["Datacenter"]
    assert isinstance(dc, str) and dc
    r = get(base + "/v1/catalog/services?wait=30000ms")
    idx = int(r.headers["X-Consul-Index"])
    put(base + "/v1/agent/service/register",
        json={"Name": "api", "ID": "api-1", "Address": "10.1.0.1", "Port": 9100,
              "Tags": ["prod", "v2"], "Meta": {"team": "core"}, "Check": {"TTL": "60s"}})
    put(base + "/v1/agent/service/register",
        json={"Name": "api", "ID": "api-2", "Port": 9101, "Tags": ["prod"]})
    put(base + "/v1/agent/service/register",
        json={"Name": "api", "ID": "api-3", "Port": 9102, "Tags": ["prod"]})
    assert put(base + "/v1/agent/service/maintenance/api-3?enable=true&reason=x").status_code \
        == 200
    t = time.monotonic()
    r = get(base + f"/v1/catalog/services?index={idx}&wait=30000ms")
    assert time.monotonic() - t < 5 and int(r.headers["X-Consul-Index"]) > idx
    services = r.json()
    assert sorted(services["api"]) == ["prod", "v2"]
    for tags in ([], ["prod"], ["prod", "v2"]):
        q = "".join(f"&tag={t}" for t in tags)
        r = get(base + f"/v1/health/service/api?wait=30000ms{q}")
        entries = r.json()
        for e in entries:
            go_types_ok(e)
        want = {}
        for e in entries:  # consul.go's watch(), label by label
            n, s = e["Node"], e["Service"]
            addr = f"{s['Address'] or n['Address']}:{s['Port']}"
            # Go's HealthChecks.AggregatedStatus: maintenance by check ID, then the worst
            statuses = [c["Status"] for c in e["Checks"]]
            maint = any(c["CheckID"] == "_node_maintenance" or
                        c["CheckID"].startswith("_service_maintenance:") for c in e["Checks"])
            health = "maintenance" if maint else next(
                (st for st in ("critical", "warning") if st in statuses), "passing")
            labels = {"service": "api", "dc": dc, "address": n["Address"], "node": n["Node"],
                      "tags": "," + ",".join(s["Tags"] or []) + ",",
                      "service_address": s["Address"], "service_port": str(s["Port"]),
                      "service_id": s["ID"], "health": health}
            for k, v in (n.get("Meta") or {}).items():
                labels["metadata_" + k] = v
            for k, v in (s.get("Meta") or {}).items():
                labels["service_metadata_" + k] = v
            for k, v in (n.get("TaggedAddresses") or {}).items():
                labels["tagged_address_" + k] = v
            want[addr] = labels
        assert len(want) == (1 if "v2" in tags else 3)
        assert sorted(l["health"] for l in want.values()) == \
            (["critical"] if "v2" in tags else ["critical", "maintenance", "passing"])
        got = {}
        for g in get(base + f"/v1/weft/prometheus-sd?passing=false&service=api{q}").json():
            assert len(g["targets"]) == 1
            got[g["targets"][0]] = {k[len("__meta_consul_"):]: v for k, v in g["labels"].items()
                                    if k.startswith("__meta_consul_")}
        assert got == want
    # the unchanged service's watch times out with its index (Go's WaitTime, capped)
    r = get(base + "/v1/health/service/api")
    i = r.headers["X-Consul-Index"]
    t = time.monotonic()
    r = get(base + f"/v1/health/service/api?index={i}&wait=500ms")
    assert 0.4 < time.monotonic() - t < 5 and r.headers["X-Consul-Index"] == i


def test_dns_with_dig(reg, hello):
    dig = need_tool("dig")
    consul, c = consul_client(reg.port)
    c.agent.service.register("web", service_id="web-1", address="127.0.0.1", port=8081,
                             tags=["primary"], check=consul.Check.ttl("60s"))
    c.agent.service.register("web", service_id="web-2", address="127.0.0.2", port=8082,
                             check=consul.Check.ttl("60s"))
    c.agent.check.ttl_pass("service:web-1")
    c.agent.check.ttl_pass("service:web-2")

    def q(*args):
        r = subprocess.run([dig, "@127.0.0.1", "-p", str(reg.dns), "+short", "+time=2",
                            "+tries=1", *args], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr + r.stdout
        return sorted(r.stdout.split("\n")[:-1])

    assert q("web.service.consul", "A") == ["127.0.0.1", "127.0.0.2"]
    assert q("primary.web.service.consul", "A") == ["127.0.0.1"]
    assert q("web.service.dc1.consul", "A") == ["127.0.0.1", "127.0.0.2"]
    srv = q("web.service.consul", "SRV")
    assert len(srv) == 2 and all(l.split()[2] in ("8081", "8082") for l in srv)
    # only passing instances
    c.agent.check.ttl_fail("service:web-2")
    assert q("web.service.consul", "A") == ["127.0.0.1"]
    assert q("+tcp", "web.service.consul", "A") == ["127.0.0.1"]
    r = subprocess.run([dig, "@127.0.0.1", "-p", str(reg.dns), "+time=2", "+tries=1",
                        "nope.service.consul"], capture_output=True, text=True, timeout=20)
    assert "NXDOMAIN" in r.stdout and "SOA" in r.stdout


def test_deregister_critical_service_after(reg):
    """An instance whose check stays critical for DeregisterCriticalServiceAfter is reaped."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]  # bound, never listening: connections are refused
    try:
        r = put(reg.url + "/v1/agent/service/register",
                json={"Name": "doomed", "ID": "doomed-1", "Port": dead,
                      "Check": {"TCP": f"127.0.0.1:{dead}", "Interval": "1s",
                                "DeregisterCriticalServiceAfter": "1s"}})
        assert r.status_code == 200
        put(reg.url + "/v1/agent/service/register",
            json={"Name": "doomed", "ID": "doomed-2", "Port": 1, "Check": {"TTL": "60s",
                                                                          "Status": "passing"}})
        t0 = time.monotonic()
        wait_for(lambda: [e["Service"]["ID"] for e in health(reg.port, "doomed")] == ["doomed-2"],
                 "the critical instance to be deregistered", timeout=8)
        assert time.monotonic() - t0 < 5
    finally:
        s.close()


def test_a_check_that_starts_critical_and_stays_says_why(reg):
    """Its first result keeps the status (critical) and is still shown, with its output."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    try:
        put(reg.url + "/v1/agent/service/register",
            json={"Name": "down", "ID": "down-1", "Port": dead,
                  "Check": {"TCP": f"127.0.0.1:{dead}", "Interval": "1s"}})
        idx = get(reg.url + "/v1/health/service/down").headers["X-Consul-Index"]
        out = lambda: get(reg.url + "/v1/agent/checks").json()["service:down-1"]["Output"]
        wait_for(lambda: "refused" in out(), "the first result's output", timeout=5)
        # no status changed: the service's index did not move
        assert get(reg.url + "/v1/health/service/down").headers["X-Consul-Index"] == idx
    finally:
        s.close()
