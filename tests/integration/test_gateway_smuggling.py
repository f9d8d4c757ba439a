"""Request and response smuggling between a client, weft serve's gateway and an upstream.

The upstream here is a small socket-level HTTP/1.1 server in a thread of the test (Upstream):
it records every byte each connection brings and every request it parsed from them (strictly:
one framing header, CRLF lines, chunk sizes in hex and nothing else), and answers by path, some
paths with a malicious response. Each test says what the gateway answers the client, and checks
on the upstream side that it saw exactly the requests it should (count, bytes, framing: the
gateway re-frames every body itself, RFC 9112 6.1 and 6.3, so the upstream never sees the
client's framing), and that no response is mis-associated with another request on a reused
keep-alive connection, on either side: an upstream connection that misbehaved must be closed,
never pooled, so the next request goes out on a fresh one and gets its own answer.

What a careful proxy does, and what these tests hold the gateway to (RFC 9112):
  6.1  Transfer-Encoding other than a final chunked applied once: 400 (501 for a coding it does
       not know); Transfer-Encoding in an HTTP/1.0 request: the framing is faulty: 400.
  6.3  Content-Length with Transfer-Encoding: 400 and close (a request); a response with both
       is an error: 502, and the connection is closed. Content-Length that is not 1*DIGIT, or
       several differing (or repeated) values: 400 (request) or 502 (response).
  2.2  A bare CR, an obs-fold, or a NUL in the head: 400.
  11.2 Request smuggling: what follows a malformed request is never parsed; bytes an upstream
       sends beyond its response are never taken as the next response.
  RFC 9110 7.2: an absolute-form target names the host; a proxy sends that host upstream,
       never the client's Host field.
"""
import json
import socket
import threading
import time

import pytest

from conftest import (WAIT, has_responses, parse_responses, raw_exchange, read_until,
                      read_until_closed, wait_for)

H = b"Host: x\r\n"


class UpstreamRequest:
    def __init__(self, conn, method, target, headers, body, raw):
        self.conn, self.method, self.target = conn, method, target
        self.headers, self.body, self.raw = headers, body, raw

    def all(self, name):
        return [v for n, v in self.headers if n == name]

    def one(self, name):
        vals = self.all(name)
        assert len(vals) == 1, (name, self.headers)
        return vals[0]

    def __repr__(self):
        return f"<{self.method} {self.target} on conn {self.conn}, body {self.body!r}>"


class BadUpstreamBytes(Exception):
    pass


# What the upstream answers by path: a well-behaved default, or a malicious response. Each
# malicious one keeps the connection open, so that only the gateway can decide not to reuse it.
MALICIOUS = {
    # two responses to one request
    "/two-responses": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
    # bytes after the body that its Content-Length ends
    "/extra-bytes": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
    # both framings: Content-Length 5 would take "3\r\nab", chunked takes "abc"
    "/cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3\r\nabc\r\n0\r\n\r\n",
    "/te-cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
              b"3\r\nabc\r\n0\r\n\r\n",
    # two lengths: 2 would leave "smuggled" for the next request
    "/dup-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 10\r\n\r\noksmuggled",
    "/same-cl-twice": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    "/cl-list": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
    "/cl-plus": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    # chunked not final: the body is read until the close (RFC 9112 6.3), so this one closes
    "/te-not-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n"
                       b"3\r\nabc\r\n0\r\n\r\n",
    # a 204 has no body whatever it says: these bytes are not its
    "/204-with-body": b"HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\nsmuggled",
    "/bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    # a protocol switch nobody asked for (the request had no Upgrade), with a request behind it
    "/unasked-101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    # an obs-fold: a user agent replaces it with spaces (RFC 9112 5.2); it must not become a
    # header line of its own on the way to the client (a well-framed response: kept alive)
    "/obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n Set-Cookie: injected\r\n"
                 b"Content-Length: 2\r\n\r\nok",
    "/nul-in-header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
}


class Upstream:
    """A socket-level HTTP/1.1 upstream on a free loopback port, one thread per connection.

    .raw[i]: every byte connection i brought; .requests: every request parsed, in order;
    .closed[i]: the peer closed connection i; .errors: bytes that were not a request.
    Answers: paths of MALICIOUS with those bytes; /late with a good response, then (once the
    gateway could have pooled the connection) a second, unasked one; /refuse-continue with 417
    at the end of the head, without reading the body, then it closes; anything else 200 with
    "conn N req M METHOD TARGET body B" (N, M from 0), Content-Length framed, kept alive."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.raw, self.closed, self.requests, self.errors = [], [], [], []
        self.socks, self.threads = [], []
        self.late_sent = threading.Event()
        self.stopping = False
        t = threading.Thread(target=self.accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    def accept_loop(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                cid = len(self.raw)
                self.raw.append(bytearray())
                self.closed.append(False)
                self.socks.append(s)
            t = threading.Thread(target=self.serve, args=(cid, s), daemon=True)
            t.start()
            self.threads.append(t)

    def close(self):
        self.stopping = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)  # wakes accept() (close alone does not)
        except OSError:
            pass
        self.lsock.close()
        for s in list(self.socks):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self.threads:
            t.join(WAIT)

    # --- reading ---

    def recv(self, cid, s):
        try:
            b = s.recv(65536)
        except OSError:
            b = b""
        if not b:
            with self.lock:
                self.closed[cid] = True
            return None
        with self.lock:
            self.raw[cid] += b
        return b

    def need(self, cid, s, buf, n):
        """buf grown to at least n bytes; None when the peer closed first."""
        while len(buf) < n:
            b = self.recv(cid, s)
            if b is None:
                return None
            buf += b
        return buf

    def line(self, cid, s, buf, start):
        """The end (index of CRLF) of the line at start, reading as needed; None at close."""
        while True:
            i = buf.find(b"\r\n", start)
            if i >= 0:
                return buf, i
            b = self.recv(cid, s)
            if b is None:
                return None, None
            buf += b

    def read_request(self, cid, s, buf):
        """(request, bytes left after it), or (None, _) when the peer closed. Strict: anything
        but one clean request raises BadUpstreamBytes."""
        while b"\r\n\r\n" not in buf:
            b = self.recv(cid, s)
            if b is None:
                if buf:
                    raise BadUpstreamBytes(f"connection closed inside a head: {bytes(buf)!r}")
                return None, buf
            buf += b
        end = buf.index(b"\r\n\r\n")
        head = bytes(buf[:end])
        if b"\n" in head.replace(b"\r\n", b"") or b"\r" in head.replace(b"\r\n", b"") \
                or b"\x00" in head:
            raise BadUpstreamBytes(f"bare CR/LF or NUL in a head: {head!r}")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or parts[2] != b"HTTP/1.1":
            raise BadUpstreamBytes(f"bad request line {lines[0]!r}")
        headers = []
        for ln in lines[1:]:
            name, sep, value = ln.partition(b":")
            if not sep or not name or name.strip() != name or ln[:1] in (b" ", b"\t"):
                raise BadUpstreamBytes(f"bad header line {ln!r}")
            headers.append((name.decode("latin-1").lower(), value.strip(b" \t").decode("latin-1")))
        method, target = parts[0].decode(), parts[1].decode("latin-1")
        te = [v for n, v in headers if n == "transfer-encoding"]
        cl = [v for n, v in headers if n == "content-length"]
        pos = end + 4
        req = UpstreamRequest(cid, method, target, headers, b"", b"")
        if target == "/refuse-continue":
            return req, buf[pos:]  # answered at the end of its head
        if te and cl or len(te) > 1 or len(cl) > 1:
            raise BadUpstreamBytes(f"framing headers {te} {cl}")
        if te:
            if te[0] != "chunked":
                raise BadUpstreamBytes(f"Transfer-Encoding {te[0]!r}")
            body = b""
            while True:
                buf, eol = self.line(cid, s, buf, pos)
                if buf is None:
                    raise BadUpstreamBytes("connection closed inside a chunked body")
                size = bytes(buf[pos:eol])
                if not size or any(c not in b"0123456789abcdef" for c in size.lower()):
                    raise BadUpstreamBytes(f"chunk size line {size!r}")
                n = int(size, 16)
                buf = self.need(cid, s, buf, eol + 2 + n + 2)
                if buf is None:
                    raise BadUpstreamBytes("connection closed inside a chunk")
                if n == 0:
                    if buf[eol + 2:eol + 4] != b"\r\n":
                        raise BadUpstreamBytes("trailer fields from the gateway")
                    pos = eol + 4
                    break
                body += bytes(buf[eol + 2:eol + 2 + n])
                if buf[eol + 2 + n:eol + 4 + n] != b"\r\n":
                    raise BadUpstreamBytes("chunk data not followed by CRLF")
                pos = eol + 4 + n
        elif cl:
            if not cl[0].isdigit() or (len(cl[0]) > 1 and cl[0][0] == "0"):
                raise BadUpstreamBytes(f"Content-Length {cl[0]!r}")
            n = int(cl[0])
            buf = self.need(cid, s, buf, pos + n)
            if buf is None:
                raise BadUpstreamBytes("connection closed inside a body")
            body = bytes(buf[pos:pos + n])
            pos += n
        else:
            body = b""
        req.body, req.raw = body, bytes(buf[:pos])
        return req, buf[pos:]

    # --- answering ---

    def serve(self, cid, s):
        buf = bytearray()
        try:
            while True:
                req, buf = self.read_request(cid, s, buf)
                if req is None:
                    return
                with self.lock:
                    n = len(self.requests)
                    self.requests.append(req)
                path = req.target.split("?")[0]
                if path in MALICIOUS:
                    s.sendall(MALICIOUS[path])
                    if path == "/te-not-chunked":
                        s.shutdown(socket.SHUT_WR)
                        while self.recv(cid, s) is not None:
                            pass
                        return
                elif path == "/late":
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
                    # once the gateway has the whole response (and could have pooled the
                    # connection), a response nobody asked for
                    time.sleep(0.2)
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
                    self.late_sent.set()
                elif path == "/refuse-continue":
                    s.sendall(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 7\r\n"
                              b"Connection: close\r\n\r\nrefused")
                    s.shutdown(socket.SHUT_WR)  # then read what comes until the peer closes
                    while self.recv(cid, s) is not None:
                        pass
                    return
                else:
                    body = (f"conn {cid} req {n} {req.method} {req.target} body "
                            f"{req.body.decode('latin-1')}").encode("latin-1")
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        except BadUpstreamBytes as e:
            with self.lock:
                self.errors.append((cid, str(e)))
        except OSError:
            pass
        finally:
            with self.lock:
                self.closed[cid] = True
            s.close()

    # --- for the tests ---

    def snapshot(self):
        with self.lock:
            return [bytes(r) for r in self.raw], list(self.requests), list(self.errors)


@pytest.fixture
def upstream():
    up = Upstream()
    yield up
    up.close()


@pytest.fixture
def gw(gateway, upstream):
    """weft serve's gateway, one worker (one connection pool: a connection that should not be
    reused would be), every path of host x to the upstream, and /vhost of public.example."""
    p = gateway(f"""gateway:
  routes:
    - name: public
      match: {{ path_prefix: /vhost, host: public.example }}
      upstream: {{ targets: [127.0.0.1:{upstream.port}] }}
    - name: all
      match: {{ path_prefix: /, host: x }}
      upstream: {{ targets: [127.0.0.1:{upstream.port}] }}
""")
    p.up = upstream
    return p


def answer_of(r):
    """A default answer's (conn, req, method, target, body) from the upstream."""
    words = r.body.decode("latin-1").split(" ", 8)
    assert words[0] == "conn" and words[2] == "req" and words[6] == "body", r.body
    return int(words[1]), int(words[3]), words[4], words[5], words[7] if len(words) > 7 else ""


def assert_clean_upstream(up, want):
    """The upstream parsed exactly the requests `want` lists ((method, target, body) in order),
    no bytes it could not parse, and nothing beyond them on any connection: every byte it got
    belongs to one of them. Every request carries exactly one framing header, the gateway's
    own, and a Host."""
    wait_for(lambda: len(up.snapshot()[1]) >= len(want) or up.snapshot()[2],
             f"the upstream to get {len(want)} requests", timeout=WAIT)
    raw, reqs, errors = up.snapshot()
    assert not errors, errors
    assert [(r.method, r.target, r.body) for r in reqs] == want, reqs
    for i, data in enumerate(raw):
        mine = b"".join(r.raw for r in reqs if r.conn == i)
        assert data == mine, f"connection {i} carried more than its requests: {data!r}"
    for r in reqs:
        framing = r.all("content-length") + r.all("transfer-encoding")
        assert len(framing) <= 1 and (framing or not r.body), r.headers
        assert len(r.all("host")) == 1, r.headers
    return reqs


def probe_same_connection(port, first, done):
    """Sends `first` on a kept-alive connection, reads until done(bytes), then a GET /probe
    on that same connection. Returns (bytes of the first exchange, the probe's responses,
    or None when the gateway had closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(first)
        out, closed = read_until(s, done)
        if closed:
            return out, None
        try:
            s.sendall(b"GET /probe HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return out, None
        more, _ = read_until_closed(s, WAIT)
        rs, rest = parse_responses(more)
        assert not rest, more
        return out, rs


def assert_probe_answered_on_a_fresh_connection(gw, before_conns):
    """A GET /probe on a new client connection gets its own answer, from a new upstream
    connection (the earlier ones, which misbehaved or were abandoned, were not reused)."""
    out, closed = raw_exchange(gw.gw_port, b"GET /probe HTTP/1.1\r\n" + H +
                               b"Connection: close\r\n\r\n")
    rs, rest = parse_responses(out)
    assert [r.status for r in rs] == [200] and not rest, out
    conn, _, method, target, _ = answer_of(rs[0])
    assert (method, target) == ("GET", "/probe")
    assert conn >= before_conns, f"the probe went out on old upstream connection {conn}"


# ---- the client's side: requests the gateway must refuse, or re-frame ----

REFUSED = [
    # (id, bytes, status): refused at the head, the upstream gets no connection
    ("cl-and-te", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("te-and-cl", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Content-Length: 3\r\n\r\n8\r\nGET /smu\r\n0\r\n\r\n", 400),
    ("te-xchunked", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n"
     b"0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("te-chunked-identity", b"POST /a HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("te-two-fields", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-gzip-then-chunked-fields", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    ("te-space-before-colon", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n"
     b"\r\n0\r\n\r\n", 400),
    ("te-tab-value", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding:\tchunked\x0b\r\n"
     b"\r\n0\r\n\r\n", 400),
    ("te-in-http10", b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3\r\nabc\r\n0\r\n\r\n", 400),
    ("te-in-http10-with-cl", b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 3\r\n\r\nabc", 400),
    ("cl-two-values", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n"
     b"Content-Length: 30\r\n\r\nabc", 400),
    ("cl-same-twice", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n"
     b"Content-Length: 3\r\n\r\nabc", 400),
    ("cl-list", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 3,3\r\n\r\nabc", 400),
    ("cl-plus", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400),
    ("cl-minus", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: -3\r\n\r\nabc", 400),
    ("cl-space-inside", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 3 0\r\n\r\nabc", 400),
    ("cl-hex", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 0x3\r\n\r\nabc", 400),
    ("bare-lf-head", b"GET /a HTTP/1.1\n" + b"Host: x\n\n", 400),
    ("bare-lf-one-header", b"GET /a HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400),
    ("bare-cr-header", b"GET /a HTTP/1.1\r\n" + H + b"X-A: b\rGET /smuggled\r\n\r\n", 400),
    ("obs-fold", b"GET /a HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
    ("obs-fold-te", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n"
     b" chunked\r\n\r\n0\r\n\r\n", 400),
    ("nul-in-value", b"GET /a HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    # RFC 9110 5.5 lets a recipient keep other CTLs; llhttp refuses them (as Envoy does)
    ("ctl-in-value", b"GET /a HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", 400),
    ("del-in-value", b"GET /a HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n\r\n", 400),
    ("nul-in-te", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\x00\r\n\r\n"
     b"0\r\n\r\n", 400),
    ("absolute-form-other-host-no-route", b"GET http://internal.example/vhost HTTP/1.1\r\n"
     b"Host: public.example\r\nConnection: close\r\n\r\n", 404),
]


@pytest.mark.parametrize("data,status", [(c[1], c[2]) for c in REFUSED],
                         ids=[c[0] for c in REFUSED])
def test_refused_and_never_forwarded(gw, data, status):
    out, closed = raw_exchange(gw.gw_port, data)
    rs, rest = parse_responses(out)
    assert [r.status for r in rs] == [status] and not rest, out
    assert json.loads(rs[0].body)["error"], rs[0].body
    if status != 404:  # an error of the request's syntax: nothing after it is read
        assert closed and rs[0].header("connection") == "close", out
    raw, reqs, errors = gw.up.snapshot()
    assert (raw, reqs, errors) == ([], [], []), "the upstream got something"
    assert_probe_answered_on_a_fresh_connection(gw, 0)


BAD_BODIES = [
    # (id, chunked body): the head is good and goes upstream as the body streams; the upstream
    # must never get a complete request, and that connection is closed, not reused
    ("chunk-size-overflow", b"10000000000000003\r\nabc\r\n0\r\n\r\n"),
    ("chunk-size-sign", b"+3\r\nabc\r\n0\r\n\r\n"),
    ("chunk-size-0x", b"0x3\r\nabc\r\n0\r\n\r\n"),
    ("chunk-size-space-inside", b"3 3\r\nabc\r\n0\r\n\r\n"),
    ("chunk-ext-ctl", b"3;a\x01=b\r\nabc\r\n0\r\n\r\n"),
    # valid (RFC 9112 7.1.1: extensions one after another), but llhttp 8 does not take a
    # second one: refused, the safe side for extensions the gateway drops anyway
    ("chunk-two-extensions", b"3;a=b;c=d\r\nabc\r\n0\r\n\r\n"),
    ("chunk-ext-unterminated-quote", b"3;a=\"b\r\nabc\r\n0\r\n\r\n"),
    ("chunk-ext-bare-lf", b"3;a=b\nabc\r\n0\r\n\r\n"),
    ("chunk-data-longer", b"3\r\nabcd\r\n0\r\n\r\n"),
    ("chunk-last-bare-lf", b"3\r\nabc\r\n0\n\n"),
]


@pytest.mark.parametrize("body", [c[1] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES])
def test_bad_chunked_body_never_completes_upstream(gw, body):
    data = (b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + body +
            b"GET /smuggled HTTP/1.1\r\n" + H + b"\r\n")
    out, closed = raw_exchange(gw.gw_port, data)
    rs, rest = parse_responses(out)
    assert [r.status for r in rs] == [400] and not rest and closed, out
    # the upstream: at most the head and part of the body, never a request it could answer
    wait_for(lambda: all(gw.up.closed),
             "the gateway to close the upstream connection of the abandoned request")
    raw, reqs, errors = gw.up.snapshot()
    assert reqs == [], reqs
    assert all(b"/smuggled" not in r for r in raw), raw
    assert_probe_answered_on_a_fresh_connection(gw, len(raw))


ACCEPTED = [
    # (id, bytes, [(method, target, body) the upstream must see], statuses the client gets)
    ("te-chunked-trailing-space", b"POST /a HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n", [("POST", "/a", b"abc")]),
    ("te-uppercase", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: CHUNKED\r\n\r\n"
     b"3\r\nabc\r\n0\r\n\r\n", [("POST", "/a", b"abc")]),
    ("cl-leading-zeros", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 003\r\n\r\nabc",
     [("POST", "/a", b"abc")]),
    ("cl-with-spaces", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length:   3  \r\n\r\nabc",
     [("POST", "/a", b"abc")]),
    ("chunk-extensions-dropped", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked"
     b"\r\n\r\n3;name=value\r\nabc\r\n2;q=\"x y\"\r\nde\r\n0;last\r\nX-Trailer: t\r\n\r\n",
     [("POST", "/a", b"abcde")]),
    # a chunk extension without a name (RFC 9112 7.1.1 wants a token) and a folded trailer:
    # llhttp takes both, the chunk's end is not in doubt, and neither goes upstream (the
    # gateway drops extensions and trailers), so there is nothing two parsers could disagree on
    ("chunk-ext-without-name-dropped", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: "
     b"chunked\r\n\r\n3;=b\r\nabc\r\n0\r\n\r\n", [("POST", "/a", b"abc")]),
    ("folded-trailer-dropped", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked"
     b"\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: a\r\n b\r\n\r\n", [("POST", "/a", b"abc")]),
    ("pipelined-after-a-body", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
     b"GET /b HTTP/1.1\r\n" + H + b"\r\n", [("POST", "/a", b"abc"), ("GET", "/b", b"")]),
    ("pipelined-after-a-chunked-body", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: "
     b"chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\n" + H + b"\r\n",
     [("POST", "/a", b"abc"), ("GET", "/b", b"")]),
    ("request-hidden-in-a-get-body", b"GET /a HTTP/1.1\r\n" + H + b"Content-Length: 35\r\n\r\n"
     b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
     [("GET", "/a", b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")]),
    ("zero-chunk-then-smuggled-body", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: "
     b"chunked\r\n\r\n0\r\n\r\nGET /b HTTP/1.1\r\n" + H + b"\r\n",
     [("POST", "/a", b""), ("GET", "/b", b"")]),
]


@pytest.mark.parametrize("data,want", [(c[1], c[2]) for c in ACCEPTED],
                         ids=[c[0] for c in ACCEPTED])
def test_accepted_and_reframed(gw, data, want):
    """Each request goes upstream exactly once, with the gateway's framing (one Content-Length
    or chunked, no extensions, no trailers), and each response comes back to its request."""
    out, after = probe_same_connection(gw.gw_port, data, has_responses(len(want)))
    rs, rest = parse_responses(out)
    assert [r.status for r in rs] == [200] * len(want) and not rest, out
    got = [answer_of(r) for r in rs]
    assert [(m, t) for _, _, m, t, _ in got] == [(m, t) for m, t, _ in want]
    reqs = assert_clean_upstream(gw.up, want + [("GET", "/probe", b"")])
    for r, (_, _, body) in zip(reqs, want):
        if r.body:
            assert r.all("content-length") == [str(len(body))] or \
                r.all("transfer-encoding") == ["chunked"], r.headers
        assert not any(n.startswith("x-trailer") for n, _ in r.headers)
    assert [(r.status, answer_of(r)[3]) for r in after] == [(200, "/probe")]


def test_absolute_form_sends_its_host_upstream(gw):
    """RFC 9110 7.2: a proxy that gets an absolute-form target ignores the Host field and
    sends the target's host instead. The route matched on public.example; the upstream must
    see that host, not the Host the client slipped in (a virtual host it routes on)."""
    out, closed = raw_exchange(gw.gw_port, b"GET http://public.example/vhost/x HTTP/1.1\r\n"
                               b"Host: internal.example\r\nConnection: close\r\n\r\n")
    rs, rest = parse_responses(out)
    assert [r.status for r in rs] == [200] and not rest, out
    reqs = assert_clean_upstream(gw.up, [("GET", "/vhost/x", b"")])
    assert reqs[0].one("host") == "public.example"
    assert reqs[0].one("x-forwarded-host") == "public.example"
    # with its port, and the Host field's case and port ignored all the same
    out, _ = raw_exchange(gw.gw_port, b"GET http://Public.Example:8080/vhost/y HTTP/1.1\r\n"
                          b"Host: internal.example:81\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 "), out
    reqs = assert_clean_upstream(gw.up, [("GET", "/vhost/x", b""), ("GET", "/vhost/y", b"")])
    assert reqs[1].one("host") == "Public.Example:8080"


@pytest.mark.parametrize("host", [b"nowhere.example", b"x"])
def test_early_answer_with_a_body_unread(gw, host):
    """The gateway answers before the body is read (no route: 404; or the upstream answers
    before the end of the body): the body, a request in disguise, is never parsed as one;
    the connection closes after the answer, and says so."""
    hidden = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    target = b"/nowhere" if host != b"x" else b"/refuse-continue"
    data = (b"POST " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: %d\r\n\r\n"
            % len(hidden))
    with socket.create_connection(("127.0.0.1", gw.gw_port), timeout=WAIT) as s:
        s.sendall(data)
        out, closed = read_until(s, has_responses(1))
        try:
            s.sendall(hidden)
        except (BrokenPipeError, ConnectionResetError):
            pass
        more, closed = read_until_closed(s, WAIT)
    rs, rest = parse_responses(out + more)
    assert [r.status for r in rs] == [404 if host != b"x" else 417] and not rest, out + more
    assert closed and rs[0].header("connection") == "close", out
    raw, reqs, errors = gw.up.snapshot()
    assert not errors and all(b"/smuggled" not in r[:r.find(b"\r\n\r\n")] for r in raw)
    assert [r.target for r in reqs] == ([] if host != b"x" else ["/refuse-continue"])


def test_expect_100_continue_that_the_upstream_refuses(gw):
    """The gateway answers 100 Continue itself (its listener does, as Envoy does by default),
    then the upstream refuses at the end of the head (417) and closes. The client gets the
    417 after the 100; the body it sends next (a request in disguise) is never parsed as a
    request, on either side; the upstream connection is not reused."""
    body = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gw.gw_port), timeout=WAIT) as s:
        s.sendall(b"POST /refuse-continue HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        out, closed = read_until(s, has_responses(2))
        rs, rest = parse_responses(out)
        assert [r.status for r in rs] == [100, 417] and not rest, out
        assert rs[1].body == b"refused"
        try:  # the body, sent after the refusal, with a probe behind it
            s.sendall(body + b"GET /probe HTTP/1.1\r\n" + H + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        more, closed = read_until_closed(s, WAIT)
    assert closed and more == b"", f"answered after the refusal: {more!r}"
    wait_for(lambda: gw.up.closed[0], "the gateway to close the refused upstream connection")
    raw, reqs, errors = gw.up.snapshot()
    assert not errors and [r.target for r in reqs] == ["/refuse-continue"], (reqs, errors)
    assert raw[0].count(b"HTTP/1.1\r\n") == 1 and b"/smuggled" not in raw[0][:raw[0].find(
        b"\r\n\r\n")], raw
    assert_probe_answered_on_a_fresh_connection(gw, 1)


# ---- the upstream's side: responses that try to answer more than they were asked ----

RESPONSES = [
    # (path, status the client gets, its body or None for a 502 from the gateway)
    ("/two-responses", 200, b"ok"),
    ("/extra-bytes", 200, b"ok"),
    ("/cl-te", 502, None),
    ("/te-cl", 502, None),
    ("/dup-cl", 502, None),
    ("/same-cl-twice", 502, None),
    ("/cl-list", 502, None),
    ("/cl-plus", 502, None),
    ("/te-not-chunked", 502, None),  # a coding the gateway cannot pass on (as NGINX)
    ("/204-with-body", 204, b""),
    ("/bare-lf", 502, None),
    ("/nul-in-header", 502, None),
    ("/unasked-101", 502, None),
]


@pytest.mark.parametrize("path,status,body", RESPONSES, ids=[c[0][1:] for c in RESPONSES])
def test_malicious_response_is_not_taken_for_the_next(gw, path, status, body):
    """The client gets the one response its request had (or 502 for one that cannot be framed
    safely), and the next request, on the same client connection, gets its own answer from a
    new upstream connection: the one that sent more than a response was closed, not pooled."""
    req = b"GET " + path.encode() + b" HTTP/1.1\r\n" + H + b"\r\n"
    nobody = status == 204  # no framing field: parse it as a head alone
    out, after = probe_same_connection(gw.gw_port, req, (lambda o: b"\r\n\r\n" in o)
                                       if nobody else has_responses(1))
    rs, rest = parse_responses(out, head_request=nobody)
    assert [r.status for r in rs] == [status] and not rest, out
    if body is not None:
        assert rs[0].body == body, out
    else:
        assert json.loads(rs[0].body)["error"] == "bad gateway", rs[0].body
    wait_for(lambda: gw.up.closed[0], "the gateway to close the upstream connection")
    if after is None:  # the gateway closed the client's connection (a 502): a new one
        assert status == 502
        assert_probe_answered_on_a_fresh_connection(gw, 1)
    else:
        assert [r.status for r in after] == [200], after
        conn, _, method, target, _ = answer_of(after[0])
        assert (conn, method, target) == (1, "GET", "/probe")
    raw, reqs, errors = gw.up.snapshot()
    assert not errors and [(r.conn, r.target) for r in reqs] == [(0, path), (1, "/probe")]


def test_response_sent_later_on_an_idle_connection(gw):
    """An upstream that sends an unasked response once its connection is idle in the pool:
    the gateway closes that connection as the bytes come, and the next request (on the same
    client connection) goes out on a new one and gets its own answer, not the unasked one."""
    with socket.create_connection(("127.0.0.1", gw.gw_port), timeout=WAIT) as s:
        s.sendall(b"GET /late HTTP/1.1\r\n" + H + b"\r\n")
        out, closed = read_until(s, has_responses(1))
        rs, rest = parse_responses(out)
        assert [(r.status, r.body) for r in rs] == [(200, b"late")] and not rest, out
        assert gw.up.late_sent.wait(WAIT)
        wait_for(lambda: gw.up.closed[0], "the gateway to close the connection that spoke "
                 "unasked")
        s.sendall(b"GET /probe HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        out, closed = read_until_closed(s, WAIT)
    rs, rest = parse_responses(out)
    assert [r.status for r in rs] == [200] and not rest, out
    assert answer_of(rs[0])[:4] == (1, 1, "GET", "/probe"), rs[0].body
    raw, reqs, errors = gw.up.snapshot()
    assert not errors and [(r.conn, r.target) for r in reqs] == [(0, "/late"), (1, "/probe")]


def test_folded_response_field_stays_one_field(gw):
    """An obs-fold in a response field reaches the client as spaces inside that one field,
    never as a field line of its own (response splitting); the response is well framed, so
    its connection is reused and the next request gets its own answer."""
    out, after = probe_same_connection(gw.gw_port, b"GET /obs-fold HTTP/1.1\r\n" + H +
                                       b"\r\n", has_responses(1))
    rs, rest = parse_responses(out)
    assert [(r.status, r.body) for r in rs] == [(200, b"ok")] and not rest, out
    assert rs[0].header("set-cookie") is None, out
    assert rs[0].header("x-a").split() == ["a", "Set-Cookie:", "injected"], out
    assert b"\r\n Set-Cookie" not in out and b"\r\nSet-Cookie" not in out
    assert [r.status for r in after] == [200]
    assert answer_of(after[0])[:4] == (0, 1, "GET", "/probe"), after[0].body


def test_head_response_with_a_body(gw, upstream):
    """A HEAD answered with a head and body bytes: the body is not the HEAD's (RFC 9112 6.3),
    so it is not forwarded, and the connection is closed rather than reused."""
    MALICIOUS["/head-with-body"] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
    try:
        out, after = probe_same_connection(gw.gw_port, b"HEAD /head-with-body HTTP/1.1\r\n" +
                                           H + b"\r\n",
                                           lambda o: b"\r\n\r\n" in o)
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\n"), out
        assert b"Content-Length: 8\r\n" in out and b"smuggled" not in out
        assert [r.status for r in after] == [200]
        assert answer_of(after[0])[:4] == (1, 1, "GET", "/probe"), after[0].body
    finally:
        del MALICIOUS["/head-with-body"]
