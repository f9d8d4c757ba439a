#!/usr/bin/env python3
"""bench/registry.py - the client side of bench/registry (plain sockets, http.client, epoll).

    registry.py load PORT N [--services S] [--prefix P] [--check ttl|URL] [--interval I]
                            [--conc C]
        registers N instances through PUT /v1/agent/service/register on 127.0.0.1:PORT, over
        C keep-alive connections (threads) at once: instance i is ID P-SS-i of service P-SS
        (SS = i mod S), address 127.1.SS.(i/S mod 250 + 1), with a TTL check (1 h, passing)
        or an HTTP check of URL every I. Prints "N seconds registrations/s" on stdout.

    registry.py mirror PORT S PREFIX ETCD_PORT WWW ZONE
        for each service PREFIX-SS (SS < S): reads GET /v1/health/service/NAME?passing from
        weft, writes the body to WWW/v1/health/service/NAME (what NGINX serves), puts each
        element of the array into etcd under /svc/NAME/ID (its compact JSON as the value),
        and appends A records of the instances' addresses to ZONE (for NSD). Prints the body
        sizes and whether re-joining etcd's values gives weft's bytes.

    registry.py hold PORT PID N SERVICE [--wakes W] [--settle S] [--inflight K]
        holds N blocking queries GET /v1/health/service/SERVICE?index=I&wait=10m on N
        connections to weft (PID), reads VmRSS before and after (bytes per parked query),
        then W times: registers a new instance of SERVICE (the change) and times, for every
        parked query, the arrival of its answer after the moment the registration was sent;
        each query is then parked again at the new index. Prints on stdout
            rss rss_before_kib rss_after_kib bytes_per_query parked
            wake K put_ms p50_ms p99_ms max_ms answered
        and progress on stderr; exits 1 when a query failed or went unanswered for 30 s.

Every wait is bounded; errors exit 1 with the reason on stderr.
"""
import argparse
import base64
import errno
import http.client
import itertools
import json
import os
import re
import resource
import selectors
import socket
import struct
import sys
import threading
import time


def fail(msg):
    print(f"registry.py: {msg}", file=sys.stderr)
    sys.exit(1)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail(f"no VmRSS for process {pid}")


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    m = re.search(rf"^{name} (\S+)$", body, re.M)
    if not m:
        fail(f"no {name} in /metrics")
    return float(m.group(1))


def body_of(i, a):
    svc = i % a.services
    name = f"{a.prefix}-{svc:02d}"
    b = {"Name": name, "ID": f"{name}-{i}", "Address": f"127.1.{svc % 250}.{i // a.services % 250 + 1}",
         "Port": 8080 + i % 1000, "Tags": ["v1", "bench"], "Meta": {"version": "1.0"}}
    if a.check == "ttl":
        b["Check"] = {"TTL": "1h", "Status": "passing"}
    else:
        b["Check"] = {"HTTP": a.check, "Interval": a.interval, "Timeout": "5s"}
    return json.dumps(b).encode()


def load(a):
    ids = itertools.count(a.first)
    end = a.first + a.n
    errors = []

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
        while not errors:
            i = next(ids)
            if i >= end:
                break
            try:
                c.request("PUT", "/v1/agent/service/register", body=body_of(i, a),
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                text = r.read()
            except OSError as e:
                errors.append(f"instance {i}: {e}")
                break
            if r.status != 200:
                errors.append(f"instance {i}: {r.status} {text[:200]!r}")
        c.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(a.conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    if errors:
        fail(f"registration failed: {errors[0]}")
    print(f"{a.n} {dt:.2f} {a.n / dt:.0f}")


def mirror(a):
    w = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
    e = http.client.HTTPConnection("127.0.0.1", a.etcd_port, timeout=10)
    b64 = lambda s: base64.b64encode(s.encode() if isinstance(s, str) else s).decode()
    sizes, same, zone = [], 0, []
    for s in range(a.services):
        name = f"{a.prefix}-{s:02d}"
        w.request("GET", f"/v1/health/service/{name}?passing")
        r = w.getresponse()
        body = r.read()
        if r.status != 200:
            fail(f"{name}: {r.status}")
        items = json.loads(body)
        if not items:
            fail(f"{name}: no passing instance")
        path = os.path.join(a.www, "v1/health/service", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)
        sizes.append(len(body))
        values = []
        for it in items:
            v = json.dumps(it, separators=(",", ":"))
            values.append(v)
            key = f"/svc/{name}/{it['Service']['ID']}"
            e.request("POST", "/v3/kv/put", body=json.dumps({"key": b64(key), "value": b64(v)}))
            r = e.getresponse()
            text = r.read()
            if r.status != 200:
                fail(f"etcd put {key}: {r.status} {text[:200]!r}")
            zone.append(f"{name}.service.consul. 0 IN A {it['Service']['Address']}")
        same += ("[" + ",".join(values) + "]").encode() == body
    with open(a.zone, "a") as f:
        f.write("\n".join(zone) + "\n")
    sizes.sort()
    print(f"{a.services} services, {len(zone)} instances; answer bodies {sizes[0]}-{sizes[-1]} "
          f"bytes (median {sizes[len(sizes) // 2]}); etcd's values re-joined give weft's bytes "
          f"for {same} of {a.services}")


def complete(buf):
    """The length of one whole response at the start of buf (0: not yet), its status, its
    X-Consul-Index."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return 0, 0, 0
    head = buf[:end].split(b"\r\n")
    status = int(head[0].split()[1])
    length = index = 0
    for line in head[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"x-consul-index":
            index = int(v)
    if len(buf) < end + 4 + length:
        return 0, 0, 0
    return end + 4 + length, status, index


def hold(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.n + 64 > hard:
        fail(f"{a.n} queries do not fit the open-file limit ({hard})")
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
    c.request("GET", f"/v1/health/service/{a.service}")
    r = c.getresponse()
    r.read()
    index = int(r.getheader("X-Consul-Index"))
    time.sleep(0.5)
    before = rss_kib(a.pid)

    def req(idx):
        return (f"GET /v1/health/service/{a.service}?index={idx}&wait=10m HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\n\r\n").encode()

    sel = selectors.EpollSelector()
    addr = ("127.0.0.1", a.port)
    socks = []
    q = req(index)
    pending = []  # connecting
    opened = 0
    t0 = time.monotonic()
    while opened < a.n or pending:
        while opened < a.n and len(pending) < a.inflight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS):
                fail(f"connect: {errno.errorcode.get(err, err)} after {opened} connections")
            sel.register(s, selectors.EVENT_WRITE, s)
            pending.append(s)
            opened += 1
        ev = sel.select(timeout=10)
        if not ev:
            fail(f"no progress connecting for 10 s ({len(socks)} of {a.n})")
        for key, _ in ev:
            s = key.data
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                fail(f"connect: {errno.errorcode.get(err, err)}")
            if s.send(q) != len(q):
                fail("short send")
            sel.unregister(s)
            pending.remove(s)
            socks.append(s)
    # every query parked: the server's gauge says so (bounded wait)
    deadline = time.monotonic() + 30
    while metric(a.port, "weft_registry_blocking_queries") < a.n:
        if time.monotonic() > deadline:
            fail(f"only {metric(a.port, 'weft_registry_blocking_queries'):.0f} of {a.n} "
                 f"queries parked after 30 s")
        time.sleep(0.2)
    print(f"registry.py: {a.n} blocking queries parked in {time.monotonic() - t0:.1f} s, "
          f"sitting {a.settle:g} s", file=sys.stderr)
    time.sleep(a.settle)
    after = rss_kib(a.pid)
    print(f"rss {before} {after} {(after - before) * 1024 / a.n:.0f} "
          f"{metric(a.port, 'weft_registry_blocking_queries'):.0f}", flush=True)

    for s in socks:
        sel.register(s, selectors.EVENT_READ, [s, b""])
    for k in range(1, a.wakes + 1):
        time.sleep(1)  # the queries sit a moment at their new index
        body = json.dumps({"Name": a.service, "ID": f"{a.service}-wake-{k}",
                           "Address": "127.2.0.%d" % k, "Port": 9000 + k,
                           "Check": {"TTL": "1h", "Status": "passing"}}).encode()
        w = socket.create_connection(addr, timeout=10)
        msg = (f"PUT /v1/agent/service/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        sel.register(w, selectors.EVENT_READ, [w, b""])
        t_change = time.monotonic()
        w.sendall(msg)
        put_ms = None
        lat = []
        new_index = 0
        deadline = t_change + 30
        while len(lat) < a.n or put_ms is None:
            ev = sel.select(timeout=max(0.0, deadline - time.monotonic()))
            now = time.monotonic()
            if not ev:
                fail(f"wake {k}: {len(lat)} of {a.n} answered after 30 s"
                     + ("" if put_ms is not None else "; the registration unanswered"))
            for key, _ in ev:
                s, buf = key.data
                chunk = s.recv(65536)
                if not chunk:
                    fail(f"wake {k}: a connection closed by the server")
                key.data[1] = buf = buf + chunk
                n, status, idx = complete(buf)
                if not n:
                    continue
                if status != 200:
                    fail(f"wake {k}: status {status}")
                key.data[1] = buf[n:]
                if s is w:
                    put_ms = (now - t_change) * 1e3
                    sel.unregister(w)
                    w.close()
                else:
                    lat.append(now - t_change)
                    new_index = max(new_index, idx)
        lat.sort()
        pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3
        print(f"wake {k} {put_ms:.1f} {pct(0.5):.1f} {pct(0.99):.1f} {lat[-1] * 1e3:.1f} "
              f"{len(lat)}", flush=True)
        if k < a.wakes:  # park every query again at the new index
            q = req(new_index)
            for s in socks:
                s.sendall(q)
            deadline = time.monotonic() + 30
            while metric(a.port, "weft_registry_blocking_queries") < a.n:
                if time.monotonic() > deadline:
                    fail(f"wake {k}: queries not parked again within 30 s")
                time.sleep(0.2)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("load")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--services", type=int, default=100)
    p.add_argument("--prefix", default="svc")
    p.add_argument("--check", default="ttl")
    p.add_argument("--interval", default="1s")
    p.add_argument("--conc", type=int, default=50)
    p.add_argument("--first", type=int, default=0)
    p = sub.add_parser("mirror")
    p.add_argument("port", type=int)
    p.add_argument("services", type=int)
    p.add_argument("prefix")
    p.add_argument("etcd_port", type=int)
    p.add_argument("www")
    p.add_argument("zone")
    p = sub.add_parser("hold")
    p.add_argument("port", type=int)
    p.add_argument("pid", type=int)
    p.add_argument("n", type=int)
    p.add_argument("service")
    p.add_argument("--wakes", type=int, default=3)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--inflight", type=int, default=256)
    a = ap.parse_args()
    {"load": load, "mirror": mirror, "hold": hold}[a.cmd](a)


if __name__ == "__main__":
    main()
