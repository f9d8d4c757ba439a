"""Polyglot: examples/python-fastapi (FastAPI, uvicorn, prometheus_client, python-consul:
Debian's python3-* packages, unmodified Consul usage) beside examples/hello (libweft), both
registered in a real `weft serve`: each finds the other through the API and DNS and calls it,
and weft marks the Python service critical when it dies."""
import os
import pathlib
import signal
import subprocess
import sys

import pytest
import requests

from conftest import HELLO, ROOT, WAIT, WEFT, free_port, get, need_module, need_tool, wait_for

APP = ROOT / "examples" / "python-fastapi" / "app.py"
PY = "/usr/bin/python3"  # Debian's, with the python3-* packages (see README)


@pytest.fixture
def mesh(spawn, tmp_path):
    for m in ("fastapi", "uvicorn", "prometheus_client", "consul"):
        need_module(m)
    api, dns = free_port(), free_port()
    weft = spawn([WEFT, "serve", "--api", f"127.0.0.1:{api}", "--dns", f"127.0.0.1:{dns}",
                  "--data-dir", tmp_path / "data", "--workers", "2", "--log-level", "warn"],
                 api, name="weft")
    registry = f"http://127.0.0.1:{api}"
    hp = free_port()
    hello = spawn([HELLO, "--name", "hello", "--port", hp, "--workers", "2", "--log-level",
                   "warn", "--registry", registry, "--registry-check-interval", "1s"], hp,
                  name="hello")
    pp = free_port()
    py = spawn([PY, APP, "--port", pp, "--registry", registry, "--check-interval", "1s"], pp,
               name="python")
    weft.dns = dns
    return weft, hello, py


def passing(weft, name):
    r = get(f"{weft.url}/v1/health/service/{name}?passing")
    assert r.status_code == 200
    return r.json()


def test_python_and_c_find_and_call_each_other(mesh):
    weft, hello, py = mesh
    wait_for(lambda: len(passing(weft, "hello")) == 1 and len(passing(weft, "python-fastapi")) == 1,
             "both services registered and passing their HTTP checks", timeout=10)
    entry = passing(weft, "python-fastapi")[0]
    assert entry["Service"]["Port"] == py.port and entry["Service"]["Tags"] == ["python", "fastapi"]
    assert passing(weft, "hello")[0]["Service"]["Port"] == hello.port

    # DNS: both by name, SRV with their ports
    dig = need_tool("dig")

    def q(name, rtype):
        r = subprocess.run([dig, "@127.0.0.1", "-p", str(weft.dns), "+short", "+time=2",
                            "+tries=1", name, rtype], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    assert q("python-fastapi.service.consul", "A") == ["127.0.0.1"]
    assert q("hello.service.consul", "A") == ["127.0.0.1"]
    assert q("python-fastapi.service.consul", "SRV")[2] == str(py.port)
    assert q("hello.service.consul", "SRV")[2] == str(hello.port)

    # the C SDK's discovery client calls the Python service by name
    r = get(f"{hello.url}/call/python-fastapi/hello/from-c")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["message"] == "hello, from-c" and j["from"] == "python-fastapi"
    assert j["port"] == py.port

    # the Python service calls hello at an address it discovered through the registry
    r = get(f"{py.url}/call/hello/hello/from-python")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["instance"] == f"127.0.0.1:{hello.port}" and j["status"] == 200
    assert j["body"] == "hello, from-python\n"

    # both expose Prometheus metrics
    assert "app_calls_total" in get(f"{py.url}/metrics").text
    assert "http_requests_total" in get(f"{hello.url}/metrics").text


def test_weft_marks_the_python_service_critical_when_it_dies(mesh):
    weft, hello, py = mesh
    wait_for(lambda: len(passing(weft, "python-fastapi")) == 1, "the Python service passing",
             timeout=10)
    os.kill(py.proc.pid, signal.SIGKILL)
    py.proc.wait()
    py.expect_exit = -signal.SIGKILL

    def status():
        es = get(f"{weft.url}/v1/health/service/python-fastapi").json()
        return [c["Status"] for c in es[0]["Checks"] if c["ServiceID"]] if es else []

    wait_for(lambda: status() == ["critical"], "weft to mark the killed service critical",
             timeout=5)
    assert passing(weft, "python-fastapi") == []
    # and hello, calling it by name, now gets a clear error instead of a hang
    r = get(f"{hello.url}/call/python-fastapi/hello/x")
    assert r.status_code in (502, 503), r.text


def test_python_service_deregisters_on_sigterm(mesh):
    weft, hello, py = mesh
    wait_for(lambda: len(passing(weft, "python-fastapi")) == 1, "the Python service passing",
             timeout=10)
    assert py.stop() == 0
    assert get(f"{weft.url}/v1/health/service/python-fastapi").json() == []
