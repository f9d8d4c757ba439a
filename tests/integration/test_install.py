"""libweft as a C library: the README's example, `make install`, pkg-config, the headers.

What a newcomer does with libweft is checked here as they would do it, on a fresh Release
build of the library (not the sanitizer tree in WEFT_BUILD: a program linked against an
ASan-built libweft.so would itself need -fsanitize, which no README line says):

  * the README's `greeter.c` (taken from README.md, so that this test fails when the README's
    example or its `cc -std=c11 -Iinclude greeter.c -Lbuild -lweft` line rots) is compiled
    with that very line and serves /hello/world and /health, and exits 0 on SIGTERM;
  * `make install PREFIX=...` lays out include/weft/*.h, libweft.so (with its SONAME, and
    exporting weft_* names only), libweft.a (holding llhttp too) and weft.pc, and the greeter
    links through `pkg-config --cflags --libs weft`, and statically through
    `pkg-config --static` against a prefix without libweft.so;
  * every public header compiles on its own under `cc -std=c11 -pedantic -Werror` (no POSIX
    feature macros), the umbrella header as C++11..C++20 with g++ and clang++, and a program
    that includes <uv.h> too hands its uv_loop_t * to weft and back without a cast.

The build and install happen once per module (a temporary BUILD and PREFIX: nothing is written
into the checkout). A missing tool fails the test with the package to install; nothing skips.
"""
import os
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import ROOT, free_port, get

README = ROOT / "README.md"
HEADERS = sorted(p.name for p in (ROOT / "include" / "weft").glob("*.h"))
TOOLS = {"cc": "build-essential", "g++": "build-essential", "clang++": "clang",
         "pkg-config": "pkg-config", "make": "build-essential", "cmake": "cmake",
         "nm": "binutils", "readelf": "binutils"}


def tool(name):
    """The path of a tool this test needs; fails (never skips) when it is missing."""
    path = shutil.which(name)
    assert path, (f"{name} is not installed: run scripts/install-deps "
                  f"(Debian package {TOOLS[name]})")
    return path


def run(args, cwd=None, env=None, timeout=300):
    """Runs a build command; fails the test with its output when it fails."""
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, (f"{shlex.join(map(str, args))} exited {r.returncode}:\n"
                               f"{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r.stdout


def readme_example():
    """(greeter.c's text, the README's compile command as a list, the run command's words):
    the C block that includes <weft/weft.h>, and the `cc ... greeter.c -Lbuild ...` line (the
    one that uses the build tree; lines with pkg-config may follow it)."""
    text = README.read_text()
    blocks = [b for b in re.findall(r"^```c\n(.*?)^```", text, re.S | re.M)
              if "#include <weft/weft.h>" in b and "int main" in b]
    assert blocks, "README.md has no ```c block with #include <weft/weft.h> and main()"
    lines = [ln for ln in re.findall(r"^cc .*\bgreeter\.c\b.*$", text, re.M)
             if "-Lbuild" in ln]
    assert len(lines) == 1, f"README.md should show one `cc ... greeter.c -Lbuild` line: {lines}"
    build, _, start = lines[0].partition("&&")
    return blocks[0], shlex.split(build), shlex.split(start)


def with_port(source, port):
    """The example's source listening on `port` instead of the README's 8081."""
    assert source.count("o.port = 8081;") == 1, "README's greeter.c no longer sets o.port = 8081;"
    return source.replace("o.port = 8081;", f"o.port = {port};")


def clean_env(**extra):
    """The environment for make and the compilers: nothing from a calling make (its jobserver
    and variables), no PKG_CONFIG_PATH but the one given."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PKG_CONFIG_PATH",
                        "DESTDIR", "PREFIX", "BUILD", "LD_LIBRARY_PATH")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`make install` of a fresh Release build into a temporary prefix: (build dir, prefix)."""
    for t in TOOLS:
        tool(t)
    d = tmp_path_factory.mktemp("install")
    build, prefix = d / "build", d / "prefix"
    run(["make", "--no-print-directory", "install", f"BUILD={build}", f"PREFIX={prefix}",
         "DESTDIR="], cwd=ROOT, env=clean_env(), timeout=600)
    return build, prefix


def serve_greeter(spawn, exe, port, env, name):
    """Starts a greeter binary (listening on `port`, written into its source), checks
    /hello/world and /health, stops it with SIGTERM and checks it exits 0."""
    p = spawn([exe], port, name=name, env=env)
    r = get(p.url + "/hello/world")
    assert r.status_code == 200 and r.text == "hello, world\n"
    r = get(p.url + "/health")
    assert r.status_code == 200 and "json" in r.headers["Content-Type"]
    assert isinstance(r.json(), dict)
    assert p.stop() == 0, f"{name} exited {p.exit_code} on SIGTERM"


def write_greeter(directory):
    """Writes the README's greeter.c (on a free port) into directory: (path, port)."""
    source, _, _ = readme_example()
    port = free_port()
    src = directory / "greeter.c"
    src.write_text(with_port(source, port))
    return src, port


def test_readme_example_builds_with_the_readme_line_and_serves(installed, spawn, tmp_path):
    build, _ = installed
    src, port = write_greeter(tmp_path)
    _, cc_line, start = readme_example()
    # the README's line, with its paths relative to a checkout: run it from the checkout with
    # only -Lbuild, the source and the output redirected to this test's files
    assert "-Lbuild" in cc_line and "greeter.c" in cc_line and "-std=c11" in cc_line, cc_line
    assert start[:2] == ["LD_LIBRARY_PATH=build", "./greeter"], start
    exe = tmp_path / "greeter"
    tool(cc_line[0])
    args = [{"-Lbuild": f"-L{build}", "greeter.c": str(src), "greeter": str(exe)}.get(a, a)
            for a in cc_line]
    run(args, cwd=ROOT, env=clean_env())
    serve_greeter(spawn, exe, port, {"LD_LIBRARY_PATH": str(build)}, "greeter-readme")


def test_install_lays_out_the_library(installed):
    _, prefix = installed
    inc, lib = prefix / "include" / "weft", prefix / "lib"
    assert sorted(p.name for p in inc.glob("*.h")) == HEADERS
    for f in ("libweft.so", "libweft.so.0", "libweft.a", "pkgconfig/weft.pc"):
        assert (lib / f).exists(), f"make install did not install lib/{f}"
    assert (lib / "libweft.so").resolve() == (lib / "libweft.so.0").resolve()
    dyn = run(["readelf", "-d", lib / "libweft.so"])
    assert re.search(r"\(SONAME\)\s+Library soname: \[libweft\.so\.0\]", dyn), dyn
    exported = [ln.split()[-1] for ln in
                run(["nm", "-D", "--defined-only", lib / "libweft.so"]).splitlines()]
    assert exported and "weft_service_new" in exported
    stray = [s for s in exported if not s.startswith("weft_")]
    assert not stray, f"libweft.so exports names outside weft_*: {stray[:20]}"
    members = run(["ar", "t", lib / "libweft.a"]).split()
    for m in ("service.c.o", "listener.c.o", "llhttp.c.o", "api.c.o"):
        assert m in members, f"libweft.a lacks {m}: {members}"
    pc = (lib / "pkgconfig" / "weft.pc").read_text()
    assert f"prefix={prefix}\n" in pc, pc
    assert re.search(r"^Requires\.private:.*\blibuv\b", pc, re.M), pc


def test_pkg_config_links_shared(installed, spawn, tmp_path):
    _, prefix = installed
    src, port = write_greeter(tmp_path)
    env = clean_env(PKG_CONFIG_PATH=prefix / "lib" / "pkgconfig")
    flags = shlex.split(run(["pkg-config", "--cflags", "--libs", "weft"], env=env))
    assert f"-I{prefix}/include" in flags and "-lweft" in flags, flags
    exe = tmp_path / "greeter"
    run(["cc", "-std=c11", src, *flags, "-o", exe], env=env)
    assert "libweft.so.0" in run(["readelf", "-d", exe])
    serve_greeter(spawn, exe, port, {"LD_LIBRARY_PATH": str(prefix / "lib")}, "greeter-pc")


def test_pkg_config_links_static(installed, spawn, tmp_path):
    """`pkg-config --static` against a prefix that has libweft.a and no libweft.so, so that
    -lweft can only mean the archive; the program must then need no libweft.so at all."""
    build, _ = installed
    prefix = tmp_path / "static-prefix"
    run(["cmake", "--install", build, "--prefix", prefix], env=clean_env())
    for so in (prefix / "lib").glob("libweft.so*"):
        so.unlink()
    src, port = write_greeter(tmp_path)
    env = clean_env(PKG_CONFIG_PATH=prefix / "lib" / "pkgconfig")
    flags = shlex.split(run(["pkg-config", "--static", "--cflags", "--libs", "weft"], env=env))
    exe = tmp_path / "greeter-static"
    run(["cc", "-std=c11", src, *flags, "-o", exe], env=env)
    assert "libweft" not in run(["readelf", "-d", exe])
    serve_greeter(spawn, exe, port, None, "greeter-static")


def test_each_header_compiles_alone_as_c11(installed, tmp_path):
    """Plain C11: no _GNU_SOURCE or _POSIX_C_SOURCE, so a header that needed POSIX types
    (as <uv.h> does) or relied on another header being included first fails here."""
    _, prefix = installed
    for h in HEADERS:
        src = tmp_path / f"alone_{h[:-2]}.c"
        src.write_text(f"#include <weft/{h}>\nint weft_test_{h[:-2]}_compiles;\n")
        run(["cc", "-std=c11", "-pedantic", "-Wall", "-Wextra", "-Werror",
             f"-I{prefix}/include", "-c", src, "-o", tmp_path / "alone.o"])


CXX_SOURCE = """\
#include <weft/weft.h>
#include <cstdio>

static void hello(weft_http_request_t *req, void *) {
    weft_str_t name = weft_http_request_param(req, "name");
    weft_http_respond(req, 200, "text/plain", name.base, name.len);
}

int main() {
    weft_service_options_t o;
    weft_service_options_init(&o);
    weft_http_handler_fn fn = hello;
    (void)fn;
    std::printf("%s %s\\n", weft_err_name(WEFT_ENOMEM), WEFT_VERSION);
    return 0;
}
"""


@pytest.mark.parametrize("cxx", ["g++", "clang++"])
def test_umbrella_header_compiles_as_cxx(installed, tmp_path, cxx):
    """weft.h as C++11, 14, 17 and 20; the C++11 program links against libweft.so and runs
    (extern "C" names)."""
    _, prefix = installed
    tool(cxx)
    src = tmp_path / "use.cc"
    src.write_text(CXX_SOURCE)
    for std in ("c++11", "c++14", "c++17", "c++20"):
        run([cxx, f"-std={std}", "-pedantic", "-Wall", "-Wextra", "-Werror",
             f"-I{prefix}/include", "-fsyntax-only", src])
    exe = tmp_path / "use"
    run([cxx, "-std=c++11", f"-I{prefix}/include", src, f"-L{prefix}/lib", "-lweft", "-o", exe])
    out = run([exe], env=clean_env(LD_LIBRARY_PATH=prefix / "lib"), timeout=20)
    assert out == "ENOMEM 0.1.0\n", out


UV_SOURCE = """\
{first}
{second}

static void on_worker(uv_loop_t *loop, unsigned index, void *arg)
{{
    (void)loop, (void)index, (void)arg;
}}

uv_loop_t *weft_test_loop(weft_service_t *svc, weft_http_request_t *req,
                          weft_http_client_t **client)
{{
    weft_worker_fn fn = on_worker; /* a uv_loop_t * callback is a weft_worker_fn */
    (void)fn;
    uv_loop_t *loop = req->loop;
    if (weft_http_client_new(loop, NULL, client) != 0) return NULL;
    return weft_service_loop(svc);
}}
"""


@pytest.mark.parametrize("order", ["weft-first", "uv-first"])
@pytest.mark.parametrize("compiler", ["cc", "g++"])
def test_uv_loop_t_is_weft_loop_type(installed, tmp_path, order, compiler):
    """A program that includes <uv.h> (with the POSIX types it needs) gets the same loop type
    from weft: no cast, no warning, in either include order, in C and C++."""
    _, prefix = installed
    inc = ["#include <weft/weft.h>", "#include <uv.h>"]
    if order == "uv-first":
        inc.reverse()
    src = tmp_path / ("loop.c" if compiler == "cc" else "loop.cc")
    src.write_text(UV_SOURCE.format(first=inc[0], second=inc[1]))
    std = ["-std=c11", "-D_GNU_SOURCE"] if compiler == "cc" else ["-std=c++11"]
    run([compiler, *std, "-pedantic", "-Wall", "-Wextra", "-Werror", f"-I{prefix}/include",
         "-c", src, "-o", tmp_path / "loop.o"])
