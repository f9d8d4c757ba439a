"""The weft command: serve, version, help, configuration errors, limits, a real Prometheus."""
import pathlib
import socket
import subprocess
import time

import requests

from conftest import (WAIT, WEFT, assert_serves_again, free_port, get, has_responses,
                      need_tool, parse_responses, raw_exchange, read_until, run_cli)
from test_service import promtool_check


def run(*args, timeout=20, env=None):
    return run_cli(WEFT, *args, timeout=timeout, env=env)


def test_config_docs_match_the_committed_reference():
    """docs/config.md is generated from the option tables; it must not go stale."""
    r = run("config-docs")
    assert r.returncode == 0
    committed = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    assert r.stdout == committed, "docs/config.md is stale: run `build/weft config-docs > docs/config.md`"


def test_version_and_help():
    r = run("version")
    assert r.returncode == 0 and r.stdout.startswith("weft ")
    r = run("--help")
    assert r.returncode == 0 and "serve" in r.stdout
    r = run("serve", "--help")
    assert r.returncode == 0
    for flag in ("--api", "--gateway", "--otlp", "--zipkin", "--workers", "--log-level",
                 "--data-dir", "--config", "http.max_head_size", "WEFT_API"):
        assert flag in r.stdout, flag
    r = run("help")
    assert r.returncode == 0 and "serve" in r.stdout
    r = run("frobnicate")
    assert r.returncode == 2 and "unknown command" in r.stderr
    r = run()
    assert r.returncode == 2


def test_api(weft):
    r = get(weft.url + "/v1/status/leader")
    assert r.status_code == 200 and r.json() == f"127.0.0.1:{weft.port}"
    j = get(weft.url + "/health").json()
    assert j["status"] == "passing" and j["service"] == "weft"
    t = get(weft.url + "/metrics").text
    assert 'route="/v1/status/leader"' in t
    promtool_check(t)


def test_api_address_forms(spawn, tmp_path):
    """A host name in a listen address is resolved when the configuration loads, and the
    leader address is written as Consul writes it: brackets around an IPv6 host."""
    port = free_port()
    p = spawn([WEFT, "serve", "--api", f"localhost:{port}", "--data-dir", tmp_path / "d"],
              port, name="byname")
    assert get(p.url + "/v1/status/leader").json() == f"127.0.0.1:{port}"
    p.stop()
    port = free_port()
    p = spawn([WEFT, "serve", "--api", f"[::1]:{port}", "--data-dir", tmp_path / "d"], port,
              name="v6", host="::1")
    r = requests.get(f"http://[::1]:{port}/v1/status/leader", timeout=5)
    assert r.status_code == 200 and r.json() == f"[::1]:{port}"


def test_config_errors(tmp_path):
    bad = tmp_path / "weft.yaml"
    cases = [
        ("http:\n  max_headers: 5000\n",
         f"{bad}:2:16: http.max_headers: 5000 is above the maximum 1000"),
        ("htpp:\n  max_headers: 5\n", f'{bad}:1:1: htpp: unknown key (did you mean "http"?)'),
        ("workers: many\n", f'{bad}:1:10: workers: expected a whole number, got "many"'),
        ("http:\n  head_timeout: ten\n",
         f'{bad}:2:17: http.head_timeout: expected a duration like 10s or 250ms, got "ten"'),
        ("api:\n  listen: [1, 2]\n",
         f"{bad}:2:11: api.listen: expected a single host:port value, got a list"),
        ("api: 5\n", f"{bad}:1:6: api: expected a mapping of settings"),
        ("workers: 1\nworkers: 2\n", f"{bad}:2:1: workers: duplicate key"),
        ("log_level: loud\n",
         f'{bad}:1:12: log_level: expected one of debug, info, warn, error, got "loud"'),
        ("http: {max_body_size: 1XB}\n",
         f'{bad}:1:23: http.max_body_size: expected a size like 512, 64KiB or 1MiB, got "1XB"'),
        ("workers: [\n", f"{bad}:2:1: invalid YAML"),
    ]
    for text, want in cases:
        bad.write_text(text)
        r = run("serve", "--config", bad, "--data-dir", tmp_path / "d")
        assert r.returncode == 2, (text, r.stderr)
        assert want in r.stderr, (text, r.stderr)
    r = run("serve", "--workers", "abc")
    assert r.returncode == 2 and '--workers: expected a whole number, got "abc"' in r.stderr
    r = run("serve", "--api", "localhost")
    assert r.returncode == 2 and "--api: expected HOST:PORT" in r.stderr
    r = run("serve", "--nope")
    assert r.returncode == 2 and "--nope: unknown flag" in r.stderr
    r = run("serve", "--config", tmp_path / "missing.yaml")
    assert r.returncode == 2 and "cannot read" in r.stderr
    r = run("serve", env={"WEFT_WORKERS": "-1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and 'WEFT_WORKERS: expected a whole number, got "-1"' in r.stderr


def test_config_file_env_and_flag_precedence(spawn, tmp_path):
    port, port2 = free_port(), free_port()
    cfg = tmp_path / "weft.yaml"
    cfg.write_text(f"api:\n  listen: 127.0.0.1:{port2}\nworkers: 1\nhttp:\n"
                   "  max_headers: 5\n  idle_timeout: 1s\n")
    p = spawn([WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{port}", "--data-dir",
               tmp_path / "d"], port, name="prec", env={"WEFT_API": "127.0.0.1:1"})
    # the flag beat the environment and the file
    assert get(p.url + "/health").status_code == 200
    # the file's limits apply: 6 header lines is too many
    out, _ = raw_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n" +
                          b"".join(b"X-%d: v\r\n" % i for i in range(5)) + b"\r\n")
    assert out.startswith(b"HTTP/1.1 431 ")
    # idle keep-alive connections are closed after idle_timeout
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    read_until(s, has_responses(1))
    start = time.monotonic()
    assert s.recv(4096) == b""
    assert time.monotonic() - start < 2.5
    s.close()


def test_connection_limit(spawn, tmp_path):
    port = free_port()
    cfg = tmp_path / "weft.yaml"
    cfg.write_text("http:\n  max_connections: 3\n")
    p = spawn([WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{port}", "--workers", "1",
               "--data-dir", tmp_path / "d"], port, name="limit")
    # three connections, each known to be accepted (and counted) by its answer; the
    # readiness probe is closed on the server's side (wait_port)
    held = []
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        out, _ = read_until(c, has_responses(1))
        assert out.startswith(b"HTTP/1.1 200 "), out
        held.append(c)
    out, closed = raw_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 503 ") and closed
    assert b"max_connections" in out
    rs, rest = parse_responses(out)
    assert rs, f"not one complete response (does Content-Length match the body?): {out!r}"
    assert [r.status for r in rs] == [503] and not rest, out
    assert rs[0].header("date"), out
    for s in held:
        s.close()
    assert_serves_again(port, "/health")


def test_second_server_on_same_port_fails(spawn, weft, tmp_path):
    """Two weft processes on one API port: the second must fail clearly (SO_REUSEPORT between
    processes of one user would otherwise let it share the port silently)."""
    second = spawn([WEFT, "serve", "--api", f"127.0.0.1:{weft.port}", "--data-dir",
                    tmp_path / "d2", "--workers", "1"], weft.port, name="second", wait=False)
    try:
        code = second.proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        code = None
    assert code is not None, "the second server kept running on the same port"
    assert code != 0
    second.expect_exit = code  # the failure is the expected outcome, checked here
    log = second.log.read_text()
    assert f"127.0.0.1:{weft.port}" in log and "in use" in log, log
    # the first one is unharmed
    assert get(weft.url + "/health").status_code == 200


def test_prometheus_scrapes_weft(spawn, weft, tmp_path):
    """A real Prometheus scrapes /metrics and can query what it scraped."""
    prom_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: weft
    static_configs:
      - targets: ['127.0.0.1:{weft.port}']
""")
    spawn([need_tool("prometheus"), f"--config.file={cfg}",
           f"--storage.tsdb.path={tmp_path / 'tsdb'}",
           f"--web.listen-address=127.0.0.1:{prom_port}"], prom_port, name="prometheus")
    base = f"http://127.0.0.1:{prom_port}"
    deadline = time.monotonic() + 30
    up, sample = False, None
    while time.monotonic() < deadline and not (up and sample):
        get(weft.url + "/health")
        try:
            targets = requests.get(base + "/api/v1/targets", timeout=2).json()
            up = any(t["health"] == "up" for t in targets["data"]["activeTargets"])
            q = requests.get(base + "/api/v1/query",
                             params={"query": 'http_requests_total{route="/health"}'},
                             timeout=2).json()
            if q["data"]["result"]:
                sample = q["data"]["result"][0]
        except (requests.RequestException, KeyError, ValueError):
            pass
        time.sleep(0.5)
    assert up, "Prometheus never saw the target up"
    assert sample and sample["metric"]["code"] == "200" and float(sample["value"][1]) >= 1
