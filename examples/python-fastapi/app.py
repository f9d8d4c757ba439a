#!/usr/bin/python3
"""A small FastAPI service on the stack many teams' Python services use (FastAPI, uvicorn,
prometheus_client, python-consul: Debian's python3-* packages), registered in weft as it
would be in Consul.

    /usr/bin/python3 examples/python-fastapi/app.py --port 8001 --registry http://127.0.0.1:8500

On start it registers itself (name "python-fastapi" by default) with an HTTP check on its
own /health; on SIGTERM or Ctrl-C it deregisters before it exits. Routes:

    GET /health               {"status": "passing"}
    GET /metrics              Prometheus text (prometheus_client)
    GET /hello/{name}         {"message": "hello, NAME", "from": "python-fastapi"}
    GET /call/{service}/{path}  looks SERVICE up in the registry (passing instances only,
                              as /v1/health/service/NAME?passing answers), calls one of them
                              (round robin) at /PATH, and answers with what it said

Nothing here is weft-specific: point --registry at a Consul agent and it works the same.
"""
import argparse
import itertools
import json
import os
import signal
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

import consul
import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

REQUESTS = Counter("app_requests_total", "requests served", ["route"])
CALLS = Counter("app_calls_total", "calls to other services", ["service", "outcome"])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--name", default="python-fastapi")
    p.add_argument("--id", default=None, help="instance ID (default NAME-HOST-PORT)")
    p.add_argument("--registry", default=os.environ.get("WEFT_REGISTRY", ""),
                   help="the registry's URL, e.g. http://127.0.0.1:8500 (empty: none)")
    p.add_argument("--check-interval", default="2s")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per outgoing call")
    return p.parse_args(argv)


args = parse_args(sys.argv[1:] if __name__ == "__main__" else [])
app = FastAPI(title=args.name)
registry = None
_rr = {}


def consul_client():
    u = urllib.parse.urlsplit(args.registry)
    return consul.Consul(host=u.hostname or "127.0.0.1", port=u.port or 8500,
                         scheme=u.scheme or "http")


@app.get("/health")
def health():
    REQUESTS.labels("/health").inc()
    return {"status": "passing", "service": args.name}


@app.get("/metrics")
def metrics():
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@app.get("/hello/{name}")
def hello(name: str):
    REQUESTS.labels("/hello/{name}").inc()
    return {"message": f"hello, {name}", "from": args.name, "port": args.port}


@app.get("/call/{service}/{path:path}")
def call(service: str, path: str):
    """Discovery as a Consul client does it: the passing instances, then one of them."""
    REQUESTS.labels("/call").inc()
    if registry is None:
        return JSONResponse({"error": "no registry configured (--registry)"}, status_code=503)
    _, entries = registry.health.service(service, passing=True)
    if not entries:
        CALLS.labels(service, "no-instance").inc()
        return JSONResponse({"error": f"no passing instance of {service}"}, status_code=503)
    targets = sorted((e["Service"]["Address"] or e["Node"]["Address"], e["Service"]["Port"])
                     for e in entries)
    it = _rr.setdefault(service, itertools.count())
    host, port = targets[next(it) % len(targets)]
    url = f"http://{host}:{port}/{path}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as r:
            body = r.read().decode("utf-8", "replace")
            status = r.status
    except urllib.error.HTTPError as e:
        body, status = e.read().decode("utf-8", "replace"), e.code
    except (urllib.error.URLError, OSError) as e:
        CALLS.labels(service, "error").inc()
        return JSONResponse({"error": f"{url}: {e}"}, status_code=502)
    CALLS.labels(service, "ok").inc()
    return {"instance": f"{host}:{port}", "status": status, "body": body}


def register():
    sid = args.id or f"{args.name}-{args.host}-{args.port}"
    check = consul.Check.http(f"http://{args.host}:{args.port}/health", args.check_interval,
                              timeout="1s", deregister="1m")
    registry.agent.service.register(args.name, service_id=sid, address=args.host,
                                    port=args.port, tags=["python", "fastapi"], check=check)
    return sid


def main():
    global registry
    sid = None
    if args.registry:
        registry = consul_client()
        sid = register()
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    server = uvicorn.Server(config)
    try:
        server.run()  # returns after SIGTERM / SIGINT, once requests in flight are done
    finally:
        if sid:
            try:
                registry.agent.service.deregister(sid)
            except Exception as e:  # the registry may be gone first: say so, exit anyway
                print(f"deregistration failed: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
