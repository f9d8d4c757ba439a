"""WebSocket upgrades through the gateway (issue 19, item 3): a real WebSocket server
(ws_upstream.py, python3-websockets) behind a route, real clients in front: messages both
ways, both ways of closing, a 64 MiB stream in bounded memory, answers other than 101
proxied as they are, a refusing upstream 502, the tunnel limit 503, the idle timeout."""
import asyncio
import os
import re
import socket
import sys
import time

import pytest
import requests

from conftest import WAIT, WEFT, free_port, wait_for

websockets = pytest.importorskip("websockets")

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20


def start_upstream(spawn):
    port = free_port()
    p = spawn(["/usr/bin/python3", os.path.join(HERE, "ws_upstream.py"), "--port", port], port,
              name="ws")
    p.base = f"http://127.0.0.1:{port}"
    return p


def start_weft(spawn, tmp_path, up_port, extra=(), env=None):
    api, gw, dead = free_port(), free_port(), free_port()
    cfg = tmp_path / "weft.yaml"
    cfg.write_text(f"""gateway:
  routes:
    - name: ws
      match: {{ path_prefix: /ws }}
      strip_prefix: true
      upstream: {{ targets: [127.0.0.1:{up_port}] }}
    - name: quiet
      match: {{ path_prefix: /quiet }}
      strip_prefix: true
      upstream: {{ targets: [127.0.0.1:{up_port}] }}
      websocket: {{ idle_timeout: 1s }}
    - name: off
      match: {{ path_prefix: /off }}
      strip_prefix: true
      upstream: {{ targets: [127.0.0.1:{up_port}] }}
      websocket: {{ enabled: false }}
    - name: dead
      match: {{ path_prefix: /dead }}
      upstream: {{ targets: [127.0.0.1:{dead}] }}
""")
    p = spawn([WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{api}",
               "--gateway", f"127.0.0.1:{gw}", "--data-dir", tmp_path / "data",
               "--workers", "2", "--log-level", "warn", *extra], api, name="weft", env=env)
    wait_for(lambda: _answers(gw), "the gateway to listen")
    p.api = f"http://127.0.0.1:{api}"
    p.gw_port = gw
    p.ws = f"ws://127.0.0.1:{gw}"
    return p


def _answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def metric(w, name, route):
    text = requests.get(w.api + "/metrics", timeout=WAIT).text
    m = re.search(rf'^{name}{{route="{route}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def upstream_state(up):
    return requests.get(up.base + "/count", timeout=WAIT).json()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def handshake(port, path):
    """A WebSocket handshake by hand: the socket, and what came after the 101 head."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        got = s.recv(65536)
        assert got, f"closed before the head: {data!r}"
        data += got
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # the upstream's Sec-WebSocket-Accept
    return s, rest


def frame(payload, opcode=1):
    """A masked client frame (payload < 126 bytes)."""
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def read_to_eof(s, timeout=WAIT):
    s.settimeout(timeout)
    data = b""
    while True:
        got = s.recv(65536)
        if not got:
            return data
        data += got


def test_echo_text_binary_and_many(spawn, tmp_path):
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port)

    async def go():
        async with websockets.connect(w.ws + "/ws/echo", max_size=None,
                                      compression=None) as ws:
            await ws.send("hello through the gateway")
            assert await ws.recv() == "hello through the gateway"
            blob = os.urandom(MIB)
            await ws.send(blob)
            assert await ws.recv() == blob
            for i in range(2000):
                await ws.send(f"message {i}")
            for i in range(2000):
                assert await ws.recv() == f"message {i}"
            assert metric(w, "weft_gateway_tunnels_active", "ws") == 1
    run(go())
    wait_for(lambda: metric(w, "weft_gateway_tunnels_active", "ws") == 0,
             "the tunnel to close after the client's close")
    assert metric(w, "weft_gateway_tunnels_total", "ws") == 1
    wait_for(lambda: upstream_state(up)["open"] == 0, "the upstream's end to close")


def test_server_close_closes_the_client(spawn, tmp_path):
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port)
    s, rest = handshake(w.gw_port, "/ws/close")
    s.sendall(frame(b"x"))
    s.settimeout(WAIT)
    got = rest
    while b"\x88" not in got:  # "bye", then the server's close frame
        got += s.recv(65536)
    assert b"bye" in got
    s.sendall(frame(b"\x03\xe8", opcode=8))  # the close handshake's answer
    read_to_eof(s)  # the server closes its TCP connection: the gateway closes the client's
    s.close()
    wait_for(lambda: metric(w, "weft_gateway_tunnels_active", "ws") == 0, "the tunnel to end")


def test_client_close_closes_the_upstream(spawn, tmp_path):
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port)
    s, rest = handshake(w.gw_port, "/ws/echo")
    s.sendall(frame(b"ping"))
    s.settimeout(WAIT)
    while b"ping" not in rest:
        rest += s.recv(65536)
    assert upstream_state(up)["open"] == 1
    s.close()  # no close frame: the TCP connection just ends
    wait_for(lambda: upstream_state(up)["open"] == 0,
             "the upstream to see its connection end after the client's")
    wait_for(lambda: metric(w, "weft_gateway_tunnels_active", "ws") == 0, "the tunnel to end")


def test_half_close_passes_the_fin_on(spawn, tmp_path):
    """The client shuts down its write side only: the upstream sees the end of its input,
    closes, and the client then reads the upstream's end."""
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port)
    s, rest = handshake(w.gw_port, "/ws/echo")
    s.shutdown(socket.SHUT_WR)
    read_to_eof(s)
    s.close()
    wait_for(lambda: upstream_state(up)["open"] == 0, "the upstream's end to close")


def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(key)


def test_64mib_stream_in_bounded_memory(spawn, tmp_path):
    """64 MiB from the upstream to a client that reads slowly: the gateway holds at most a
    buffer per direction (back-pressure leaves the rest in the kernels' socket buffers), so
    its resident size grows by far less than the stream. ASan's quarantine (freed memory it
    holds back to catch use-after-free) is kept small: it is the sanitizer's, not weft's."""
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port,
                   env={"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:quarantine_size_mb=4"})
    total = 64 * MIB

    async def stream(n, slow):
        got = 0
        async with websockets.connect(w.ws + f"/ws/stream/{n}", max_size=None,
                                      compression=None, max_queue=1) as ws:
            while True:
                m = await ws.recv()
                if m == "done":
                    break
                got += len(m)
                if slow:
                    await asyncio.sleep(0.01)
        return got

    assert run(stream(4 * MIB, False)) == 4 * MIB  # warm-up: the allocator's first arenas
    before = vm(w.proc.pid, "VmRSS")
    assert run(stream(total, True)) == total
    after, peak = vm(w.proc.pid, "VmRSS"), vm(w.proc.pid, "VmHWM")
    assert after - before < 16 * MIB, (before, after)
    assert peak - before < 24 * MIB, (before, peak)


def test_non_101_is_a_plain_response(spawn, tmp_path):
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port)
    r = requests.get(f"http://127.0.0.1:{w.gw_port}/ws/deny", timeout=WAIT, headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status_code == 403
    assert r.json() == {"error": "no websocket here"}
    assert "upgrade" not in r.headers.get("Connection", "").lower()
    assert metric(w, "weft_gateway_tunnels_total", "ws") == 0

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await websockets.connect(w.ws + "/ws/deny")
        assert e.value.status_code == 403
    run(go())


def test_route_with_websocket_off_does_not_upgrade(spawn, tmp_path):
    """websocket.enabled: false: the Upgrade headers are not forwarded, so the upstream
    answers the request as plain HTTP."""
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port)
    r = requests.get(f"http://127.0.0.1:{w.gw_port}/off/echo", timeout=WAIT, headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status_code == 200 and "open" in r.json()


def test_refusing_upstream_is_502(spawn, tmp_path):
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port)

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await websockets.connect(w.ws + "/dead/echo")
        assert e.value.status_code == 502
    run(go())
    wait_for(lambda: metric(w, "weft_gateway_tunnels_active", "dead") == 0, "no tunnel")


def test_tunnel_limit_is_503(spawn, tmp_path):
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port, extra=["--gateway-max-tunnels", "2"])

    async def go():
        a = await websockets.connect(w.ws + "/ws/echo")
        b = await websockets.connect(w.ws + "/ws/echo")
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await websockets.connect(w.ws + "/ws/echo")
        assert e.value.status_code == 503
        await a.close()
        await b.close()
    run(go())
    wait_for(lambda: metric(w, "weft_gateway_tunnels_active", "ws") == 0, "the tunnels to end")

    async def again():  # the slots came back
        async with websockets.connect(w.ws + "/ws/echo") as ws:
            await ws.send("again")
            assert await ws.recv() == "again"
    run(again())


def test_idle_timeout_closes_both_sides(spawn, tmp_path):
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port)
    s, _ = handshake(w.gw_port, "/quiet/echo")
    t0 = time.monotonic()
    read_to_eof(s, timeout=10)  # nothing either way: the gateway closes after 1 s
    s.close()
    assert 0.9 <= time.monotonic() - t0 < 5
    wait_for(lambda: upstream_state(up)["open"] == 0, "the upstream's end to close")


def test_stop_with_tunnels_open(spawn, tmp_path):
    """SIGTERM while a tunnel is open: weft closes it and exits 0 (spawn's teardown would
    fail on a kill or another status); the client sees its connection end."""
    up = start_upstream(spawn)
    w = start_weft(spawn, tmp_path, up.port)
    s, rest = handshake(w.gw_port, "/ws/echo")
    s.sendall(frame(b"still here"))
    s.settimeout(WAIT)
    while b"still here" not in rest:
        rest += s.recv(65536)
    assert w.stop() == 0
    read_to_eof(s)
    s.close()
    wait_for(lambda: upstream_state(up)["open"] == 0, "the upstream's end to close")


@pytest.mark.parametrize("config,where,what", [
    ("      websocket: { idle_timeout: soon }\n",
     ":6:34: gateway.routes[0].websocket.idle_timeout:", "soon"),
    ("      websocket: { enabled: maybe }\n",
     ":6:29: gateway.routes[0].websocket.enabled:", "maybe"),
    ("      websocket: { idel_timeout: 1s }\n",
     ":6:20: gateway.routes[0].websocket.idel_timeout:", "did you mean"),
    ("      websocket: true\n",
     ":6:18: gateway.routes[0].websocket:", "map"),
])
def test_bad_websocket_config_refused_with_its_position(tmp_path, config, where, what):
    import subprocess
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("gateway:\n  routes:\n    - name: x\n      match: { path: /x }\n"
                   "      service: s\n" + config)
    r = subprocess.run([str(WEFT), "serve", "--config", str(cfg), "--api",
                        f"127.0.0.1:{free_port()}", "--gateway", f"127.0.0.1:{free_port()}",
                        "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert str(cfg) + where in line and what in line, line


def test_raw_tunnel_to_faulty_with_early_bytes(spawn, tmp_path, faulty):
    """Through the gateway to faulty.py's /ws (a 101, then a raw echo): the first tunnel
    bytes come in the same packet as the upgrade request (they are the tunnel's, not a next
    request), 300,000 bytes echo back, and a half-close comes back as faulty's FIN."""
    f = faulty("ws")
    w = start_weft(spawn, tmp_path, f.port)
    s = socket.create_connection(("127.0.0.1", w.gw_port), timeout=WAIT)
    s.sendall(b"GET /ws/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
              b"\r\n\x81\x05early")
    out = b""
    while not (b"\r\n\r\n" in out and out.endswith(b"early")):
        got = s.recv(65536)
        assert got, out
        out += got
    head, _, rest = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in lines
    assert b"Upgrade: websocket" in lines and b"Connection: Upgrade" in lines
    assert rest == b"\x81\x05early"
    blob = os.urandom(300000)
    s.sendall(blob)
    got = b""
    while len(got) < len(blob):
        b = s.recv(65536)
        assert b, len(got)
        got += b
    assert got == blob
    s.shutdown(socket.SHUT_WR)
    assert read_to_eof(s) == b""
    s.close()
    wait_for(lambda: metric(w, "weft_gateway_tunnels_active", "ws") == 0, "the tunnel to end")
    m = requests.get(w.api + "/metrics", timeout=WAIT).text
    assert re.search(r'weft_gateway_requests_total\{route="ws",upstream="127\.0\.0\.1:\d+",'
                     r'code="101"\} 1', m), m
