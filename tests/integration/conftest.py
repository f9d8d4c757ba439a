"""Fixtures that start the real binaries on free loopback ports and stop them by PID.

Every process started here has its stderr captured to a file; at teardown the test fails if
the process left a sanitizer report, or exited with a non-zero status on SIGTERM.
WEFT_BUILD names the build directory (default: build-asan beside this repository).
"""
import os
import pathlib
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

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {port} within {timeout}s: {tail(log)}")


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

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.logf.close()
                raise AssertionError(f"did not exit within {timeout}s of SIGTERM")
        self.exit_code = self.proc.returncode
        self.logf.close()
        return self.exit_code

    def check_clean(self):
        text = tail(self.log, 1 << 20)
        for mark in SANITIZER_MARKS:
            assert mark not in text, f"sanitizer report in {self.log}:\n{text[-4000:]}"


@pytest.fixture
def spawn(tmp_path):
    started = []

    def _spawn(args, port, name="proc", wait=True, env=None):
        log = tmp_path / f"{name}-{len(started)}.log"
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if env:
            e.update(env)
        p = Proc([str(a) for a in args], port, log, env=e)
        started.append(p)
        if wait:
            wait_port(port, p.proc, log)
        return p

    yield _spawn
    errors = []
    for p in started:
        try:
            code = p.stop()
            if code not in (0, None) and not getattr(p, "expect_failure", False):
                errors.append(f"{p.log}: exit status {code} after SIGTERM: {tail(p.log)}")
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


def raw_exchange(port, data, timeout=3.0, chunks=None):
    """Sends data on a new connection and returns every byte until the server closes it
    (or timeout passes with nothing more). Returns (bytes, closed_by_server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if chunks:
            for c in chunks:
                s.sendall(c)
                time.sleep(0.05)
        else:
            s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not b:
                return out, True
            out += b
        return out, False
    finally:
        s.close()


def get(url, **kw):
    kw.setdefault("timeout", 5)
    return requests.get(url, **kw)
