"""`weft traces` and `weft trace` (issue 20, the command line) against a real `weft serve`
and its collector: the search table (ids, order, start, duration, root span, counts) under
each filter, --json compared with the Jaeger API's own answer, the waterfall's structure
(indentation by parent, every span once, bars placed by offset and length at a forced
width, the error mark, the note of a span whose parent is missing or in a cycle), and the
exit statuses: 2 for bad flags (naming the flag, before anything is sent), 1 for an unknown
trace, an API refusal or an unreachable API (naming the URL)."""
import json
import time

from conftest import free_port, get
from test_cli import cli, col, ok, table
from test_collector import otlp_json, post_json, rand_hex, span

MS = 1_000_000  # ns


def utc(ns):
    """A start as the commands print it: UTC, to the millisecond (from µs, as stored)."""
    us = ns // 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 10**6)) + \
        ".%03dZ" % (us // 1000 % 1000)


def rcol(head, line, name):
    """The cell of right-aligned column `name`: the word that ends where its title ends."""
    end = head.index(name) + len(name)
    assert line[end:end + 1] in ("", " "), (head, line, name)
    return line[:end].split()[-1]


def post(w, tid, spans, service):
    r = post_json(w, otlp_json(tid, spans, service=service))
    assert r.status_code == 200 and "rejectedSpans" not in r.text, r.text


def error_status():
    return {"status": {"code": 2, "message": "boom"}}


def attrs(kv):
    return [{"key": k, "value": {"stringValue": v}} for k, v in kv.items()]


class Shop:
    """Three traces of service shop, known to the microsecond:
    old   2 h ago, GET /cart 300 ms: auth (child) > SELECT (grandchild, service db,
          failed), render (child), late (its parent never arrived); 5 spans, 1 error
    fast  1 h ago, GET /health 5 ms, alone
    new   10 s ago, POST /pay 1.25 s > charge (service pay, failed); its id's high half is
          zero, so Jaeger writes it with 16 digits (the first a zero)."""

    def __init__(self, w):
        self.w = w
        now = time.time_ns() // MS * MS
        self.old, self.fast = rand_hex(32), rand_hex(32)
        self.new = "0" * 17 + "1" + rand_hex(14)
        self.old0, self.fast0, self.new0 = now - 7200_000 * MS, now - 3600_000 * MS, now - 10_000 * MS
        o = self.old0
        self.ids = {n: rand_hex(16) for n in ("cart", "auth", "select", "render", "late")}
        self.missing = rand_hex(16)
        i = self.ids
        post(w, self.old, [
            span("GET /cart", o, 300 * MS, sid=i["cart"],
                 attributes=attrs({"http.status_code": "500", "http.method": "GET"})),
            span("auth", o + 10 * MS, 50 * MS, sid=i["auth"], parent=i["cart"]),
            span("render", o + 200 * MS, 100 * MS, sid=i["render"], parent=i["cart"]),
            span("late", o + 150 * MS, 10 * MS, sid=i["late"], parent=self.missing)], "shop")
        post(w, self.old, [span("SELECT", o + 20 * MS, 20 * MS, sid=i["select"], parent=i["auth"],
                                kind=3, **error_status())], "db")
        post(w, self.fast, [span("GET /health", self.fast0, 5 * MS)], "shop")
        pay = rand_hex(16)
        post(w, self.new, [span("POST /pay", self.new0, 1250 * MS, sid=pay,
                                attributes=attrs({"http.method": "POST"}))], "shop")
        post(w, self.new, [span("charge", self.new0 + 100 * MS, 1000 * MS, parent=pay,
                                **error_status())], "pay")
        self.api = ["--api", w.api]


def search(shop, *flags):
    """`weft traces --service shop FLAGS`: (header, [row lines in order])."""
    r = ok("traces", *shop.api, "--service", "shop", *flags)
    if not r.stdout:
        return None, []
    head, rows = table(r.stdout)
    lines = r.stdout.rstrip("\n").split("\n")[1:]
    assert list(rows.values()) == lines  # one line per trace
    return head, lines


def test_traces_table_filters_and_json(collector):
    w = collector()
    shop = Shop(w)
    head, rows = search(shop, "--min-duration", "100ms")
    assert head.split() == ["TRACE", "ID", "START", "DURATION", "SERVICE", "OPERATION", "SPANS",
                            "ERRORS"]
    # newest first; the new trace's id as Jaeger writes it (16 digits)
    assert [r.split()[0] for r in rows] == [shop.new[16:], shop.old]
    new, old = rows
    assert col(head, new, "START") == utc(shop.new0)
    assert col(head, old, "START") == utc(shop.old0)
    assert [rcol(head, new, c) for c in ("DURATION", "SPANS", "ERRORS")] == ["1.25s", "2", "1"]
    assert [rcol(head, old, c) for c in ("DURATION", "SPANS", "ERRORS")] == ["300ms", "5", "1"]
    assert [col(head, new, c) for c in ("SERVICE", "OPERATION")] == ["shop", "POST /pay"]
    assert [col(head, old, c) for c in ("SERVICE", "OPERATION")] == ["shop", "GET /cart"]

    # each filter narrows the search as the API's parameter does
    every = [shop.new[16:], shop.fast, shop.old]
    for flags, want in [((), every),
                        (("--limit", "1"), [shop.new[16:]]),
                        (("--limit", "2"), every[:2]),
                        (("--operation", "POST /pay"), [shop.new[16:]]),
                        (("--operation", "render"), [shop.old]),
                        (("--max-duration", "8ms"), [shop.fast]),
                        (("--max-duration", "10ms"), [shop.fast, shop.old]),  # late: 10 ms
                        (("--min-duration", "100ms", "--max-duration", "500ms"), [shop.old]),
                        (("--min-duration=1s",), [shop.new[16:]]),
                        (("--tag", "http.status_code=500"), [shop.old]),
                        (("--tag", "http.status_code=500", "--tag", "http.method=GET"), [shop.old]),
                        (("--tag", "http.method=POST"), [shop.new[16:]]),
                        (("--lookback", "30m"), [shop.new[16:]]),
                        (("--lookback", "90m"), every[:2])]:
        _, rows = search(shop, *flags)
        assert [r.split()[0] for r in rows] == want, flags
    rows = search(shop, "--tag", "http.status_code=500", "--tag", "http.method=POST")[1]
    assert rows == []
    r = ok("traces", *shop.api, "--service", "shop", "--operation", "nothing")
    assert r.stdout == "" and r.stderr == 'no traces of service "shop" match\n'
    _, rows = search(shop, "--no-color", "--wide")
    assert len(rows) == 3
    head, db = table(ok("traces", *shop.api, "--service", "db").stdout)
    assert list(db) == [shop.old]  # found by its db span, shown by its root
    assert [col(head, db[shop.old], c) for c in ("SERVICE", "OPERATION")] == ["shop", "GET /cart"]

    # --json: the API's data array, as it came
    r = ok("traces", *shop.api, "--service", "shop", "--min-duration", "100ms", "--json")
    assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1
    api = get(f"{w.api}/api/traces", params={"service": "shop", "minDuration": "100ms"}).json()
    assert json.loads(r.stdout) == api["data"]
    assert [t["traceID"] for t in api["data"]] == [shop.new[16:], shop.old]
    r = ok("traces", *shop.api, "--service", "shop", "--tag", "http.method=DELETE", "--json")
    assert json.loads(r.stdout) == []


def waterfall(out):
    """The waterfall's text as (first line, header, [(name, depth, service, duration,
    (first column, end column) of the bar, note)], the timeline's first column and width)."""
    lines = out.rstrip("\n").split("\n")
    assert lines[1] == ""
    head = lines[2]
    assert head.split()[:3] == ["SPAN", "SERVICE", "DURATION"]
    tl = head.index("DURATION") + len("DURATION") + 2
    bw = (head.index("  NOTE") if "NOTE" in head else len(head)) - tl
    rows = []
    for ln in lines[3:]:
        assert ln == ln.rstrip(), f"trailing blanks: {ln!r}"
        cell = ln[:head.index("SERVICE")].rstrip()
        name = cell.lstrip()
        indent = len(cell) - len(name)
        assert indent % 2 == 0, ln
        bar = ln[tl:tl + bw].rstrip()
        c0 = len(bar) - len(bar.lstrip())
        assert bar.strip() and set(bar.strip()) == {"="}, ln
        note = ln[head.index("NOTE"):] if "NOTE" in head and len(ln) > head.index("NOTE") else ""
        assert ln[tl + bw:head.index("NOTE") if note else len(ln)].strip() == "", ln
        rows.append((name, indent // 2, col(head, ln, "SERVICE"), rcol(head, ln, "DURATION"),
                     (c0, len(bar)), note))
    return lines[0], head, rows, tl, bw


def place(off_ms, dur_ms, total_ms, bw):
    c0 = off_ms * bw // total_ms
    c1 = -(-(off_ms + dur_ms) * bw // total_ms)
    return (min(c0, bw - 1), max(min(c1, bw), min(c0, bw - 1) + 1))


def test_trace_waterfall(collector):
    w = collector()
    shop = Shop(w)
    r = ok("trace", shop.old, *shop.api, env={"COLUMNS": "100"})
    first, head, rows, tl, bw = waterfall(r.stdout)
    assert first == f"trace {shop.old}: 5 spans, 1 error, 300ms, started {utc(shop.old0)}"
    # the forced width, filled by the timeline (the longest line: the longest note's)
    assert max(len(ln) for ln in r.stdout.split("\n")[2:]) == 100
    # the timeline's scale: 0 at its left, the trace's duration at its right
    assert head[tl] == "0" and head[tl:tl + bw].endswith("300ms")
    # depth first, children under their parent by start; the orphan at the top, last
    want = [("GET /cart", 0, "shop", "300ms", 0, 300, ""),
            ("auth", 1, "shop", "50ms", 10, 50, ""),
            ("SELECT", 2, "db", "20ms", 20, 20, "error"),
            ("render", 1, "shop", "100ms", 200, 100, ""),
            ("late", 0, "shop", "10ms", 150, 10, f"missing parent {shop.missing}")]
    assert [(n, d, s, du, no) for n, d, s, du, _, no in rows] == \
        [(n, d, s, du, no) for n, d, s, du, _, _, no in want]
    for (name, _, _, _, bar, _), (_, _, _, _, off, dur, _) in zip(rows, want):
        assert bar == place(off, dur, 300, bw), (name, bar, bw)

    # another width: the same structure, the bars scaled to it
    r = ok("trace", shop.old, *shop.api, env={"COLUMNS": "160"})
    _, head2, rows2, _, bw2 = waterfall(r.stdout)
    assert max(len(ln) for ln in r.stdout.split("\n")[2:]) == 160 and bw2 == bw + 60
    assert [x[:4] for x in rows2] == [x[:4] for x in rows]
    for (name, _, _, _, bar, _), (_, _, _, _, off, dur, _) in zip(rows2, want):
        assert bar == place(off, dur, 300, bw2), (name, bar, bw2)

    # Jaeger's 16-digit form, the 32-digit one and one without leading zeros name one trace
    for tid in (shop.new[16:], shop.new, shop.new.lstrip("0")):
        r = ok("trace", tid, *shop.api, env={"COLUMNS": "100"})
        first, _, rows, _, bw = waterfall(r.stdout)
        assert first == f"trace {shop.new[16:]}: 2 spans, 1 error, 1.25s, started {utc(shop.new0)}"
        assert [x[:4] + x[5:] for x in rows] == [("POST /pay", 0, "shop", "1.25s", ""),
                                                 ("charge", 1, "pay", "1s", "error")]
        assert rows[1][4] == place(100, 1000, 1250, bw)

    # --json: the trace as the API gives it
    r = ok("trace", shop.old, "--json", *shop.api)
    assert json.loads(r.stdout) == get(f"{w.api}/api/traces/{shop.old}").json()["data"][0]


def test_trace_parents_in_a_cycle_are_shown_once(collector):
    """Bad data: two spans each the other's parent (and a child of one of them that starts
    before both), one span its own parent. No root reaches them; each is still on one line,
    the earliest span of each cycle at the top with a note, the rest under it."""
    w = collector()
    now = time.time_ns() // MS * MS
    tid, x, y, z, me = rand_hex(32), rand_hex(16), rand_hex(16), rand_hex(16), rand_hex(16)
    post(w, tid, [span("root", now, 10 * MS, sid=z),
                  span("under", now + 500_000, 1 * MS, parent=y),
                  span("x", now + 1 * MS, 5 * MS, sid=x, parent=y),
                  span("y", now + 2 * MS, 2 * MS, sid=y, parent=x),
                  span("me", now + 3 * MS, 1 * MS, sid=me, parent=me)], "loop")
    r = ok("trace", tid, "--api", w.api, env={"COLUMNS": "120"})
    first, _, rows, _, _ = waterfall(r.stdout)
    assert first.startswith(f"trace {tid}: 5 spans, 0 errors, 10ms, started ")
    assert [(n, d, no) for n, d, _, _, _, no in rows] == [
        ("root", 0, ""), ("x", 0, f"parent {y}, in a cycle"), ("y", 1, ""), ("under", 2, ""),
        ("me", 0, f"parent {me}, in a cycle")]


def test_bad_flags_are_exit_2_naming_the_flag():
    """Checked before anything is sent: the API named here does not listen (a flag that
    passed would end in exit 1)."""
    api = ["--api", f"127.0.0.1:{free_port()}"]
    many = [a for i in range(17) for a in ("--tag", f"k{i}=v")]
    for args, first in [
            (["traces", "--service", "s", "--limit", "0"],
             'weft traces: --limit: expected a number from 1 to 1000, got "0"'),
            (["traces", "--service", "s", "--limit", "1001"], "weft traces: --limit:"),
            (["traces", "--service", "s", "--limit", "ten"], "weft traces: --limit:"),
            (["traces", "--service", "s", "--min-duration", "soon"],
             "weft traces: --min-duration:"),
            (["traces", "--service", "s", "--min-duration", "1.5ms"],
             "weft traces: --min-duration:"),
            (["traces", "--service", "s", "--max-duration", "0"], "weft traces: --max-duration:"),
            (["traces", "--service", "s", "--lookback", "1x"], "weft traces: --lookback:"),
            (["traces", "--service", "s", "--min-duration", "2s", "--max-duration", "1s"],
             "weft traces: --min-duration: longer than --max-duration"),
            (["traces", "--service", "s", "--tag", "novalue"],
             'weft traces: --tag: expected KEY=VALUE, got "novalue"'),
            (["traces", "--service", "s", "--tag", "=v"], "weft traces: --tag:"),
            (["traces", "--service", "s", "--tag", "a=1", "--tag", "a=2"],
             'weft traces: --tag: the key "a" is given twice'),
            (["traces", "--service", "s", *many], "weft traces: --tag: at most 16"),
            (["traces", "--service", "s", "--limit"], "weft traces: --limit needs a value"),
            (["traces"], "weft traces: --service is required"),
            (["traces", "--service", ""], "weft traces: --service is required"),
            (["traces", "--service", "s", "extra"], 'weft traces: unexpected argument "extra"'),
            (["trace", "xyz"], 'weft trace: ID: expected 1 to 32 hex digits, got "xyz"'),
            (["trace", "1" * 33], "weft trace: ID: expected 1 to 32 hex digits"),
            (["trace"], "weft trace: missing ID"),
            (["trace", "abc", "--service", "s"], "weft trace: unknown flag --service")]:
        r = cli(args[0], *api, *args[1:])
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stdout == ""
        assert r.stderr.split("\n")[0].startswith(first), (args, r.stderr)


def test_unknown_trace_refusal_and_unreachable_api_are_exit_1(collector):
    w = collector()
    tid = rand_hex(32)
    r = cli("trace", tid, "--api", w.api)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == f"weft: GET {w.api}/api/traces/{tid}: 404 Not Found: trace not found\n"
    # a parameter the API refuses (longer than it takes): its reason, and the URL
    r = cli("traces", "--service", "s", "--operation", "x" * 3000, "--api", w.api)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"weft: GET {w.api}/api/traces?service=s&operation=xxx")
    assert r.stderr.endswith(": 400 Bad Request: a parameter has a bad escape or is too long\n")
    port = free_port()
    for args in (["trace", tid], ["traces", "--service", "s"]):
        r = cli(*args, "--api", f"127.0.0.1:{port}")
        assert r.returncode == 1, r
        assert r.stderr.startswith(f"weft: cannot reach the API at http://127.0.0.1:{port}: "
                                   "connection refused"), r.stderr


def test_help_lists_and_explains_the_commands():
    r = ok("help")
    assert "traces, from the trace store" in r.stdout
    for c in ("traces ", "trace ID"):
        assert f"\n  {c}" in r.stdout, c
    assert "\n  services " in r.stdout  # the registry's still there
    for how in (["traces", "--help"], ["help", "traces"]):
        out = ok(*how).stdout
        assert out.startswith("usage: weft traces [flags]\n"), how
        for flag in ("--service NAME", "--operation NAME", "--min-duration DURATION",
                     "--max-duration DURATION", "--tag KEY=VALUE", "--lookback DURATION",
                     "--limit N", "--json", "--wide", "--no-color", "--api URL", "exit status"):
            assert flag in out, (how, flag)
    out = ok("trace", "--help").stdout
    assert out.startswith("usage: weft trace ID [flags]\n")
    assert "waterfall" in out and "COLUMNS" in out and "--wide" in out
    assert "--service" not in out and "--tag" not in out
    assert "--tag" not in ok("services", "--help").stdout
