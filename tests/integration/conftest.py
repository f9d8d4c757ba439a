"""Fixtures that start the real binaries on free loopback ports and stop them by PID.

Every process started here has its stderr captured to a file; at teardown the test fails if
the process left a sanitizer report, or exited with a non-zero status on SIGTERM.
WEFT_BUILD names the build directory (default: build-asan beside this repository).

Tests wait for events, never for a guessed time or for silence: a port that answers, a log
line, a response read to the end of its framing, a connection the server closes, or a
condition polled until it holds (wait_for). Each wait is bounded by WAIT seconds, a guard
that turns a hang into a failure and is never the expected outcome. Some tests also bound
how long a timeout under test takes; they rely on running one at a time (no pytest-xdist).

A test that needs a program from outside weft (Prometheus, HAProxy, protoc...) asks for it
with need_tool: missing, it fails under CI (the CI environment variable set, as CI systems
and .ci/run do) and is skipped, saying so, elsewhere.
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("WEFT_BUILD", ROOT / "build-asan"))
WEFT = BUILD / "weft"
HELLO = BUILD / "examples" / "hello"

# Seconds any wait for an event may take before the test fails (see above).
WAIT = 10.0

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer")


def pytest_configure(config):
    """The timing bounds some tests assert hold only for tests that run one at a time."""
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("tests/integration must run serially (no pytest-xdist -n): "
                                "some tests bound how long a timeout takes")


def in_ci():
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing(what):
    """A test cannot run because `what` is missing: under CI that fails it (every test must
    run there), elsewhere it is skipped with the reason."""
    msg = f"{what} is missing (scripts/install-deps installs it)"
    if in_ci():
        pytest.fail(f"{msg}; CI is set, so this fails instead of skipping", pytrace=False)
    pytest.skip(f"{msg}; skipped (it would fail with CI set)")


def need_tool(name):
    """The path of the program `name` (on PATH, or an absolute path); see missing()."""
    path = shutil.which(name)
    if path is None:
        missing(f"the program {name}")
    return path


def need_module(name):
    """The Python module `name`, imported; see missing()."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python module {name}")


def wait_for(cond, what, timeout=WAIT, interval=0.02):
    """Polls cond() until it returns something true, and returns that; fails the test with
    `what` when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(interval)


def sanitizer_env(extra=None):
    """The environment for a started binary: sanitizer reports end the process with an
    error (the Makefile exports the same settings; these are the defaults without it)."""
    # OpenTelemetry's variables would switch exporters on: only a test sets them
    e = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1")
    e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    # weft serve's DNS interface listens on 8600 by default: tests that do not ask for a
    # port of their own (--dns) take any free one, so that two never collide
    e.setdefault("WEFT_DNS", "127.0.0.1:0")
    # ... and its gateway on 0.0.0.0:8080: the same, on loopback
    e.setdefault("WEFT_GATEWAY", "127.0.0.1:0")
    # ... and its collector on 4318 (OTLP) and 9411 (Zipkin)
    e.setdefault("WEFT_OTLP", "127.0.0.1:0")
    e.setdefault("WEFT_ZIPKIN", "127.0.0.1:0")
    if extra:
        e.update(extra)
    return e


def assert_no_sanitizer_report(text, what):
    for mark in SANITIZER_MARKS:
        assert mark not in text, f"sanitizer report from {what}:\n{text[-4000:]}"


def run_cli(binary, *args, timeout=20, env=None):
    """Runs a short-lived command (weft version, a config error...) to completion and fails
    the test if it left a sanitizer report. Returns the CompletedProcess (text mode)."""
    r = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env if env is not None else sanitizer_env())
    assert_no_sanitizer_report(r.stderr, f"{binary} {' '.join(map(str, args))}")
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, timeout=WAIT, host="127.0.0.1"):
    """Waits until the process answers HTTP on the loopback port: a GET /health that gets
    any HTTP response (a bare TCP connect is not enough: the servers bind a short-lived probe
    socket before their real listeners, and a connection that lands on it is reset). The
    answer is read until the server closes the connection, so this probe no longer counts
    among the server's connections when a test begins.
    Raises with the tail of the process's stderr if it exits or nothing answers in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {tail(log)}")
        try:
            with socket.create_connection((host, port), timeout=0.5) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Connection: close\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/1."):
                    s.settimeout(timeout)
                    try:
                        while s.recv(65536):
                            pass
                    except socket.timeout:
                        pass  # a server that keeps it open after Connection: close
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no HTTP answer on port {port} within {timeout}s: {tail(log)}")


def tail(path, n=2000):
    try:
        return pathlib.Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return ""


class Proc:
    """A started binary: port, base URL, log file; stop() sends SIGTERM and waits."""

    def __init__(self, args, port, log, env=None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.logf = open(log, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.logf,
                                     env=env, start_new_session=True)
        self.exit_code = None
        self.expect_exit = 0  # the status teardown expects (a test may expect a failure)

    def stop(self, timeout=10):
        """SIGTERM (unless the process already ended), up to `timeout` seconds for it to
        exit, then SIGKILL. Returns the exit status, or raises AssertionError when the
        process had to be killed."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    raise AssertionError(f"{self.log}: did not exit within {timeout}s of "
                                         f"SIGTERM; killed: {tail(self.log)}")
            self.exit_code = self.proc.returncode
            return self.exit_code
        finally:
            self.logf.close()

    def check_clean(self):
        assert_no_sanitizer_report(tail(self.log, 1 << 24), self.log)


@pytest.fixture
def spawn(tmp_path):
    """spawn(args, port, name=...) starts a binary with stderr in tmp_path/<name>-<n>.log and
    waits (10 s at most) until it accepts connections on the loopback port. At teardown
    every started process gets SIGTERM; the test fails if one needed SIGKILL, exited with a
    non-zero status, or left a sanitizer report."""
    started = []

    def _spawn(args, port, name="proc", wait=True, env=None, host="127.0.0.1"):
        log = tmp_path / f"{name}-{len(started)}.log"
        p = Proc([str(a) for a in args], port, log, env=sanitizer_env(env))
        started.append(p)
        if wait:
            wait_port(port, p.proc, log, host=host)
        return p

    yield _spawn
    errors = []
    for p in started:
        try:
            code = p.stop()
            if code != p.expect_exit:
                errors.append(f"{p.log}: exit status {code} after SIGTERM: {tail(p.log)}")
        except AssertionError as e:
            errors.append(str(e))
        try:
            p.check_clean()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture
def hello(spawn):
    port = free_port()
    return spawn([HELLO, "--name", "hello", "--port", port, "--workers", "2",
                  "--log-level", "warn"], port, name="hello")


@pytest.fixture
def weft(spawn, tmp_path):
    port = free_port()
    return spawn([WEFT, "serve", "--api", f"127.0.0.1:{port}", "--data-dir", tmp_path / "data",
                  "--workers", "2", "--log-level", "warn"], port, name="weft")


@pytest.fixture
def collector(spawn, tmp_path):
    """collector(name="col", *flags) starts `weft serve` with its collector on free loopback
    ports, through spawn, and returns the Proc with .api (URL, Jaeger's query API),
    .otlp (URL of POST /v1/traces), .zipkin (URL of the Zipkin port), .data (its data
    directory) and .args (to start it again the same way)."""
    def _start(name="col", *flags, data=None, env=None):
        api, otlp, zipkin = free_port(), free_port(), free_port()
        data = data or tmp_path / f"{name}-data"
        args = [WEFT, "serve", "--api", f"127.0.0.1:{api}", "--otlp", f"127.0.0.1:{otlp}",
                "--zipkin", f"127.0.0.1:{zipkin}", "--data-dir", data, "--workers", "2",
                "--log-level", "warn", *flags]
        p = spawn(args, api, name=name, env=env)
        wait_port(otlp, p.proc, p.log)
        wait_port(zipkin, p.proc, p.log)
        p.api, p.otlp = f"http://127.0.0.1:{api}", f"http://127.0.0.1:{otlp}/v1/traces"
        p.zipkin, p.data, p.args = f"http://127.0.0.1:{zipkin}", data, args
        p.ports = (api, otlp, zipkin)
        return p

    return _start


OTEL_JS = ROOT / "tests" / "integration" / "otel-js"


@pytest.fixture(scope="session")
def otel_js():
    """The OpenTelemetry JS SDK test client (tests/integration/otel-js/send.js), its npm
    packages installed from the committed lock file (npm ci) when they are not yet, or are
    older than the lock file. Returns a function send(exporter, url, service) -> the parsed
    output (the spans as the SDK made them)."""
    node, npm = need_tool("node"), need_tool("npm")
    stamp = OTEL_JS / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < (OTEL_JS / "package-lock.json").stat().st_mtime:
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=OTEL_JS, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"npm ci in {OTEL_JS} failed:\n{r.stdout}\n{r.stderr}"

    def send(exporter, url, service):
        r = subprocess.run([node, OTEL_JS / "send.js", exporter, url, service],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"send.js {exporter} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return json.loads(r.stdout)

    return send


@pytest.fixture
def faulty(spawn):
    """faulty(name="faulty", *args) starts tests/integration/faulty.py (with its flags args),
    an upstream that misbehaves on demand, through spawn (same teardown checks), and returns a
    faulty.Faulty client for it: .url, .port, .set_fault(), .stats() (counters zeroed once it
    answers), .stop()."""
    import faulty as faulty_mod
    made = []

    def _start(name="faulty", *args):
        port = free_port()
        p = spawn([faulty_mod.PYTHON, faulty_mod.__file__, "--port", port, "--name", name,
                   *args], port, name=name)
        f = faulty_mod.Faulty(port, name=name, proc=p)
        made.append(f)
        f.reset_stats()
        return f

    yield _start
    for f in made:
        f.close()


@pytest.fixture
def gateway(spawn, tmp_path):
    """gateway(config, workers=1, name="gw") starts `weft serve` with the YAML `config` (its
    gateway.listen overridden by a free loopback port) through spawn, and returns the Proc
    with .api (URL), .gw (URL) and .gw_port. It waits for the gateway with a malformed
    request (answered 400 by the listener itself), so that no upstream is asked anything."""
    def _start(config, workers=1, name="gw"):
        api, gw = free_port(), free_port()
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(config)
        p = spawn([WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{api}",
                   "--gateway", f"127.0.0.1:{gw}", "--data-dir", tmp_path / f"{name}-data",
                   "--workers", workers, "--log-level", "warn"], api, name=name)

        def listens():
            try:
                out, _ = raw_exchange(gw, b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=1)
                return out.startswith(b"HTTP/1.1 400 ")
            except OSError:
                return False
        wait_for(listens, "the gateway to listen")
        p.api, p.gw_port, p.gw = f"http://127.0.0.1:{api}", gw, f"http://127.0.0.1:{gw}"
        return p

    return _start


def read_until(s, done, timeout=WAIT):
    """Reads from socket s until done(bytes read so far) holds or the peer closes the
    connection. Returns (bytes, closed_by_server); a reset counts as closed. `timeout`
    seconds with neither fail the test."""
    out = b""
    deadline = time.monotonic() + timeout
    while not done(out):
        left = deadline - time.monotonic()
        assert left > 0, f"neither the expected bytes nor a close within {timeout} s: {out[:300]!r}"
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return out, True
        if not b:
            return out, True
        out += b
    return out, False


def has_responses(n, head_request=False):
    """A read_until condition: `n` complete responses (parse_responses's framing) are in."""
    return lambda out: len(parse_responses(out, head_request)[0]) >= n


PROBE = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def probe(s, timeout=WAIT):
    """Once every answer expected on connection s has been read: one more request (GET
    /health, Connection: close), and the responses that come back before the server closes.
    One 200 says the server kept the connection open and sent nothing else; none, that it
    had closed it. Tells "kept alive" by an answer, not by waiting for silence."""
    try:
        s.sendall(PROBE)
    except (BrokenPipeError, ConnectionResetError):
        return []
    out, closed = read_until_closed(s, timeout)
    assert closed, f"no close after Connection: close: {out[:300]!r}"
    rs, rest = parse_responses(out)
    assert not rest, out
    return rs


def exchange_kept_alive(port, data, done, timeout=WAIT):
    """Sends data on a new connection, reads until done(bytes) holds (has_responses(n), say),
    then probes the connection. Returns (bytes, the probe's responses: see probe)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out, closed = read_until(s, done, timeout)
        assert not closed, f"closed before the answers were complete: {out[:300]!r}"
        return out, probe(s, timeout)


def read_until_closed(s, timeout):
    """Every byte the peer sends on socket s until it closes the connection or `timeout`
    seconds pass. Returns (bytes, closed_by_server); a reset counts as closed."""
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out, False
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True
        if not b:
            return out, True
        out += b


def raw_exchange(port, data, timeout=WAIT):
    """Sends data on a new connection and returns every byte until the server closes it or
    `timeout` passes. Returns (bytes, closed_by_server). For exchanges the server ends by
    closing (errors, Connection: close); one it keeps alive takes exchange_kept_alive.
    A server that stops reading and closes early (an error answered before the whole request
    was sent) is fine: the send error is ignored and the answer is still read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        return read_until_closed(s, timeout)
    finally:
        s.close()


class Response:
    """One HTTP/1.x response parsed from raw bytes: status, headers (lower-case names, in
    order, repeats kept), body (de-chunked when the response was chunked)."""

    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body, self.raw_head = headers, body, raw_head

    def header(self, name):
        vals = [v for n, v in self.headers if n == name.lower()]
        assert len(vals) <= 1, f"{name} repeated: {vals}"
        return vals[0] if vals else None


def parse_responses(data, head_request=False):
    """Splits `data` (everything read from one connection) into responses, strictly: each
    must have a status line, CRLF-terminated header lines, and Content-Length or chunked
    framing (1xx and, when head_request, HEAD responses have no body). Returns
    (responses, leftover bytes that do not form a complete response)."""
    out = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        raw_head = data[:end]
        lines = raw_head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            break
        headers = []
        for ln in lines[1:]:
            name, sep, value = ln.partition(b":")
            assert sep, f"header line without a colon in a response: {ln!r}"
            headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
        r = Response(parts[0].decode(), int(parts[1]),
                     parts[2].decode("latin-1") if len(parts) > 2 else "", headers, b"",
                     raw_head)
        rest = data[end + 4:]
        if 100 <= r.status < 200 or head_request:
            out.append(r)
            data = rest
            continue
        te = r.header("transfer-encoding")
        if te is not None:
            assert te.lower() == "chunked", te
            body = b""
            while True:
                eol = rest.find(b"\r\n")
                if eol < 0:
                    return out, data
                size = int(rest[:eol].split(b";")[0], 16)
                if len(rest) < eol + 2 + size + 2:
                    return out, data
                body += rest[eol + 2:eol + 2 + size]
                rest = rest[eol + 2 + size + 2:]
                if size == 0:
                    break
            r.body = body
        else:
            cl = r.header("content-length")
            assert cl is not None, f"response without Content-Length or chunked: {raw_head!r}"
            n = int(cl)
            if len(rest) < n:
                break
            r.body, rest = rest[:n], rest[n:]
        out.append(r)
        data = rest
    return out, data


def get(url, **kw):
    kw.setdefault("timeout", WAIT)
    return requests.get(url, **kw)


def assert_serves_again(port, path="/hello", timeout=WAIT):
    """Once the connections that filled a connection cap are closed, a new one is served:
    polled, since the server notices the closes on a later loop iteration."""
    def served():
        out, _ = raw_exchange(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n")
        return out.startswith(b"HTTP/1.1 200 ")
    wait_for(served, "served again after the connections closed", timeout, interval=0.05)
