"""HAProxy 2.6 (Debian's haproxy) in front of a weft service, as users put one: it health-
checks the service with `option httpchk OPTIONS *`, a check many HAProxy configurations use,
marks it UP only on a 2xx/3xx answer, and proxies to it. weft answered OPTIONS * with 404
before, and HAProxy then kept a healthy service DOWN."""
import time

from conftest import HELLO, free_port, get, need_tool


def server_status(stats_port):
    """The check status of backend be's server s1 on HAProxy's CSV stats page, or None."""
    try:
        r = get(f"http://127.0.0.1:{stats_port}/stats;csv")
    except Exception:  # noqa: BLE001 - not listening yet
        return None
    for line in r.text.splitlines():
        f = line.split(",")
        if f[:2] == ["be", "s1"]:
            return f[17]  # the "status" column: UP, DOWN, ...
    return None


def wait_status(stats_port, want, timeout=10):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = server_status(stats_port)
        if got == want:
            return got
        time.sleep(0.05)
    return got


def test_haproxy_health_checks_and_proxies_to_hello(spawn, tmp_path):
    hport, fport, sport = free_port(), free_port(), free_port()
    hello = spawn([HELLO, "--name", "behind-haproxy", "--port", hport, "--workers", "1",
                   "--log-level", "warn"], hport, name="hello")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""global
  maxconn 100
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend fe
  bind 127.0.0.1:{fport}
  default_backend be
backend be
  option httpchk OPTIONS *
  server s1 127.0.0.1:{hport} check inter 100ms fall 2 rise 1
listen stats
  bind 127.0.0.1:{sport}
  stats enable
  stats uri /stats
""")
    hap = spawn([need_tool("haproxy"), "-db", "-f", cfg], fport, name="haproxy", wait=False)
    hap.expect_exit = -15  # HAProxy's hard stop on SIGTERM: it ends by the signal
    assert wait_status(sport, "UP") == "UP", hap.log.read_text()
    r = get(f"http://127.0.0.1:{fport}/hello/proxied")
    assert r.status_code == 200 and r.text == "hello, proxied\n"
    # the checks reached hello as OPTIONS * and were answered 200
    metrics = get(hello.url + "/metrics").text
    assert 'http_requests_total{method="OPTIONS",route="unmatched",code="200"}' in metrics
    # hello goes away: HAProxy's checks fail and it marks the server DOWN
    assert hello.stop() == 0
    assert wait_status(sport, "DOWN") == "DOWN"
