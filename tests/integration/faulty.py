#!/usr/bin/python3
"""faulty: an HTTP/1.1 upstream that misbehaves on demand, for testing a proxy in front of it.

    /usr/bin/python3 tests/integration/faulty.py --port N [--name NAME] [--host H]
                                                 [--idle-timeout S] [--max-head BYTES]

Standard library only (asyncio). It prints nothing but errors, answers once it listens, and
exits with status 0 on SIGTERM (or SIGINT).

As an HTTP/1.1 server it keeps connections alive (HTTP/1.0: only with Connection:
keep-alive), reads Content-Length and chunked request bodies (trailers included), answers
pipelined requests one after the other in order, answers HEAD with the head GET would get,
sends 100 Continue for Expect: 100-continue, honours Connection: close, and answers
malformed requests with 400 (431 for a head over --max-head bytes, default 64 KiB, 505 for
another HTTP version) and a close. A request body is always read to its end (and hashed on the way) before the answer,
so a connection stays usable whatever the path. An idle connection is closed after
--idle-timeout seconds (default 60). Every answer carries X-Faulty-Name: NAME.

Behaviour by path (any method; HEAD gets the head only):
  /status/N             answers N (200..599) with {"name", "path", "status"} (204/304: no body)
  /delay/MS             waits MS ms, then answers 200 {"name", "path", "delayed_ms"}
  /delay-body/MS        sends the head (Content-Length) at once, the body MS ms later
  /reset                reads the request, then closes with a TCP RST (SO_LINGER 0)
  /close                reads the request, then closes (FIN) without any response
  /garbage              sends GARBAGE (bytes that are not HTTP), then closes
  /bad-length           sends Content-Length BAD_LENGTH_EXTRA bytes over the body, then closes
  /slow-body?chunks=10&interval=100&size=1000
                        head at once (chunked), then before each chunk waits interval ms;
                        chunk i is `size` times the byte ord('a') + i % 26
  /big?bytes=N[&chunked=1]
                        a body of N bytes (default 1 MiB), byte k being k % 256, streamed in
                        64 KiB writes (Content-Length, or chunked with chunked=1)
  /echo                 200 {"name", "method", "target", "version", "headers": [[name, value],
                        ...] (as received, in order), "body_length", "body_sha256"}; the body
                        is hashed as it streams in, so any size takes constant memory
  /headers              the same without the body fields
  /ws                   with Upgrade: websocket and Sec-WebSocket-Key: 101, then echoes every
                        byte back raw (no framing) until the client closes; 400 without them
  anything else         200 {"name": NAME, "path": PATH}

By header, for any path except the control endpoints: X-Fault: a comma-separated list of
status=N, delay=MS, reset, close, garbage (same meanings as the paths). Delays add up; the
first of the others decides the answer.

Control endpoints (never subject to any fault, never counted in the request counters):
  POST /_fault {"mode": "status", "status": 503}   every request answers 503
         (with "retry_after": "2", also Retry-After: 2)
         {"mode": "delay", "ms": 300}            every request waits 300 ms first
         {"mode": "reset"} / {"mode": "close"} / {"mode": "garbage"}
         {"mode": "off"}                         back to normal
       with optional "count": N (only the next N requests the fault applies to, then off),
       "probability": P with "seed": S (each request that matches draws
       random.Random(S).random() in turn and is faulted when the draw is below P; P = 1
       draws nothing), "path": PREFIX (only requests whose path starts with PREFIX match).
       Answers the fault now in force, as GET /_fault does.
  GET /_stats      {"name", "requests" (total, counted at the end of the head),
                    "requests_complete" (those whose body was then read to its end),
                    "requests_by_path", "responses_by_status",
                    "connections_active" (this one included), "connections_accepted",
                    "resets_sent", "closes_sent" (closes without a response), "faults_applied"
                    (by X-Fault or /_fault), "control_requests"}
  DELETE /_stats   zeroes the counters (connections_active stays: it is a gauge) and forgets
                   the requests /_requests lists
  GET /_requests   {"requests": [{"method", "target", "headers": [[name, value], ...]}, ...]}:
                   the heads of the last 256 requests (not control ones), oldest first, as
                   received, whatever their answer (a fault, a reset included)

Python helper (used by the `faulty` fixture in conftest.py):

    from faulty import Faulty
    up = Faulty.start(name="a")            # a subprocess on a free port, answering
    up.set_fault("status", status=503, count=2)
    requests.get(up.url + "/x")            # 503, 503, then 200
    up.stats()["requests"]
    up.stop()                              # SIGTERM; returns the exit status (0)
"""
import argparse
import asyncio
import collections
import base64
import email.utils
import hashlib
import http
import http.client
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
import urllib.parse

GARBAGE = b"\x00\xff\xfeTHIS IS NOT HTTP\x01\x02\x03\r\n\r\n\xde\xad\xbe\xef"
BAD_LENGTH_EXTRA = 100
HEAD_LIMIT = 65536
MAX_HEADERS = 128
BLOCK = 65536
PATTERN = bytes(range(256)) * (BLOCK // 256)  # /big's body: byte k is k % 256
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
CONTROL = ("/_fault", "/_stats", "/_requests")
SEEN_MAX = 256  # request heads /_requests keeps


class BadRequest(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


class Request:
    def __init__(self, method, target, version, headers):
        self.method, self.target, self.version, self.headers = method, target, version, headers
        if target.startswith("/"):
            split = urllib.parse.urlsplit(target)
        elif target.lower().startswith(("http://", "https://")):
            split = urllib.parse.urlsplit(target)
        elif target == "*" and method == "OPTIONS":
            split = urllib.parse.urlsplit("*")
        else:
            raise BadRequest(400, f"bad request target {target!r}")
        self.path = split.path or "/"
        self.query = urllib.parse.parse_qs(split.query)
        tokens = {t.strip().lower() for v in self.all("connection") for t in v.split(",")}
        self.upgrade_requested = "upgrade" in tokens
        if version == "HTTP/1.1":
            self.keep_alive = "close" not in tokens
        else:
            self.keep_alive = "keep-alive" in tokens and "close" not in tokens
        self.head = method == "HEAD"

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name]

    def get(self, name, default=None):
        vals = self.all(name)
        return vals[0] if vals else default

    def qint(self, name, default, lo=0, hi=1 << 62):
        v = self.query.get(name, [None])[-1]
        if v is None:
            return default
        try:
            n = int(v)
        except ValueError:
            raise BadRequest(400, f"{name}={v!r} is not an integer")
        if not lo <= n <= hi:
            raise BadRequest(400, f"{name}={n} is out of range")
        return n


def parse_head(raw):
    """The request line and header lines (the bytes before CRLF CRLF) as a Request."""
    lines = raw.split(b"\r\n")
    for ln in lines:
        if b"\n" in ln or b"\r" in ln or b"\x00" in ln:
            raise BadRequest(400, "bare CR, LF or NUL in the head")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise BadRequest(400, "bad request line")
    version = parts[2].decode("latin-1")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if re.fullmatch(r"HTTP/\d\.\d", version):
            raise BadRequest(505, f"{version} is not supported")
        raise BadRequest(400, "bad HTTP version")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(431, "too many header fields")
    headers = []
    for ln in lines[1:]:
        if ln[:1] in (b" ", b"\t"):
            raise BadRequest(400, "obsolete line folding")
        name, sep, value = ln.partition(b":")
        if not sep or not TOKEN.fullmatch(name):
            raise BadRequest(400, f"bad header line {ln[:80]!r}")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    req = Request(parts[0].decode("latin-1"), parts[1].decode("latin-1"), version, headers)
    if version == "HTTP/1.1" and len(req.all("host")) != 1:
        raise BadRequest(400, "HTTP/1.1 needs exactly one Host")
    return req


def body_framing(req):
    """("chunked", None), ("length", n) for a request body."""
    te = req.all("transfer-encoding")
    cl = req.all("content-length")
    if te:
        if req.version == "HTTP/1.0":
            raise BadRequest(400, "Transfer-Encoding in HTTP/1.0")
        if cl:
            raise BadRequest(400, "both Transfer-Encoding and Content-Length")
        codings = [c.strip().lower() for v in te for c in v.split(",")]
        if codings[-1] != "chunked" or codings.count("chunked") != 1:
            raise BadRequest(400, f"unsupported Transfer-Encoding {te}")
        return "chunked", None
    if cl:
        vals = {c.strip() for v in cl for c in v.split(",")}
        if len(vals) != 1:
            raise BadRequest(400, "conflicting Content-Length")
        v = vals.pop()
        if not v.isdigit() or len(v) > 18:
            raise BadRequest(400, f"bad Content-Length {v!r}")
        return "length", int(v)
    return "length", 0


class Fault:
    """The fault set by POST /_fault."""

    MODES = ("off", "status", "delay", "reset", "close", "garbage")

    def __init__(self, spec=None):
        spec = dict(spec or {"mode": "off"})
        self.mode = spec.pop("mode", None)
        if self.mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}")
        self.status = int(spec.pop("status", 503))
        if not 200 <= self.status <= 599:
            raise ValueError("status must be within 200..599")
        self.retry_after = spec.pop("retry_after", None)
        if self.retry_after is not None and (not isinstance(self.retry_after, str) or
                                             not self.retry_after.isprintable()):
            raise ValueError("retry_after must be a string (a Retry-After value)")
        self.ms = float(spec.pop("ms", 0))
        if self.mode == "delay" and not 0 <= self.ms <= 600000:
            raise ValueError("ms must be within 0..600000")
        count = spec.pop("count", None)
        self.count = None if count is None else int(count)
        if self.count is not None and self.count < 0:
            raise ValueError("count must be 0 or more")
        if self.count == 0:
            self.mode = "off"
        self.probability = float(spec.pop("probability", 1.0))
        if not 0 <= self.probability <= 1:
            raise ValueError("probability must be within 0..1")
        self.seed = spec.pop("seed", None)
        self.rng = random.Random(self.seed)
        self.path = spec.pop("path", None)
        if spec:
            raise ValueError(f"unknown fields {sorted(spec)}")

    def describe(self):
        d = {"mode": self.mode}
        if self.mode == "status":
            d["status"] = self.status
            if self.retry_after is not None:
                d["retry_after"] = self.retry_after
        if self.mode == "delay":
            d["ms"] = self.ms
        if self.mode != "off":
            d.update(count=self.count, probability=self.probability, seed=self.seed,
                     path=self.path)
        return d

    def take(self, path):
        """The fault action for this request, or None."""
        if self.mode == "off" or (self.path is not None and not path.startswith(self.path)):
            return None
        if self.probability < 1 and self.rng.random() >= self.probability:
            return None
        if self.count is not None:
            self.count -= 1
            if self.count <= 0:
                action = self.action()
                self.mode = "off"
                return action
        return self.action()

    def action(self):
        if self.mode == "status":
            return ("status", (self.status, self.retry_after))
        if self.mode == "delay":
            return ("delay", self.ms)
        return (self.mode, None)


def parse_x_fault(value):
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, arg = item.partition("=")
        key = key.strip().lower()
        try:
            if key == "status":
                n = int(arg)
                if not 200 <= n <= 599:
                    raise ValueError
                out.append(("status", n))
            elif key == "delay":
                out.append(("delay", float(arg)))
            elif key in ("reset", "close", "garbage") and not arg:
                out.append((key, None))
            else:
                raise ValueError
        except ValueError:
            raise BadRequest(400, f"bad X-Fault item {item!r}")
    return out


class Stats:
    def __init__(self):
        self.active = 0
        self.zero()

    def zero(self):
        self.requests = 0
        self.complete = 0
        self.by_path = {}
        self.by_status = {}
        self.accepted = 0
        self.resets = 0
        self.closes = 0
        self.faults = 0
        self.control = 0
        self.seen = collections.deque(maxlen=SEEN_MAX)

    def as_dict(self, name):
        return {"name": name, "requests": self.requests, "requests_complete": self.complete,
                "requests_by_path": self.by_path,
                "responses_by_status": self.by_status, "connections_active": self.active,
                "connections_accepted": self.accepted, "resets_sent": self.resets,
                "closes_sent": self.closes, "faults_applied": self.faults,
                "control_requests": self.control}


class Aborted(Exception):
    """The connection was closed or reset on purpose: nothing more to do on it."""


class Conn:
    def __init__(self, srv, reader, writer):
        self.srv, self.reader, self.writer = srv, reader, writer

    async def read(self, coro):
        return await asyncio.wait_for(coro, self.srv.idle_timeout)

    # --- writing ---

    def head_bytes(self, req, status, headers, keep):
        reason = reason_phrase(status)
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {email.utils.formatdate(usegmt=True)}",
                 "Server: faulty", f"X-Faulty-Name: {self.srv.name}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if not keep:
            lines.append("Connection: close")
        elif req is not None and req.version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    def count_status(self, req, status):
        if req is not None and req.path not in CONTROL:
            k = str(status)
            self.srv.stats.by_status[k] = self.srv.stats.by_status.get(k, 0) + 1

    async def respond(self, req, status, body=b"", ctype="application/json", keep=True,
                      headers=()):
        """A complete response with Content-Length (none for 204/304); HEAD: head only."""
        if isinstance(body, (dict, list)):
            body = (json.dumps(body) + "\n").encode()
        keep = keep and req is not None and req.keep_alive
        hdrs = list(headers)
        nobody = status in (204, 304) or 100 <= status < 200
        if not nobody:
            hdrs += [("Content-Type", ctype), ("Content-Length", str(len(body)))]
        self.count_status(req, status)
        data = self.head_bytes(req, status, hdrs, keep)
        if not nobody and not (req is not None and req.head):
            data += body
        await self.send(data)
        return keep

    async def reset(self):
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.srv.stats.resets += 1
        self.writer.transport.abort()
        raise Aborted()

    async def close_silently(self):
        self.srv.stats.closes += 1
        self.writer.close()
        raise Aborted()

    async def garbage(self):
        await self.send(GARBAGE)
        self.writer.close()
        raise Aborted()

    # --- reading ---

    async def drain_body(self, req, hasher):
        """Reads the request body to its end, feeding hasher; returns its length."""
        kind, n = body_framing(req)
        if req.get("expect", "").lower() == "100-continue" and req.version == "HTTP/1.1" \
                and (kind == "chunked" or n):
            await self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        total = 0
        if kind == "length":
            left = n
            while left:
                b = await self.read(self.reader.read(min(BLOCK, left)))
                if not b:
                    raise asyncio.IncompleteReadError(b"", left)
                hasher.update(b)
                left -= len(b)
            return n
        while True:
            line = await self.read(self.reader.readuntil(b"\r\n"))
            size_s = line[:-2].split(b";", 1)[0].strip(b" \t")
            if not size_s or len(size_s) > 16 or \
                    not all(c in b"0123456789abcdefABCDEF" for c in size_s):
                raise BadRequest(400, f"bad chunk size line {line[:40]!r}")
            size = int(size_s, 16)
            if size == 0:
                break
            left = size
            while left:
                b = await self.read(self.reader.read(min(BLOCK, left)))
                if not b:
                    raise asyncio.IncompleteReadError(b"", left)
                hasher.update(b)
                left -= len(b)
            total += size
            if await self.read(self.reader.readexactly(2)) != b"\r\n":
                raise BadRequest(400, "chunk data not followed by CRLF")
        while True:  # trailer section
            line = await self.read(self.reader.readuntil(b"\r\n"))
            if line == b"\r\n":
                return total

    # --- the connection ---

    async def run(self):
        while True:
            try:
                raw = await self.read(self.reader.readuntil(b"\r\n\r\n"))
            except asyncio.LimitOverrunError:
                await self.respond(None, 431, {"error": "request head too large"}, keep=False)
                return
            except (asyncio.IncompleteReadError, TimeoutError):
                return
            raw = raw[:-4].lstrip(b"\r\n")
            if not raw:
                continue
            try:
                req = parse_head(raw)
                keep = await self.serve(req)
            except BadRequest as e:
                await self.respond(None, e.status, {"error": str(e)}, keep=False)
                return
            except (asyncio.LimitOverrunError, TimeoutError):
                await self.respond(None, 400, {"error": "bad or stalled request body"},
                                   keep=False)
                return
            if not keep:
                return

    async def serve(self, req):
        srv = self.srv
        if req.path in CONTROL:
            return await self.control(req)
        st = srv.stats
        st.requests += 1
        st.by_path[req.path] = st.by_path.get(req.path, 0) + 1
        st.seen.append({"method": req.method, "target": req.target,
                        "headers": [list(h) for h in req.headers]})
        actions = []
        act = srv.fault.take(req.path)
        if act:
            actions.append(act)
        actions += parse_x_fault(", ".join(req.all("x-fault")))
        if actions:
            st.faults += 1
        ws = req.path == "/ws"
        hasher = hashlib.sha256()
        length = await self.drain_body(req, hasher)
        st.complete += 1
        delay = sum(a[1] for a in actions if a[0] == "delay")
        if delay:
            await asyncio.sleep(delay / 1000)
        for kind, arg in actions:
            if kind == "status":
                n, ra = arg if isinstance(arg, tuple) else (arg, None)
                return await self.respond(req, n, {"name": srv.name, "path": req.path,
                                                   "status": n},
                                          headers=[("Retry-After", ra)] if ra else ())
            if kind == "reset":
                await self.reset()
            if kind == "close":
                await self.close_silently()
            if kind == "garbage":
                await self.garbage()
        return await self.route(req, length, hasher, ws)

    async def route(self, req, length, hasher, ws):
        srv, p = self.srv, req.path
        m = re.fullmatch(r"/status/(\d{1,3})", p)
        if m:
            n = int(m.group(1))
            if not 200 <= n <= 599:
                raise BadRequest(400, "status must be within 200..599")
            return await self.respond(req, n, {"name": srv.name, "path": p, "status": n})
        m = re.fullmatch(r"/delay(-body)?/(\d{1,7})", p)
        if m:
            ms = int(m.group(2))
            body = (json.dumps({"name": srv.name, "path": p, "delayed_ms": ms}) + "\n").encode()
            if not m.group(1):
                await asyncio.sleep(ms / 1000)
                return await self.respond(req, 200, body)
            keep = req.keep_alive
            self.count_status(req, 200)
            await self.send(self.head_bytes(req, 200, [("Content-Type", "application/json"),
                                                       ("Content-Length", str(len(body)))],
                                            keep))
            if not req.head:
                await asyncio.sleep(ms / 1000)
                await self.send(body)
            return keep
        if p == "/reset":
            await self.reset()
        if p == "/close":
            await self.close_silently()
        if p == "/garbage":
            await self.garbage()
        if p == "/bad-length":
            body = (json.dumps({"name": srv.name, "path": p}) + "\n").encode()
            self.count_status(req, 200)
            await self.send(self.head_bytes(
                req, 200, [("Content-Type", "application/json"),
                           ("Content-Length", str(len(body) + BAD_LENGTH_EXTRA))], False)
                + (b"" if req.head else body))
            self.writer.close()
            raise Aborted()
        if p == "/slow-body":
            chunks = req.qint("chunks", 10, 0, 1 << 20)
            interval = req.qint("interval", 100, 0, 600000)
            size = req.qint("size", 1000, 1, 1 << 24)
            return await self.slow_body(req, chunks, interval, size)
        if p == "/big":
            return await self.big(req, req.qint("bytes", 1 << 20), req.qint("chunked", 0, 0, 1))
        if p in ("/echo", "/headers"):
            d = {"name": srv.name, "method": req.method, "target": req.target,
                 "version": req.version, "headers": [[n, v] for n, v in req.headers]}
            if p == "/echo":
                d.update(body_length=length, body_sha256=hasher.hexdigest())
            return await self.respond(req, 200, d)
        if ws:
            return await self.websocket(req)
        return await self.respond(req, 200, {"name": srv.name, "path": p})

    async def slow_body(self, req, chunks, interval, size):
        chunked = req.version == "HTTP/1.1"
        keep = req.keep_alive
        hdrs = [("Content-Type", "application/octet-stream")]
        hdrs.append(("Transfer-Encoding", "chunked") if chunked
                    else ("Content-Length", str(chunks * size)))
        self.count_status(req, 200)
        await self.send(self.head_bytes(req, 200, hdrs, keep))
        if req.head:
            return keep
        for i in range(chunks):
            await asyncio.sleep(interval / 1000)
            data = bytes([ord("a") + i % 26]) * size
            await self.send(b"%x\r\n%s\r\n" % (size, data) if chunked else data)
        if chunked:
            await self.send(b"0\r\n\r\n")
        return keep

    async def big(self, req, n, chunked):
        chunked = chunked and req.version == "HTTP/1.1"
        keep = req.keep_alive
        hdrs = [("Content-Type", "application/octet-stream")]
        hdrs.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(n)))
        self.count_status(req, 200)
        await self.send(self.head_bytes(req, 200, hdrs, keep))
        if req.head:
            return keep
        view = memoryview(PATTERN)
        left = n
        while left:
            k = min(BLOCK, left)  # BLOCK is a multiple of 256: each block starts at byte 0
            if chunked:
                self.writer.write(b"%x\r\n" % k)
                self.writer.write(view[:k])
                self.writer.write(b"\r\n")
            else:
                self.writer.write(view[:k])
            await self.writer.drain()
            left -= k
        if chunked:
            await self.send(b"0\r\n\r\n")
        return keep

    async def websocket(self, req):
        key = req.get("sec-websocket-key")
        upgrade = req.get("upgrade", "").lower()
        if not (req.upgrade_requested and upgrade == "websocket" and key
                and req.method == "GET" and req.version == "HTTP/1.1"):
            return await self.respond(req, 400, {"error": "not a WebSocket upgrade"})
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.count_status(req, 101)
        await self.send(self.head_bytes(req, 101, [("Upgrade", "websocket"),
                                                   ("Connection", "Upgrade"),
                                                   ("Sec-WebSocket-Accept", accept)], True))
        while True:
            b = await self.read(self.reader.read(BLOCK))
            if not b:
                break
            await self.send(b)
        if self.writer.can_write_eof():
            self.writer.write_eof()
        return False

    async def control(self, req):
        srv = self.srv
        srv.stats.control += 1
        body = bytearray()

        class Collect:
            def update(self, b):
                if len(body) + len(b) > 1 << 20:
                    raise BadRequest(413, "control body over 1 MiB")
                body.extend(b)
        await self.drain_body(req, Collect())
        if req.path == "/_requests":
            if req.method in ("GET", "HEAD"):
                return await self.respond(req, 200, {"requests": list(srv.stats.seen)})
            return await self.respond(req, 405, {"error": "GET"},
                                      headers=[("Allow", "GET, HEAD")])
        if req.path == "/_stats":
            if req.method in ("GET", "HEAD"):
                return await self.respond(req, 200, srv.stats.as_dict(srv.name))
            if req.method == "DELETE":
                srv.stats.zero()
                return await self.respond(req, 200, srv.stats.as_dict(srv.name))
            return await self.respond(req, 405, {"error": "GET or DELETE"},
                                      headers=[("Allow", "GET, HEAD, DELETE")])
        if req.method in ("GET", "HEAD"):
            return await self.respond(req, 200, srv.fault.describe())
        if req.method not in ("POST", "PUT"):
            return await self.respond(req, 405, {"error": "GET or POST"},
                                      headers=[("Allow", "GET, HEAD, POST, PUT")])
        try:
            spec = json.loads(bytes(body) or b"{}")
            if not isinstance(spec, dict):
                raise ValueError("a JSON object is expected")
            srv.fault = Fault(spec)
        except (ValueError, TypeError) as e:
            return await self.respond(req, 400, {"error": str(e)})
        return await self.respond(req, 200, srv.fault.describe())


def reason_phrase(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class Server:
    def __init__(self, name, idle_timeout, max_head=HEAD_LIMIT):
        self.name = name
        self.idle_timeout = idle_timeout
        self.max_head = max_head
        self.fault = Fault()
        self.stats = Stats()
        self.tasks = set()

    async def on_connection(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        self.stats.accepted += 1
        self.stats.active += 1
        active = True
        try:
            await Conn(self, reader, writer).run()
            # A lingering close, as nginx does: the answer is followed by a FIN, then what
            # the client still sends is read and dropped until it closes (2 s at most), so
            # that unread request bytes do not turn the close into a reset that could
            # destroy the answer before the client reads it.
            self.stats.active -= 1  # the gauge drops before the client can see the close
            active = False
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    left = deadline - time.monotonic()
                    if not await asyncio.wait_for(reader.read(BLOCK), left):
                        break
        except (Aborted, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            traceback.print_exc()
        finally:
            if active:
                self.stats.active -= 1
            writer.close()
            self.tasks.discard(task)

    async def main(self, host, port):
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await asyncio.start_server(self.on_connection, host, port, limit=self.max_head,
                                            reuse_address=True, backlog=256)
        async with server:
            await stop.wait()
            server.close()
            for t in list(self.tasks):
                t.cancel()
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=5)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="faulty")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--idle-timeout", type=float, default=60.0,
                    help="seconds an idle or stalled connection is kept (default 60)")
    ap.add_argument("--max-head", type=int, default=HEAD_LIMIT,
                    help=f"the largest request head in bytes; larger gets 431 (default {HEAD_LIMIT})")
    a = ap.parse_args(argv)
    try:
        asyncio.run(Server(a.name, a.idle_timeout, a.max_head).main(a.host, a.port))
    except OSError as e:
        print(f"faulty: {a.host}:{a.port}: {e}", file=sys.stderr)
        return 1
    return 0


# --- the Python helper ---------------------------------------------------------------------

PYTHON = "/usr/bin/python3"


def _free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Faulty:
    """A client for one faulty server: .url, .port, .name, set_fault(), stats(),
    reset_stats(), stop(). Control requests share one kept-alive connection, so they add one
    connection, not one per call, to connections_accepted.

    Faulty.start() runs the server as a subprocess of /usr/bin/python3 on a free port and
    returns once it answers; Faulty(port, proc=...) wraps one started otherwise (proc: a
    subprocess.Popen, or anything with a stop() method, such as conftest's Proc)."""

    def __init__(self, port, host="127.0.0.1", name="faulty", proc=None):
        self.port, self.host, self.name, self.proc = port, host, name, proc
        self.url = f"http://{host}:{port}"
        self._conn = None

    @classmethod
    def start(cls, name="faulty", port=None, host="127.0.0.1", stderr=None, timeout=10.0,
              extra_args=()):
        """Starts a server (stderr: a file object, or None to inherit ours) and waits until
        it answers; tries another free port if the chosen one was taken meanwhile."""
        for attempt in range(3):
            p = port or _free_port(host)
            proc = subprocess.Popen([PYTHON, os.path.abspath(__file__), "--port", str(p),
                                     "--name", name, "--host", host, *map(str, extra_args)],
                                    stdout=subprocess.DEVNULL, stderr=stderr,
                                    start_new_session=True)
            f = cls(p, host, name, proc)
            try:
                f.wait_ready(timeout)
                return f
            except RuntimeError:
                f.stop()
                if port or attempt == 2:
                    raise

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            if isinstance(self.proc, subprocess.Popen) and self.proc.poll() is not None:
                raise RuntimeError(f"faulty exited with {self.proc.returncode}")
            try:
                return self.stats()
            except OSError:
                self.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"faulty on port {self.port}: no answer in {timeout} s")
            time.sleep(0.02)

    @property
    def pid(self):
        """The server's process id (None when not started by this helper or a spawn)."""
        p = self.proc
        p = getattr(p, "proc", p)
        return getattr(p, "pid", None)

    def _call(self, method, path, payload=None):
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in range(2):
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                self._conn.request(method, path, body=body, headers=headers)
                r = self._conn.getresponse()
                data = r.read()
                if r.will_close:
                    self.close()
                break
            except (ConnectionError, http.client.HTTPException):
                self.close()  # a kept-alive connection the server dropped (idle timeout)
                if attempt:
                    raise
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return json.loads(data)

    def set_fault(self, mode="off", **kw):
        """set_fault("status", status=503, count=5), set_fault("reset", probability=0.5,
        seed=1), set_fault("delay", ms=300), set_fault() (off). Returns the fault in force."""
        return self._call("POST", "/_fault", {"mode": mode, **kw})

    def fault(self):
        return self._call("GET", "/_fault")

    def stats(self):
        return self._call("GET", "/_stats")

    def reset_stats(self):
        return self._call("DELETE", "/_stats")

    def requests_seen(self):
        """The heads of the last requests received (GET /_requests), oldest first."""
        return self._call("GET", "/_requests")["requests"]

    def close(self):
        """Closes the control connection (the next call opens another)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit status (0 for a clean stop)."""
        self.close()
        p = self.proc
        if p is None:
            return None
        if not isinstance(p, subprocess.Popen):
            return p.stop(timeout)
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise RuntimeError(f"faulty on port {self.port} ignored SIGTERM; killed")
        return p.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
