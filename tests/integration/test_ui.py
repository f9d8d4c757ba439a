"""The dashboard at /ui/ (docs/ui.md): its embedded files as `weft serve` serves them on the
API port, and the Services view in a real browser.

The asset tests compare what is served with the files under ui/ byte for byte (and the gzip
copy after gunzip), and check the caching and security headers, 304s, 404s and the
redirect. The browser tests start the real `weft serve` and real examples/hello instances
registered with it, then run tests/e2e/run.mjs: Debian's Chromium (headless), driven by
playwright-core, scanned by axe-core, both from npm with the lock file in tests/e2e
(installed by `npm ci` when missing or older than the lock file). Screenshots go to
tests/e2e/artifacts/ (ignored by git).
"""
import gzip
import http.client
import json
import pathlib
import subprocess

import pytest

from conftest import BUILD, HELLO, ROOT, WEFT, free_port, get, need_tool, raw_exchange, wait_for

UI = ROOT / "ui"
E2E = ROOT / "tests" / "e2e"
ARTIFACTS = E2E / "artifacts"
WEIGHT_BUDGET = 300 * 1024  # bytes, gzipped, every file of the page (issue 21)
CHECK_INTERVAL = 1.0        # the hello instances' check interval, in seconds
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


def ui_files():
    """Every file the build embeds: those under ui/ but hidden ones (CMakeLists.txt's
    filter), as paths relative to ui/."""
    out = []
    for p in sorted(UI.rglob("*")):
        rel = p.relative_to(UI).as_posix()
        if p.is_file() and not any(s.startswith(".") for s in rel.split("/")) \
                and not rel.endswith("~"):
            out.append(rel)
    assert "index.html" in out, out
    return out


def fetch(port, path, method="GET", headers=None):
    """One request with exactly these headers (no automatic Accept-Encoding, no decoding);
    returns (status, headers as a dict of lower-case names, body bytes as sent)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


@pytest.fixture
def api(spawn, tmp_path):
    """`weft serve` on free ports; returns its API port."""
    port = free_port()
    spawn([WEFT, "serve", "--api", f"127.0.0.1:{port}", "--data-dir", tmp_path / "data",
           "--workers", "2", "--log-level", "warn"], port, name="weft")
    return port


def assert_page_headers(h):
    csp = h.get("content-security-policy", "")
    assert "default-src 'self'" in csp, csp
    # nothing but this origin: no scheme, no host, no wildcard, no inline code
    for bad in ("http:", "https:", "*", "unsafe-inline", "unsafe-eval", "data: ", "blob:"):
        assert bad not in csp.replace("img-src 'self' data:;", ""), (bad, csp)
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, csp
    assert h.get("x-content-type-options") == "nosniff", h
    assert h.get("referrer-policy") == "no-referrer", h


# ---- the files ----

def test_ui_files_as_built(api):
    """Each file under ui/ is served at /ui/<name> as it is in the tree, with its type,
    a strong ETag, Cache-Control: no-cache and the page's security headers; /ui/ is
    index.html; a file not embedded is a 404 with a JSON error."""
    etags = set()
    for name in ui_files():
        want = (UI / name).read_bytes()
        st, h, body = fetch(api, f"/ui/{name}")
        assert st == 200, (name, st, body[:200])
        assert body == want, name
        assert h["content-type"] == TYPES[pathlib.PurePath(name).suffix], (name, h)
        assert "content-encoding" not in h, (name, h)
        assert h["etag"].startswith('"') and h["etag"].endswith('"') and len(h["etag"]) == 34
        assert h["cache-control"] == "no-cache", h
        assert_page_headers(h)
        etags.add(h["etag"])
    assert len(etags) == len(ui_files()), "two files share an ETag"
    st, h, body = fetch(api, "/ui/")
    assert st == 200 and body == (UI / "index.html").read_bytes(), (st, body[:200])
    assert h["content-type"] == "text/html; charset=utf-8"
    assert_page_headers(h)
    # HEAD: the same head, no body
    st, hh, body = fetch(api, "/ui/app.css", method="HEAD")
    assert st == 200 and body == b"", (st, body)
    assert hh["content-length"] == str(len((UI / "app.css").read_bytes())), hh
    assert hh["etag"] == fetch(api, "/ui/app.css")[1]["etag"]


def test_ui_not_found(api):
    for path in ("/ui/nope.js", "/ui/js", "/ui/js/", "/ui/index.html/x", "/ui/%2e%2e/v1/agent/self",
                 "/ui/..%2fv1%2fagent%2fself", "/ui/INDEX.HTML"):
        st, h, body = fetch(api, path)
        assert st == 404, (path, st, body[:200])
        assert h["content-type"] == "application/json", (path, h)
        err = json.loads(body)["error"]
        assert "no file" in err and "dashboard" in err, (path, err)
        assert h.get("x-content-type-options") == "nosniff"
    # the raw dot segments a browser would have removed reach only the table too
    out, _ = raw_exchange(api, b"GET /ui/../v1/agent/self HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 "), out[:200]
    st, h, body = fetch(api, "/ui/", method="POST")
    assert st == 405, (st, body)


def test_ui_redirect(api):
    for method in ("GET", "HEAD"):
        st, h, _ = fetch(api, "/ui", method=method)
        assert st == 308 and h["location"] == "/ui/", (method, st, h)
    # a browser that follows it lands on the page
    r = get(f"http://127.0.0.1:{api}/ui")
    assert r.status_code == 200 and r.url.endswith("/ui/"), (r.status_code, r.url)
    assert r.history and r.history[0].status_code == 308


def test_ui_gzip(api):
    """Accept-Encoding: gzip gets the build's gzip copy (its own ETag, Vary); q=0 refuses it,
    '*' accepts it, a coding named outright wins over '*'."""
    name = "js/views/services.js"
    want = (UI / name).read_bytes()
    st, plain, body = fetch(api, f"/ui/{name}")
    assert st == 200 and body == want
    assert plain["vary"] == "Accept-Encoding", plain
    for ae in ("gzip", "br, gzip;q=0.5", "*", "deflate, *;q=1", "GZIP", "x-gzip"):
        st, h, body = fetch(api, f"/ui/{name}", headers={"Accept-Encoding": ae})
        assert st == 200 and h.get("content-encoding") == "gzip", (ae, h)
        assert gzip.decompress(body) == want, ae
        assert len(body) < len(want) / 2, (ae, len(body), len(want))
        assert h["etag"] == plain["etag"][:-1] + '-gz"', (h["etag"], plain["etag"])
        assert h["vary"] == "Accept-Encoding"
        assert h["content-type"] == "text/javascript; charset=utf-8"
    for ae in ("gzip;q=0", "identity", "br", "*;q=0", "gzip;q=0.000, *", "deflate"):
        st, h, body = fetch(api, f"/ui/{name}", headers={"Accept-Encoding": ae})
        assert st == 200 and "content-encoding" not in h and body == want, (ae, h)


def test_ui_not_modified(api):
    st, h, _ = fetch(api, "/ui/js/main.js")
    etag = h["etag"]
    st, hg, _ = fetch(api, "/ui/js/main.js", headers={"Accept-Encoding": "gzip"})
    gz_etag = hg["etag"]
    for inm in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        st, h, body = fetch(api, "/ui/js/main.js", headers={"If-None-Match": inm})
        assert st == 304 and body == b"", (inm, st, body)
        assert h["etag"] == etag and h["cache-control"] == "no-cache", h
    st, h, body = fetch(api, "/ui/js/main.js",
                        headers={"If-None-Match": gz_etag, "Accept-Encoding": "gzip"})
    assert st == 304 and body == b"" and h["etag"] == gz_etag, (st, h)
    # another file's tag, or the other representation's, is no match
    st, h, body = fetch(api, "/ui/js/main.js", headers={"If-None-Match": gz_etag})
    assert st == 200 and body == (UI / "js/main.js").read_bytes()
    st, h, body = fetch(api, "/ui/js/main.js", headers={"If-None-Match": '"0000"'})
    assert st == 200


def test_ui_page_weight(api):
    """Every file of the page, as a browser that takes gzip gets it: at most 300 KB."""
    total = 0
    for name in ui_files():
        st, h, body = fetch(api, f"/ui/{name}", headers={"Accept-Encoding": "gzip"})
        assert st == 200
        total += len(body)
    print(f"ui page weight: {total} bytes gzipped, {len(ui_files())} files")
    assert total <= WEIGHT_BUDGET, f"{total} bytes gzipped, over {WEIGHT_BUDGET}"


# ---- the Services view in Chromium ----

def under_tsan():
    """Whether WEFT_BUILD is ThreadSanitizer's build (its CMake cache says so)."""
    cache = BUILD / "CMakeCache.txt"
    return cache.exists() and "WEFT_TSAN:BOOL=ON" in cache.read_text(errors="replace")


_E2E_READY = {}


def e2e_script(script, timeout=120):
    """run(*args, config) -> what tests/e2e/SCRIPT printed (its JSON), run with Node.js
    against Debian's Chromium, after `npm ci` in tests/e2e when node_modules is missing or
    older than the lock file. The browser tests run on the ASan and release builds; under
    ThreadSanitizer they are skipped: they test the page, which is the same page, while
    weft's side of them (the registry's, history's and query APIs) runs under TSan in those
    APIs' own tests, and a browser test takes four times as long there."""
    if under_tsan():
        pytest.skip("browser tests run on the ASan build (the page is the same; its APIs "
                    "run under TSan in their own tests)")
    node, npm, chromium = need_tool("node"), need_tool("npm"), need_tool("chromium")
    if not _E2E_READY:
        stamp = E2E / "node_modules" / ".package-lock.json"
        if not stamp.exists() or stamp.stat().st_mtime < (E2E / "package-lock.json").stat().st_mtime:
            r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                               cwd=E2E, capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, f"npm ci in {E2E} failed:\n{r.stdout}\n{r.stderr}"
        ARTIFACTS.mkdir(exist_ok=True)
        _E2E_READY[True] = True

    def run(*args):
        *pre, cfg = args
        cfg = dict(cfg, chromium=chromium, artifacts=str(ARTIFACTS))
        r = subprocess.run([node, E2E / script, *pre, json.dumps(cfg)],
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, \
            f"{script} {' '.join(pre)} failed ({r.returncode}):\n{r.stderr}\n{r.stdout[-3000:]}"
        return json.loads(r.stdout)

    return run


@pytest.fixture(scope="session")
def e2e():
    """run(scenario, config) -> what tests/e2e/run.mjs saw."""
    return e2e_script("run.mjs")


def start_fleet(spawn, tmp_path, n=2, token=None):
    """weft serve and n examples/hello instances registered with it (HTTP check every
    CHECK_INTERVAL), all passing. Returns (api port, [hello Procs], [their IDs])."""
    port = free_port()
    weft = spawn([WEFT, "serve", "--api", f"127.0.0.1:{port}", "--data-dir", tmp_path / "data",
                  "--workers", "2", "--log-level", "warn"], port, name="weft",
                 env={"WEFT_ACL_TOKEN": token} if token else None)
    hellos, ids = [], []
    for i in range(n):
        hp = free_port()
        args = [HELLO, "--name", "hello", "--port", hp, "--workers", "1", "--log-level", "warn",
                "--registry", f"http://127.0.0.1:{port}",
                "--registry-check-interval", f"{CHECK_INTERVAL:g}s"]
        if token:
            args += ["--registry-token", token]
        hellos.append(spawn(args, hp, name=f"hello{i}"))
        ids.append(f"hello-127.0.0.1-{hp}")

    def all_passing():  # and each check's first probe done (it has an output)
        r = get(f"http://127.0.0.1:{port}/v1/health/service/hello?passing")
        return r.status_code == 200 and sorted(e["Service"]["ID"] for e in r.json()) == sorted(ids) \
            and all(k["Output"] for e in r.json() for k in e["Checks"])
    wait_for(all_passing, "every hello instance registered, probed and passing")
    return port, hellos, ids, weft


def assert_clean_run(out, allowed_http=()):
    assert out["foreign"] == [], f"requests left the page's origin: {out['foreign']}"
    assert out["errors"] == [], f"the page logged errors: {out['errors']}"
    for e in out["http_errors"]:
        if e["step"] == "weft-gone":  # weft was killed: its stream breaks, writes find no one
            assert "net::ERR_" in e["text"], e
        else:
            assert any(f"status of {s}" in e["text"] for s in allowed_http), e
    for view, violations in out["axe"].items():
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not bad, f"axe-core, {view}: {json.dumps(bad, indent=1)}"
    for path in out["screenshots"]:
        assert pathlib.Path(path).stat().st_size > 1000, path


def checks_of(body):
    return json.loads(body)


def test_ui_services_live(spawn, tmp_path, e2e):
    """The Services view shows the real services, instances and checks; a hello killed
    with SIGKILL turns critical on the page within its check interval plus 1 s;
    maintenance on and off and deregister work from the page; axe-core finds no serious or
    critical violation (light and dark); screenshots at laptop and phone widths."""
    port, hellos, ids, _ = start_fleet(spawn, tmp_path)
    a, b = ids
    hellos[0].expect_exit = -9  # the page's test kills it
    before = {k["CheckID"]: k for k in get(f"http://127.0.0.1:{port}/v1/health/checks/hello").json()}
    assert set(before) == {f"service:{i}" for i in ids}, before
    out = e2e("services", {"url": f"http://127.0.0.1:{port}", "service": "hello",
                           "instances": ids, "kill_pid": hellos[0].proc.pid})
    assert_clean_run(out)
    # the list: the one service, its two instances, both passing
    assert out["list"] == [{"service": "hello", "health": "passing", "instances": 2,
                            "badges": ["2 passing"], "tags": []}], out["list"]
    assert out["filter_url"].endswith("/ui/#/services?q=no-such-thing"), out["filter_url"]
    assert out["filter_value"] == "hello"
    assert out["keyboard_url"].endswith("/ui/#/services/hello")
    assert out["focus_after_nav"] == "H1"
    # the service: each instance with its address, meta and checks as the API has them
    assert [c["id"] for c in out["cards"]] == sorted(ids)
    for c in out["cards"]:
        hp = int(c["id"].rsplit("-", 1)[1])
        assert c["health"] == "passing" and c["address"] == f"127.0.0.1:{hp}", c
        assert c["meta"] == {"version": "0.1.0"}, c
        svc_check = [k for k in c["checks"] if k["id"] == f"service:{c['id']}"]
        assert len(svc_check) == 1 and svc_check[0]["status"] == "passing", c
        assert f"HTTP GET http://127.0.0.1:{hp}/health: 200 OK" in svc_check[0]["output"]
        assert any(k["id"] == "serfHealth" for k in c["checks"]), c
    assert out["instance_history"] and "→" in out["instance_history"][0], out["instance_history"]
    # kill -9: critical on the page within the check interval plus 1 s
    assert hellos[0].proc.wait(timeout=10) == -9
    assert out["critical_after_ms"] <= (CHECK_INTERVAL + 1) * 1000, out["critical_after_ms"]
    assert "refused" in out["critical_output"].lower(), out["critical_output"]
    # maintenance on, then off, as the API saw them
    on = checks_of(out["maint_on_api"]["body"])
    assert on[f"_service_maintenance:{b}"]["Status"] == "critical", on
    assert on[f"_service_maintenance:{b}"]["Notes"] == "set from the dashboard"
    assert out["maint_notice"] == f"{b}: maintenance on"
    assert out["maint_button"] == "End maintenance"
    off = checks_of(out["maint_off_api"]["body"])
    assert f"_service_maintenance:{b}" not in off, off
    # deregistered from the page: gone from the API and from the page
    assert out["dereg_api"]["status"] == 404, out["dereg_api"]
    assert out["cards_after"] == [b]
    assert out["token_storage"] == [0, 0]  # no token asked, none kept


def test_ui_token(spawn, tmp_path, e2e):
    """With acl.token set, a write from the page is answered 403; the page asks for the
    token in a form (the API's message shown when a wrong one is refused), keeps it in
    sessionStorage only, and the write succeeds; a cancelled form changes nothing. With
    weft gone, the page says its stream is down and why a write failed."""
    secret = "s3cret-token"
    port, hellos, ids, weft = start_fleet(spawn, tmp_path, token=secret)
    weft.expect_exit = -9  # the page's test kills it last
    out = e2e("token", {"url": f"http://127.0.0.1:{port}", "service": "hello",
                        "instances": ids, "token": secret, "weft_pid": weft.proc.pid})
    assert_clean_run(out, allowed_http=(403,))
    # 403s: without the token, then with the wrong one
    assert sum("status of 403" in e["text"] for e in out["http_errors"]) >= 2, out["http_errors"]
    assert out["dialog_focus"] == "token-input"
    assert "permission denied" in out["refused_text"], out["refused_text"]
    assert f"_service_maintenance:{ids[0]}" not in checks_of(out["after_refused_api"]["body"])
    assert out["dialog_gone"] is True
    assert out["session"] == secret and out["local"] == 0
    assert out["asked_again"] is False
    assert out["dereg_api"]["status"] == 404, out["dereg_api"]
    assert "not registered" in out["gone_text"], out["gone_text"]
    assert f"_service_maintenance:{ids[1]}" not in checks_of(out["cancel_api"]["body"])
    assert out["cancel_notice_hidden"] is True
    # weft gone: the stream's state and the failed write are shown
    assert weft.proc.wait(timeout=10) == -9
    assert out["live_text"] == "reconnecting…", out["live_text"]
    assert out["gone_notice_kind"] == "error"
    assert out["gone_notice"] == (f"PUT /v1/agent/service/maintenance/{ids[1]}?enable=true&reason="
                                  "set%20from%20the%20dashboard: no answer: weft cannot be reached"), \
        out["gone_notice"]
