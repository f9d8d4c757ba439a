#!/usr/bin/env python3
"""bench/idle.py - the client of bench/idle: RSS per idle keep-alive connection of one server.

    idle.py PORT PID N [--settle S] [--inflight K]

Warm-up: 20 connections, one GET /hello each, closed (RST). Then it reads VmRSS of PID
from /proc/PID/status, opens N keep-alive connections to 127.0.0.1:PORT (at most K
connecting or waiting for their response at a time), sends one GET /hello on each and
reads its whole response (status 200, Content-Length body), lets them all sit S seconds,
reads VmRSS again, and checks that every connection is still open: on the client side (a
non-blocking peek finds nothing to read and no EOF) and on the server's (`ss` counts the
established connections whose source port is PORT). Prints one line on stdout:

    rss_before_kib rss_after_kib bytes_per_conn open_client open_server

and progress on stderr; exits 1 when a connection failed, was closed, or got no 200.
Every connection is closed with a reset (SO_LINGER 0) at the end, so that no TIME_WAIT
sockets are left behind on this side. Epoll (selectors), so 10,000 sockets are fine; the
open-file limit is raised to its hard limit first.
"""
import argparse
import errno
import resource
import selectors
import socket
import struct
import subprocess
import sys
import time

REQ = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"idle.py: no VmRSS for process {pid}")


def complete(buf):
    """True when buf holds one whole response (head and Content-Length body)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    if not buf.startswith(b"HTTP/1.1 200 "):
        raise SystemExit(f"idle.py: not a 200: {buf[:60]!r}")
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return len(buf) >= end + 4 + length


def open_idle(port, n, inflight):
    """n connections, each with one request answered; returns their sockets."""
    sel = selectors.EpollSelector()
    addr = ("127.0.0.1", port)
    opened = pending = 0
    done = []
    while len(done) < n:
        while opened < n and pending < inflight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS):
                raise SystemExit(f"idle.py: connect: {errno.errorcode.get(err, err)} "
                                 f"after {opened} connections")
            sel.register(s, selectors.EVENT_WRITE, [s, b""])
            opened += 1
            pending += 1
        events = sel.select(timeout=10)
        if not events:
            raise SystemExit(f"idle.py: no progress for 10 s ({len(done)} of {n} answered)")
        for key, ev in events:
            s, buf = key.data
            if ev & selectors.EVENT_WRITE:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise SystemExit(f"idle.py: connect: {errno.errorcode.get(err, err)}")
                if s.send(REQ) != len(REQ):
                    raise SystemExit("idle.py: short send")
                sel.modify(s, selectors.EVENT_READ, key.data)
                continue
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit(f"idle.py: closed by the server before its response "
                                 f"({len(done)} of {n} answered)")
            key.data[1] = buf = buf + chunk
            if complete(buf):
                sel.unregister(s)
                done.append(s)
                pending -= 1
    sel.close()
    return done


def still_open(socks):
    n = 0
    for s in socks:
        try:
            s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            n += 1  # nothing to read, no EOF: open and idle
        except OSError:
            pass
    return n


def server_established(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def reset_all(socks):
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("pid", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--inflight", type=int, default=256)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.n + 64 > hard:
        raise SystemExit(f"idle.py: {a.n} connections do not fit the open-file limit ({hard})")
    reset_all(open_idle(a.port, 20, 20))
    time.sleep(0.5)
    before = rss_kib(a.pid)
    t0 = time.monotonic()
    socks = open_idle(a.port, a.n, a.inflight)
    print(f"idle.py: {a.n} connections answered in {time.monotonic() - t0:.1f} s, "
          f"sitting {a.settle:g} s", file=sys.stderr)
    time.sleep(a.settle)
    after = rss_kib(a.pid)
    open_client = still_open(socks)
    open_server = server_established(a.port)
    reset_all(socks)
    print(f"{before} {after} {(after - before) * 1024 / a.n:.0f} {open_client} {open_server}")
    if open_client != a.n or open_server < a.n:
        print(f"idle.py: {a.n - open_client} connections closed (client side), "
              f"{open_server} established on the server's port", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
