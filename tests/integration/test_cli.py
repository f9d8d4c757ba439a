"""The registry's command line (`weft services`, `instances`, `register`, `deregister`,
`checks`) against a real `weft serve`: tables, --json compared with the API's own answers,
the API's errors (exit 1), usage errors (exit 2), ACL tokens, and where the API's address
comes from (--api, WEFT_API_ADDR, CONSUL_HTTP_ADDR)."""
import json
import re
import socket
import subprocess
import time

import pytest
import requests

from conftest import WAIT, WEFT, assert_no_sanitizer_report, free_port, get, sanitizer_env

# Variables the commands read: a test sets the ones it means, never the caller's shell.
CLI_VARS = ("WEFT_API_ADDR", "CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "NO_COLOR", "TERM")


def cli(*args, env=None, input=None, timeout=WAIT):
    """Runs `weft ARGS...` to its end (stdin from `input`), with none of CLI_VARS but those
    in `env`; fails the test on a sanitizer report. Returns the CompletedProcess (text)."""
    e = sanitizer_env()
    for k in CLI_VARS:
        e.pop(k, None)
    e.update(env or {})
    r = subprocess.run([str(WEFT), *map(str, args)], capture_output=True, text=True,
                       input=input if input is not None else "", timeout=timeout, env=e)
    assert_no_sanitizer_report(r.stderr, f"weft {' '.join(map(str, args))}")
    return r


def ok(*args, **kw):
    r = cli(*args, **kw)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def table(out):
    """A table's text as (header line, {first cell: row line}), checking that every line
    starts its columns where the header does (left-aligned columns) or ends them there
    (right-aligned ones), for the rows that fill every column."""
    lines = out.rstrip("\n").split("\n")
    head = lines[0]
    assert head == head.rstrip(), "trailing blanks"
    rows = {}
    for ln in lines[1:]:
        assert ln == ln.rstrip(), f"trailing blanks: {ln!r}"
        if not ln.startswith(" "):
            rows[ln.split()[0]] = ln
    return head, rows


def col(head, line, name):
    """The cell of column `name` (a left-aligned one) in `line`: from where the header puts
    the column to the next run of two blanks."""
    start = head.index(name)
    assert start == 0 or line[start - 2:start] == "  ", (head, line, name)
    return re.split(r" {2,}", line[start:])[0]


@pytest.fixture
def reg(spawn, tmp_path):
    port, dns = free_port(), free_port()
    p = spawn([WEFT, "serve", "--api", f"127.0.0.1:{port}", "--dns", f"127.0.0.1:{dns}",
               "--data-dir", tmp_path / "data", "--workers", "2", "--log-level", "warn"],
              port, name="weft")
    p.api = ["--api", p.url]
    return p


WEB1 = {"Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": 8080,
        "Tags": ["v1", "blue"], "Check": {"TTL": "60s", "Status": "passing"}}
WEB2 = {"Name": "web", "ID": "web-2", "Address": "127.0.0.2", "Port": 8081, "Tags": ["v2"],
        "Checks": [{"CheckID": "web-2-ttl", "Name": "heartbeat", "TTL": "60s"}]}
API1 = {"Name": "api", "ID": "api-1", "Port": 9000}


def register_three(reg, tmp_path):
    f = tmp_path / "web1.json"
    f.write_text(json.dumps(WEB1, indent=2))
    r = ok("register", f, *reg.api)
    assert r.stdout == "registered web-1 (service web)\n"
    r = ok("register", "-", *reg.api, input=json.dumps(WEB2))
    assert r.stdout == "registered web-2 (service web)\n"
    r = ok("register", *reg.api, "--json", "-", input=json.dumps(API1))
    assert json.loads(r.stdout) == {"ID": "api-1", "Name": "api"}


def test_help_lists_the_commands():
    r = ok("help")
    for c in ("services", "instances NAME", "register FILE.json|-", "deregister ID",
              "checks [NAME]"):
        assert c in r.stdout, c
    for c in ("services", "instances", "register", "deregister", "checks"):
        for how in ([c, "--help"], [c, "-h"], ["help", c]):
            r = ok(*how)
            assert r.stdout.startswith(f"usage: weft {c}"), how
            for flag in ("--api URL", "--token TOKEN", "--timeout DURATION", "--json",
                         "WEFT_API_ADDR", "CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "exit status"):
                assert flag in r.stdout, (how, flag)
    assert "--wide" in ok("services", "--help").stdout
    assert "--wide" not in ok("deregister", "--help").stdout


def test_register_from_file_and_stdin_then_tables(reg, tmp_path):
    register_three(reg, tmp_path)
    services = get(reg.url + "/v1/agent/services").json()
    assert sorted(services) == ["api-1", "web-1", "web-2"]

    r = ok("services", *reg.api)
    assert r.stderr == ""
    head, rows = table(r.stdout)
    assert head.split() == ["NAME", "INSTANCES", "PASSING", "WARNING", "CRITICAL", "TAGS"]
    assert list(rows) == ["api", "web"]  # sorted by name
    # web-2's check starts critical (no Status given); api-1 has no check: passing
    assert rows["web"].split() == ["web", "2", "1", "0", "1", "v1,blue,v2"]
    assert rows["api"].split() == ["api", "1", "1", "0", "0", "-"]
    # right-aligned counts end under the end of their titles
    for title in ("INSTANCES", "PASSING", "WARNING", "CRITICAL"):
        end = head.index(title) + len(title)
        for ln in rows.values():
            assert ln[end - 1] != " " and ln[end] == " ", (title, ln)

    r = ok("instances", "web", *reg.api)
    lines = r.stdout.rstrip("\n").split("\n")
    head = lines[0]
    assert head.split() == ["ID", "ADDRESS", "HEALTH", "TAGS", "CHECK", "STATUS", "OUTPUT"]
    # one line per check, the node's serfHealth included; the instance on its first line
    assert len(lines) == 1 + 2 + 2
    assert lines[1].split()[:5] == ["web-1", "127.0.0.1:8080", "passing", "v1,blue", "serfHealth"]
    assert col(head, lines[2], "CHECK") == "service:web-1"
    assert col(head, lines[2], "STATUS") == "passing"
    assert lines[2][:head.index("CHECK")].strip() == ""
    assert lines[3].split()[:4] == ["web-2", "127.0.0.2:8081", "critical", "v2"]
    assert col(head, lines[4], "CHECK") == "web-2-ttl"
    assert col(head, lines[4], "STATUS") == "critical"

    # an instance without an address shows the node's (Consul's rule)
    r = ok("instances", "api", *reg.api)
    assert r.stdout.split("\n")[1].split()[:3] == ["api-1", "127.0.0.1:9000", "passing"]

    # a check's status and output change: the tables follow
    assert requests.put(reg.url + "/v1/agent/check/update/web-2-ttl", timeout=WAIT,
                        json={"Status": "warning", "Output": "slow disk"}).status_code == 200
    r = ok("checks", *reg.api)
    head, rows = table(r.stdout)
    assert head.split() == ["ID", "NAME", "SERVICE", "TYPE", "STATUS", "CHANGED", "OUTPUT"]
    assert list(rows) == ["serfHealth", "service:web-1", "web-2-ttl"]
    w = rows["web-2-ttl"]
    assert [col(head, w, c) for c in ("NAME", "SERVICE", "TYPE", "STATUS", "OUTPUT")] == \
        ["heartbeat", "web-2", "ttl", "warning", "slow disk"]
    assert re.fullmatch(r"\d+s ago", col(head, w, "CHANGED")), w
    assert col(head, rows["serfHealth"], "SERVICE") == "-"  # the node's own check
    assert col(head, rows["serfHealth"], "CHANGED") == "-"  # no transition yet

    r = ok("checks", "web", *reg.api)
    _, rows = table(r.stdout)
    assert list(rows) == ["service:web-1", "web-2-ttl"]
    _, rows = table(ok("services", *reg.api).stdout)
    assert rows["web"].split()[1:5] == ["2", "1", "1", "0"]


def test_json_matches_the_api(reg, tmp_path):
    register_three(reg, tmp_path)
    for args, path in ([("instances", "web"), "/v1/health/service/web"],
                       [("checks",), "/v1/health/state/any"],
                       [("checks", "web"), "/v1/health/checks/web"]):
        r = ok(*args, "--json", *reg.api)
        assert json.loads(r.stdout) == get(reg.url + path).json(), args
        assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1
    assert "History" in json.loads(ok("checks", "--json", *reg.api).stdout)[1]

    # services: weft's own shape, computed here from the API the same way
    got = json.loads(ok("services", "--json", *reg.api).stdout)
    catalog = get(reg.url + "/v1/catalog/services").json()
    want = []
    for name in sorted(catalog):
        entries = get(reg.url + f"/v1/health/service/{name}").json()
        counts = {"passing": 0, "warning": 0, "critical": 0}
        for e in entries:
            st = [c["Status"] for c in e["Checks"]]
            counts["critical" if "critical" in st else "warning" if "warning" in st
                   else "passing"] += 1
        want.append({"Name": name, "Instances": len(entries), "Passing": counts["passing"],
                     "Warning": counts["warning"], "Critical": counts["critical"],
                     "Tags": catalog[name]})
    assert got == want

    # deregistration's own JSON; an empty registry is [] in JSON, a note beside no table
    for i in ("web-1", "web-2", "api-1"):
        assert json.loads(ok("deregister", i, "--json", *reg.api).stdout) == {"ID": i}
    assert json.loads(ok("services", "--json", *reg.api).stdout) == []
    r = ok("services", *reg.api)
    assert r.stdout == "" and "no services" in r.stderr
    r = ok("instances", "web", *reg.api)
    assert r.stdout == "" and 'no instances of service "web"' in r.stderr
    assert json.loads(ok("instances", "web", "--json", *reg.api).stdout) == []


def test_deregister_and_unknown_id(reg, tmp_path):
    register_three(reg, tmp_path)
    r = ok("deregister", "web-2", *reg.api)
    assert r.stdout == "deregistered web-2\n"
    assert sorted(get(reg.url + "/v1/agent/services").json()) == ["api-1", "web-1"]
    r = cli("deregister", "web-2", *reg.api)
    assert r.returncode == 1 and r.stdout == ""
    # the URL, the status and the API's own message
    assert f"{reg.url}/v1/agent/service/deregister/web-2" in r.stderr
    assert "404" in r.stderr and 'Unknown service ID "web-2"' in r.stderr, r.stderr


def test_ids_and_names_are_escaped(reg):
    odd = "odd id?&x=%41#1"
    body = {"Name": "odd name", "ID": odd, "Port": 1}
    ok("register", "-", *reg.api, input=json.dumps(body))
    assert list(get(reg.url + "/v1/agent/services").json()) == [odd]
    _, rows = table(ok("instances", "odd name", *reg.api).stdout)
    assert rows["odd"].startswith(odd + "  ")
    assert len(json.loads(ok("checks", "odd name", "--json", *reg.api).stdout)) == 0
    ok("deregister", odd, *reg.api)
    assert get(reg.url + "/v1/agent/services").json() == {}


def test_the_apis_refusal_is_exit_1(reg):
    r = cli("register", "-", *reg.api, input=json.dumps({"Name": "x", "Port": 99999}))
    assert r.returncode == 1
    assert "400" in r.stderr and "Port" in r.stderr and reg.url in r.stderr, r.stderr
    assert get(reg.url + "/v1/agent/services").json() == {}


def test_unreachable_api_is_exit_1_quickly():
    port = free_port()  # nothing listens there
    t = time.monotonic()
    r = cli("services", "--api", f"127.0.0.1:{port}")
    assert time.monotonic() - t < 5
    assert r.returncode == 1 and r.stdout == ""
    assert f"http://127.0.0.1:{port}" in r.stderr and "connection refused" in r.stderr
    assert "weft serve" in r.stderr  # the hint

    # a server that accepts and never answers: the timeout ends the wait
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        t = time.monotonic()
        r = cli("checks", "--api", f"127.0.0.1:{s.getsockname()[1]}", "--timeout", "500ms")
        took = time.monotonic() - t
    assert r.returncode == 1 and "no answer within 500 ms" in r.stderr, r.stderr
    assert 0.5 <= took < 5, took


def test_usage_errors_are_exit_2(reg, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "Name": "x",\n  "Port": ,\n}\n')
    r = cli("register", bad, *reg.api)
    assert r.returncode == 2 and f"{bad}:3:11:" in r.stderr, r.stderr
    r = cli("register", "-", *reg.api, input='{"Name": "x"')
    assert r.returncode == 2 and "<stdin>:1:12:" in r.stderr, r.stderr
    r = cli("register", "-", *reg.api, input='[{"Name": "x"}]')
    assert r.returncode == 2 and "JSON object" in r.stderr
    r = cli("register", tmp_path / "missing.json", *reg.api)
    assert r.returncode == 2 and "cannot read" in r.stderr and "missing.json" in r.stderr
    for args, what in [(["services", "--bogus"], "unknown flag --bogus"),
                       (["services", "-x"], "unknown flag -x"),
                       (["instances"], "missing NAME"),
                       (["instances", "a", "b"], 'unexpected argument "b"'),
                       (["deregister"], "missing ID"),
                       (["register", "--wide", "-"], "unknown flag --wide"),
                       (["services", "--json=yes"], "--json takes no value"),
                       (["services", "--api"], "--api needs a value"),
                       (["services", "--api", "https://127.0.0.1:1"], "https"),
                       (["services", "--api", "127.0.0.1:99999"], "port"),
                       (["services", "--timeout", "soon"], "--timeout"),
                       (["services", "--timeout", "0"], "--timeout")]:
        r = cli(args[0], *reg.api, *args[1:])  # the last --api would win
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert what in r.stderr, (args, r.stderr)
        assert r.stdout == ""
    # nothing was sent
    assert get(reg.url + "/v1/agent/services").json() == {}


def test_acl_token_by_flag_and_environment(spawn, tmp_path):
    port = free_port()
    cfg = tmp_path / "weft.yaml"
    cfg.write_text("acl:\n  token: s3cret\n")
    p = spawn([WEFT, "serve", "--config", cfg, "--api", f"127.0.0.1:{port}",
               "--data-dir", tmp_path / "d", "--log-level", "warn"], port, name="weft")
    api = ["--api", p.url]
    body = json.dumps({"Name": "guarded", "Port": 1})
    r = cli("register", "-", *api, input=body)
    assert r.returncode == 1 and "403" in r.stderr and "--token" in r.stderr, r.stderr
    r = cli("register", "-", *api, "--token", "wrong", input=body)
    assert r.returncode == 1 and "403" in r.stderr
    assert get(p.url + "/v1/agent/services").json() == {}
    ok("register", "-", *api, "--token", "s3cret", input=body)
    assert list(get(p.url + "/v1/agent/services").json()) == ["guarded"]
    # reads need no token
    assert ok("services", *api).stdout.split("\n")[1].split()[0] == "guarded"
    r = cli("deregister", "guarded", *api, env={"CONSUL_HTTP_TOKEN": "wrong"})
    assert r.returncode == 1 and "403" in r.stderr
    # the flag wins over the environment
    ok("deregister", "guarded", *api, "--token", "s3cret", env={"CONSUL_HTTP_TOKEN": "wrong"})
    ok("register", "-", *api, input=body, env={"CONSUL_HTTP_TOKEN": "s3cret"})
    ok("deregister", "guarded", *api, env={"CONSUL_HTTP_TOKEN": "s3cret"})
    assert get(p.url + "/v1/agent/services").json() == {}


def test_where_the_api_address_comes_from(reg, tmp_path):
    register_three(reg, tmp_path)
    dead = f"127.0.0.1:{free_port()}"
    hostport = reg.url.removeprefix("http://")
    for env in ({"CONSUL_HTTP_ADDR": hostport},
                {"CONSUL_HTTP_ADDR": reg.url},
                {"CONSUL_HTTP_ADDR": reg.url + "/"},
                {"WEFT_API_ADDR": hostport, "CONSUL_HTTP_ADDR": dead},
                {"WEFT_API_ADDR": "", "CONSUL_HTTP_ADDR": hostport}):  # empty: unset
        _, rows = table(ok("services", env=env).stdout)
        assert list(rows) == ["api", "web"], env
    # WEFT_API_ADDR comes first, --api before both
    r = cli("services", env={"WEFT_API_ADDR": dead, "CONSUL_HTTP_ADDR": hostport})
    assert r.returncode == 1 and f"http://{dead}" in r.stderr
    ok("services", "--api", hostport, env={"WEFT_API_ADDR": dead, "CONSUL_HTTP_ADDR": dead})
    # a bad variable is a usage error that names it
    r = cli("services", env={"CONSUL_HTTP_ADDR": "unix:///tmp/consul.sock"})
    assert r.returncode == 2 and "CONSUL_HTTP_ADDR" in r.stderr, r.stderr


def test_long_values_are_cut_and_made_safe(reg):
    out = "x" * 100 + "\n\x1b[31m" + "y" * 100
    ok("register", "-", *reg.api,
       input=json.dumps({"Name": "long", "ID": "long-1", "Port": 1, "Tags": ["t" * 80],
                         "Check": {"CheckID": "c", "TTL": "60s", "Status": "passing"}}))
    # a new status, so that the output is published with it
    assert requests.put(reg.url + "/v1/agent/check/update/c", json={"Status": "warning",
                        "Output": out}, timeout=WAIT).status_code == 200
    r = ok("checks", "long", *reg.api)
    assert "\x1b" not in r.stdout
    head, rows = table(r.stdout)
    cell = r.stdout.split("\n")[1][head.index("OUTPUT"):]
    assert len(cell) == 60 and cell.endswith("...") and cell.startswith("x" * 57)
    r = ok("checks", "long", "--wide", *reg.api)
    assert "\x1b" not in r.stdout
    head = r.stdout.split("\n")[0]
    # the newline and ESC became blanks
    assert r.stdout.split("\n")[1][head.index("OUTPUT"):] == "x" * 100 + "  [31m" + "y" * 100
    # identifiers are never cut; tags are
    r = ok("instances", "long", *reg.api)
    head, rows = table(r.stdout)
    assert col(head, rows["long-1"], "TAGS") == "t" * 27 + "..."
    # no colours when stdout is not a terminal
    assert "\x1b" not in ok("services", *reg.api).stdout
