"""`weft demo` started for real on free ports: weft serve, four examples/hello instances
registered with its registry (frontend -> orders -> inventory, two of inventory, one made
to fail with hello --fail-rate), the gateway's routes to them, the demo's own trickle of
traffic, spans from every service in weft's trace store; SIGINT and SIGTERM stop every
process it started (none is left, in its process group or by pid) with exit status 0. Also
its usage errors (exit 2) and hello's --fail-rate on its own."""
import os
import pathlib
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import (HELLO, WAIT, WEFT, assert_no_sanitizer_report, free_port, get,
                      sanitizer_env, tail, wait_for)

# The demo's start: weft serve, four hellos, every check passing (2 s interval) under ASan
# on a busy machine; far less on this one (3-5 s).
START = 40.0


def pgroup_members(pgid):
    """PIDs of the live processes (not zombies) whose process group is pgid."""
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(d.name))
    return out


def alive(pid):
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class Demo:
    """A started `weft demo`: its stdout read line by line by a thread (.lines), what it
    said it started (.pids by name, .pgid, .ports by instance ID), its ports."""

    def __init__(self, tmp_path, *extra, data_dir=True, env=None):
        self.api, self.gw, self.otlp, self.zipkin = (free_port() for _ in range(4))
        self.data = tmp_path / "demo-data" if data_dir else None
        self.err_path = tmp_path / "demo.err"
        args = [WEFT, "demo", "--api-port", self.api, "--gateway-port", self.gw,
                "--otlp-port", self.otlp, "--zipkin-port", self.zipkin, "--dns-port", 0,
                *extra]
        if self.data:
            args += ["--data-dir", self.data]
        args += ["--", "--workers", "2"]
        self.errf = open(self.err_path, "wb")
        e = sanitizer_env(env)
        # its own session: the test's signals go to the demo alone, as a terminal's would
        self.proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                                     stderr=self.errf, stdin=subprocess.DEVNULL, env=e,
                                     start_new_session=True, text=True)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.pids, self.ports, self.pgid, self.data_line = {}, {}, None, None

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of output
            self.cond.notify_all()

    def wait_line(self, pattern, timeout):
        """The first line of output matching the regex, waiting for it up to timeout s."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line is None:
                        raise AssertionError(f"the demo ended (status {self.proc.wait()}) "
                                             f"before printing {pattern!r}:\n"
                                             f"{self.out()}\n{tail(self.err_path)}")
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                assert left > 0, (f"no line {pattern!r} within {timeout} s:\n{self.out()}\n"
                                  f"{tail(self.err_path)}")
                self.cond.wait(left)

    def out(self):
        with self.cond:
            return "\n".join(line for line in self.lines if line is not None)

    def wait_started(self):
        self.wait_line(r"^Ctrl-C stops everything", START)
        text = self.out()
        self.pgid = int(re.search(r"started \(process group (\d+)\)", text).group(1))
        for m in re.finditer(r"^  (weft serve|\S+-\d)\s+pid (\d+)\s+(.*)$", text, re.M):
            self.pids[m.group(1)] = int(m.group(2))
            port = re.search(r"http://127\.0\.0\.1:(\d+)", m.group(3))
            self.ports[m.group(1)] = int(port.group(1))
        assert set(self.pids) == {"weft serve", "frontend-1", "orders-1", "inventory-1",
                                  "inventory-2"}, text
        assert self.ports["weft serve"] == self.api
        assert f"dashboard: http://127.0.0.1:{self.api}/ui/" in text
        self.data_line = re.search(r"^  data\s+(\S+)", text, re.M).group(1)

    def url(self, path):
        return f"http://127.0.0.1:{self.api}{path}"

    def stop(self, sig, timeout=30):
        """Sends sig to the demo and returns its exit status (within timeout s)."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def close(self):
        """Teardown: whatever still runs is stopped (SIGTERM, then SIGKILL to the demo and
        its children's group), so that a failing test leaves nothing behind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.pgid:
            for pid in pgroup_members(self.pgid):
                os.kill(pid, signal.SIGKILL)
        self.reader.join(timeout=WAIT)
        self.errf.close()

    def check_clean(self):
        """No sanitizer report from the demo or (when its data directory is kept) from any
        process it started."""
        assert_no_sanitizer_report(tail(self.err_path, 1 << 24), self.err_path)
        if self.data:
            for log in self.data.glob("*.log"):
                assert_no_sanitizer_report(tail(log, 1 << 24), log)


@pytest.fixture
def demo(tmp_path):
    made = []

    def _start(*extra, **kw):
        d = Demo(tmp_path, *extra, **kw)
        made.append(d)
        return d

    yield _start
    for d in made:
        d.close()
        d.check_clean()


def gateway_counts(d):
    """weft_gateway_requests_total from the API's /metrics: {(route, upstream, code): n}."""
    text = get(d.url("/metrics")).text
    out = {}
    for m in re.finditer(r'^weft_gateway_requests_total\{route="([^"]*)",upstream="([^"]*)",'
                         r'code="(\d+)"\} (\d+)', text, re.M):
        out[(m.group(1), m.group(2), m.group(3))] = int(m.group(4))
    return out


def assert_all_gone(d, timeout=5):
    """Every process the demo said it started has ended, and its group is empty."""
    def gone():
        return not pgroup_members(d.pgid) and not any(alive(p) for p in d.pids.values())
    wait_for(gone, f"the demo's processes ({d.pids}, group {d.pgid}) to be gone",
             timeout=timeout)


def test_demo_runs_everything_and_sigint_stops_it(demo):
    # more traffic and failures than the defaults (4/s, 0.2), so that inventory-2's first
    # failure through its route (1 request in 4, half of them to it) comes within seconds
    d = demo("--rate", "10", "--fail-rate", "0.5")
    d.wait_started()
    assert re.search(r"^  inventory-2 .* fails 50% of its requests \(500\)$", d.out(), re.M)
    assert "  traffic      10 requests/s through the gateway" in d.out()

    # the registry: three services, four instances passing, the flaky one tagged so
    services = get(d.url("/v1/catalog/services")).json()
    assert {"frontend", "orders", "inventory"} <= set(services), services
    assert "flaky" in services["inventory"]
    inv = get(d.url("/v1/health/service/inventory?passing")).json()
    assert sorted(e["Service"]["ID"] for e in inv) == ["inventory-1", "inventory-2"]
    assert {e["Service"]["Port"] for e in inv} == {d.ports["inventory-1"], d.ports["inventory-2"]}
    for name in ("frontend", "orders"):
        got = get(d.url(f"/v1/health/service/{name}?passing")).json()
        assert [e["Service"]["ID"] for e in got] == [f"{name}-1"], got

    # traffic flows without this test sending any: the gateway's counts grow by themselves
    before = sum(gateway_counts(d).values())
    wait_for(lambda: sum(gateway_counts(d).values()) >= before + 6,
             "the demo's traffic through the gateway", timeout=15, interval=0.2)

    # the failing instance fails, the other instance of its service never does (the route
    # inventory reaches them straight)
    bad = f"127.0.0.1:{d.ports['inventory-2']}"
    good = f"127.0.0.1:{d.ports['inventory-1']}"

    def both_answered():  # the first requests may all go to one of them (a slow start)
        c = gateway_counts(d)
        return (c.get(("inventory", bad, "500"), 0) > 0 and
                c.get(("inventory", good, "200"), 0) > 0 and c)
    c = wait_for(both_answered, "a 500 from inventory-2 and a 200 from inventory-1 through "
                 "the gateway", timeout=20, interval=0.5)
    assert not any(code.startswith("5") for (route, up, code) in c if up == good), c
    wait_for(lambda: any(code == "500" for (route, up, code) in gateway_counts(d)
                         if route == "frontend"),
             "inventory-2's failures to reach the gateway through orders and frontend",
             timeout=20, interval=0.5)

    # the gateway's routes answer (a request of the test's own)
    r = get(f"http://127.0.0.1:{d.gw}/hello/visitor")
    assert r.status_code == 200 and r.text == "hello, visitor\n", (r.status_code, r.text)

    # spans from every service reach the collector: a trace through the gateway (weft),
    # frontend, orders and inventory, as the Jaeger API answers it
    def deep_trace():
        r = get(d.url("/api/traces?service=inventory&limit=50&lookback=1h"))
        if r.status_code != 200:
            return None
        for t in r.json()["data"]:
            names = {p["serviceName"] for p in t["processes"].values()}
            if {"weft", "frontend", "orders", "inventory"} <= names:
                return t
        return None
    t = wait_for(deep_trace, "a trace across the gateway and the three services", timeout=20,
                 interval=0.5)
    assert len(t["spans"]) >= 4, t

    # Ctrl-C: everything stops, each cleanly (the hellos deregister first)
    assert d.stop(signal.SIGINT) == 0, f"{d.out()}\n{tail(d.err_path)}"
    d.reader.join(timeout=WAIT)
    out = d.out()
    assert "weft demo: Interrupt: stopping" in out and out.rstrip().endswith("weft demo: stopped"), out
    assert_all_gone(d)
    for name in ("frontend-1", "orders-1", "inventory-1", "inventory-2"):
        assert "msg=deregistered" in (d.data / f"{name}.log").read_text(), name
    # weft serve last, on SIGTERM, draining 1 s (weft.yaml's http.shutdown_delay)
    assert re.search(r'msg="draining: .* host=weft reason=SIGTERM shutdown_delay_ms=1000',
                     (d.data / "weft.log").read_text())


def test_sigterm_stops_everything_and_removes_its_temporary_directory(demo, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    d = demo("--rate", "1", data_dir=False, env={"TMPDIR": str(tmpdir)})
    d.wait_started()
    data = pathlib.Path(d.data_line)
    assert data.parent == tmpdir and data.name.startswith("weft-demo-"), d.data_line
    assert (data / "weft.yaml").exists()
    assert d.stop(signal.SIGTERM) == 0, f"{d.out()}\n{tail(d.err_path)}"
    assert "Terminated: stopping" in d.out()
    assert_all_gone(d)
    assert not data.exists(), "the temporary data directory outlives the demo"


def test_children_stop_when_the_demo_is_killed_outright(demo):
    """kill -9 of the demo leaves no orphan: each child asked for SIGTERM when its parent
    dies (PR_SET_PDEATHSIG), and stops on it."""
    d = demo("--rate", "1")
    d.wait_started()
    d.proc.kill()
    d.proc.wait(timeout=WAIT)
    assert_all_gone(d, timeout=20)


def test_a_child_that_fails_at_start_stops_the_demo(tmp_path):
    """weft serve cannot listen (its API port taken): the demo says so with weft serve's
    own words, stops what it started and exits 1."""
    import socket
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        e = sanitizer_env()
        r = subprocess.run([str(WEFT), "demo", "--api-port", str(port), "--gateway-port",
                            str(free_port()), "--otlp-port", str(free_port()),
                            "--zipkin-port", str(free_port()), "--dns-port", "0",
                            "--data-dir", str(tmp_path / "busy")],
                           capture_output=True, text=True, timeout=60, env=e)
    assert_no_sanitizer_report(r.stderr, "weft demo")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "weft serve (pid" in r.stderr and "ended: exit status" in r.stderr, r.stderr
    assert str(port) in r.stderr, r.stderr  # weft serve's log names the address
    assert "weft demo: stopped" in r.stdout, r.stdout


@pytest.mark.parametrize("args, message", [
    (["--api-port", "70000"], '--api-port: expected a port from 1 to 65535, got "70000"'),
    (["--gateway-port", "0"], '--gateway-port: expected a port from 1 to 65535, got "0"'),
    (["--otlp-port=x"], '--otlp-port: expected a port from 1 to 65535, got "x"'),
    (["--zipkin-port"], "--zipkin-port: expected a value"),
    (["--dns-port", "-1"], '--dns-port: expected a port from 0 to 65535, got "-1"'),
    (["--hello-port", "65534"], '--hello-port: expected a port from 0 to 65532'),
    (["--rate", "fast"], '--rate: expected requests a second from 0 to 1000, got "fast"'),
    (["--fail-rate", "1.5"], '--fail-rate: expected a number from 0 to 1, got "1.5"'),
    (["--bogus"], 'unknown flag "--bogus"'),
    (["extra"], 'unexpected argument "extra"'),
])
def test_usage_errors(args, message):
    r = subprocess.run([str(WEFT), "demo", *args], capture_output=True, text=True,
                       timeout=WAIT, env=sanitizer_env())
    assert_no_sanitizer_report(r.stderr, f"weft demo {args}")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith("weft demo: " + message), r.stderr
    assert r.stdout == ""


def test_missing_hello_is_named(tmp_path):
    missing = tmp_path / "no-such-hello"
    r = subprocess.run([str(WEFT), "demo", "--hello", str(missing)], capture_output=True,
                       text=True, timeout=WAIT, env=sanitizer_env())
    assert_no_sanitizer_report(r.stderr, "weft demo --hello")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"the hello example {missing} is missing" in r.stderr and "--hello PATH" in r.stderr


def test_help():
    r = subprocess.run([str(WEFT), "help", "demo"], capture_output=True, text=True,
                       timeout=WAIT, env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    for flag in ("--api-port", "--gateway-port", "--otlp-port", "--zipkin-port", "--dns-port",
                 "--hello-port", "--hello", "--data-dir", "--rate", "--fail-rate"):
        assert f"  {flag} " in r.stdout, flag
    assert "(default 127.0.0.1:8500)" in r.stdout  # weft serve's embedded default
    r = subprocess.run([str(WEFT), "help"], capture_output=True, text=True, timeout=WAIT,
                       env=sanitizer_env())
    assert re.search(r"^  demo\s", r.stdout, re.M), r.stdout


def test_hello_fail_rate(spawn):
    """hello --fail-rate 1 fails every request to its routes, never /health or /metrics;
    --fail-rate 0.5 fails some and not all; a bad value is exit 2."""
    port = free_port()
    spawn([HELLO, "--port", port, "--workers", "1", "--fail-rate", "1"], port, name="always")
    r = get(f"http://127.0.0.1:{port}/hello")
    assert r.status_code == 500 and r.json() == {"error": "injected failure", "fail_rate": 1}
    assert get(f"http://127.0.0.1:{port}/health").status_code == 200
    assert get(f"http://127.0.0.1:{port}/metrics").status_code == 200
    port2 = free_port()
    spawn([HELLO, "--port", port2, "--workers", "1", "--fail-rate=0.5"], port2, name="half")
    codes = [get(f"http://127.0.0.1:{port2}/hello/x").status_code for _ in range(200)]
    assert set(codes) == {200, 500} and 40 < codes.count(500) < 160, codes.count(500)
    for bad in ("2", "-0.1", "x", ""):
        r = subprocess.run([str(HELLO), "--fail-rate", bad], capture_output=True, text=True,
                           timeout=WAIT, env=sanitizer_env())
        assert r.returncode == 2, (bad, r.stderr)
        assert r.stderr == f'hello: --fail-rate: expected a number from 0 to 1, got "{bad}"\n'
    r = subprocess.run([str(HELLO), "--fail-rate"], capture_output=True, text=True,
                       timeout=WAIT, env=sanitizer_env())
    assert r.returncode == 2 and r.stderr == "hello: --fail-rate: expected a value\n", r.stderr
    r = subprocess.run([str(HELLO), "--help"], capture_output=True, text=True, timeout=WAIT,
                       env=sanitizer_env())
    assert r.returncode == 0 and "--fail-rate" in r.stdout
