#!/usr/bin/python3
"""bench/ir_reqs.py - the client of bench/ir-per-request: exactly N keep-alive GETs, all 200.

    /usr/bin/python3 bench/ir_reqs.py HOST PORT PATH N CONNS

Opens CONNS connections to HOST:PORT, then works in waves: it writes one request on each
of the first min(CONNS, requests left) connections, then reads one response from each of
them in the same order, and starts the next wave. So the server sees up to CONNS requests
arriving together and never more than one outstanding per connection (no pipelining).
Every request is the same bytes, four lines and a blank one:

    GET PATH HTTP/1.1 | Host: HOST | User-Agent: weft | Accept: */*

Every response must be a 200 that keeps the connection open: framed by Content-Length or
chunked, no `Connection: close`, no HTTP/1.0 without keep-alive. Anything else stops the
run at once. After the last response it half-closes every connection and waits for the
server to close its side, so that the server has handled every close before
ir-per-request signals it: the closes then cost the same in every run.

Exit status 0 when all N responses were 200 and every connection stayed open until the
end; 1 with the reason on stderr otherwise; 2 for bad arguments. Prints nothing on
success. Loopback use only: nothing here is meant for a remote server.
"""
import socket
import sys

IO_TIMEOUT = 120  # s for any one send or receive: callgrind runs a server 20-100x slower
CLOSE_TIMEOUT = 30  # s for the server to close its side after the client's FIN
MAX_HEAD = 64 * 1024


class Failure(Exception):
    """A response or a connection that does not meet the contract above."""


class Conn:
    """One keep-alive connection and the bytes received on it but not yet consumed."""

    def __init__(self, index, host, port):
        self.index = index
        self.sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
        self.pending = bytearray()
        self.last_head, self.last = None, None  # the last head parsed and what it gave

    def _more(self, what):
        data = self.sock.recv(65536)
        if not data:
            raise Failure(f"connection {self.index}: the server closed it while the client "
                          f"waited for {what}")
        self.pending += data

    def _line(self, what):
        while True:
            end = self.pending.find(b"\r\n")
            if end >= 0:
                line = bytes(self.pending[:end])
                del self.pending[:end + 2]
                return line
            if len(self.pending) > MAX_HEAD:
                raise Failure(f"connection {self.index}: {what} longer than {MAX_HEAD} bytes")
            self._more(what)

    def _skip(self, count, what):
        while len(self.pending) < count:
            self._more(what)
        del self.pending[:count]

    def response(self):
        """Reads one whole response; returns its status; raises Failure if it cannot be
        read or would end the connection."""
        while True:
            end = self.pending.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.pending) > MAX_HEAD:
                raise Failure(f"connection {self.index}: response head over {MAX_HEAD} bytes")
            self._more("a response head")
        head = bytes(self.pending[:end])
        del self.pending[:end + 4]
        # A server repeats the same head (bar Date, once a second), and the client's pace
        # between waves shows in the count of a server that busy-polls: a head seen last
        # time on this connection is not parsed again.
        if head == self.last_head:
            status, length = self.last
        else:
            status, length = self._head(head)
            if length is not None:
                self.last_head, self.last = head, (status, length)
        if length is None:
            self._chunks()
        else:
            self._skip(length, "a response body")
        return status

    def _head(self, head):
        """Checks a response head; returns (status, body length), the length None for a
        chunked body."""
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise Failure(f"connection {self.index}: not an HTTP/1.x status line: {lines[0]!r}")
        status = int(code)
        fields = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise Failure(f"connection {self.index}: a header line without a colon: {line!r}")
            fields.setdefault(name.strip().lower(), []).append(value.strip())

        tokens = {t.strip().lower() for v in fields.get("connection", []) for t in v.split(",")}
        if "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens):
            raise Failure(f"connection {self.index}: the server ends the connection after this "
                          f"response ({lines[0]!r}): every request must be keep-alive")

        codings = [t.strip().lower() for v in fields.get("transfer-encoding", []) for t in v.split(",")]
        if codings:
            if codings[-1] != "chunked":
                raise Failure(f"connection {self.index}: Transfer-Encoding {codings} has no length")
            return status, None
        if "content-length" in fields:
            lengths = set(fields["content-length"])
            if len(lengths) != 1 or not next(iter(lengths)).isdigit():
                raise Failure(f"connection {self.index}: bad Content-Length {fields['content-length']}")
            return status, int(next(iter(lengths)))
        if status in (204, 304) or 100 <= status < 200:
            return status, 0
        raise Failure(f"connection {self.index}: a {status} response without a length "
                      "cannot be followed by another on the same connection")

    def _chunks(self):
        while True:
            size_line = self._line("a chunk size").split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise Failure(f"connection {self.index}: bad chunk size {size_line!r}") from None
            if size == 0:
                while self._line("the trailer"):
                    pass
                return
            self._skip(size + 2, "a chunk")

    def half_close(self):
        """Sends FIN after the last request; returns a complaint or None."""
        if self.pending:
            return f"connection {self.index}: {len(self.pending)} bytes after the last response"
        self.sock.shutdown(socket.SHUT_WR)
        return None

    def wait_closed(self):
        """Waits for the server to close its side after half_close; returns a complaint or
        None. Closes the socket either way."""
        self.sock.settimeout(CLOSE_TIMEOUT)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return (f"connection {self.index}: the server did not close it within "
                    f"{CLOSE_TIMEOUT} s of the client's FIN")
        except OSError as e:
            return f"connection {self.index}: {e} while waiting for the server to close it"
        finally:
            self.sock.close()
        if data:
            return f"connection {self.index}: {len(data)} unexpected bytes after the last response"
        return None

def main(argv):
    if len(argv) != 6 or not all(a.isdigit() for a in argv[2:3] + argv[4:6]):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    host, port, path, total, nconns = argv[1], int(argv[2]), argv[3], int(argv[4]), int(argv[5])
    if total < 1 or nconns < 1 or not path.startswith("/"):
        print("ir_reqs.py: N and CONNS must be at least 1, PATH must start with /", file=sys.stderr)
        return 2
    request = (f"GET {path} HTTP/1.1\r\n"
               f"Host: {host}\r\n"
               "User-Agent: weft\r\n"
               "Accept: */*\r\n"
               "\r\n").encode("ascii")

    answered = 0
    try:
        conns = [Conn(i, host, port) for i in range(nconns)]
        while answered < total:
            wave = conns[:min(nconns, total - answered)]
            for c in wave:
                c.sock.sendall(request)
            for c in wave:
                status = c.response()
                if status != 200:
                    raise Failure(f"connection {c.index}: status {status} for GET {path}")
                answered += 1
    except (Failure, OSError) as e:
        print(f"ir_reqs.py: {e} (after {answered} of {total} requests answered with 200)",
              file=sys.stderr)
        return 1

    # All FINs first, so that the server sees the closes together, then wait for each.
    complaints = [m for m in [c.half_close() for c in conns] if m]
    if not complaints:
        complaints = [m for m in [c.wait_closed() for c in conns] if m]
    for m in complaints:
        print(f"ir_reqs.py: {m}", file=sys.stderr)
    return 1 if complaints else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
