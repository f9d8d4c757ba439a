"""Zipkin's tag autocomplete on weft's collector (GET /api/v2/autocompleteKeys and
/api/v2/autocompleteValues?key=K, what Zipkin's UI calls for its tag search box): the keys
of collector.autocomplete_keys, the distinct values the stored spans have for one of them
(Zipkin JSON, OTLP JSON with typed and resource attributes, Debian's py_zipkin), still
answered after a restart on the same data directory, bounded by
collector.autocomplete_max_values, a missing key refused with 400."""
import json
import random
import time

import requests

from conftest import WAIT, get, need_module, wait_port


def rand_hex(n):
    return "".join(random.choice("0123456789abcdef") for _ in range(n))


def zipkin_span(service, name, tags, tid=None):
    now_us = time.time_ns() // 1000
    return {"traceId": tid or rand_hex(32), "id": rand_hex(16), "name": name,
            "timestamp": now_us, "duration": 1500, "kind": "SERVER",
            "localEndpoint": {"serviceName": service}, "tags": tags}


def post_zipkin(w, spans):
    r = requests.post(w.zipkin + "/api/v2/spans", data=json.dumps(spans),
                      headers={"Content-Type": "application/json"}, timeout=WAIT)
    assert r.status_code == 202, r.text


def values(w, key):
    r = get(f"{w.zipkin}/api/v2/autocompleteValues", params={"key": key})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def config(tmp_path, text):
    cfg = tmp_path / "weft.yaml"
    cfg.write_text(text)
    return cfg


def test_no_keys_by_default(collector):
    """Without collector.autocomplete_keys (Zipkin's default): no keys, no values, even for
    a tag every span has."""
    w = collector()
    post_zipkin(w, [zipkin_span("shop", "get", {"env": "prod"})])
    assert get(f"{w.zipkin}/api/v2/autocompleteKeys").json() == []
    assert values(w, "env") == []


def test_keys_and_values(collector, tmp_path):
    """The keys as configured (sorted, repeats dropped, spaces trimmed); each key's values
    from spans of several services and formats, sorted and distinct; a tag not configured
    has none; a value written after the first answer shows in the next."""
    cfg = config(tmp_path, 'collector:\n  autocomplete_keys: " http.method, env,client ,env"\n')
    w = collector("col", "--config", cfg)
    assert get(f"{w.zipkin}/api/v2/autocompleteKeys").json() == ["client", "env", "http.method"]
    assert values(w, "env") == []  # configured, nothing stored yet
    post_zipkin(w, [zipkin_span("shop", "get", {"env": "prod", "http.method": "GET",
                                                "user": "ann"}),
                    zipkin_span("shop", "post", {"env": "prod", "http.method": "POST"}),
                    zipkin_span("cart", "get", {"env": "staging", "http.method": "GET",
                                                "user": "bob"}),
                    zipkin_span("billing", "charge", {"env": "qa"})])
    # OTLP: a typed attribute is offered as Zipkin shows it (text), a resource attribute too
    tid = rand_hex(32)
    now = time.time_ns()
    body = {"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "ledger"}},
            {"key": "env", "value": {"stringValue": "dev"}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": [{
            "traceId": tid, "spanId": rand_hex(16), "name": "book", "kind": 2,
            "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1000),
            "attributes": [{"key": "client", "value": {"intValue": "42"}},
                           {"key": "http.method", "value": {"stringValue": ""}}]}]}]}]}
    r = requests.post(w.otlp, data=json.dumps(body), headers={"Content-Type": "application/json"},
                      timeout=WAIT)
    assert r.status_code == 200, r.text
    assert values(w, "env") == ["dev", "prod", "qa", "staging"]
    assert values(w, "http.method") == ["GET", "POST"]  # the empty value is not offered
    assert values(w, "client") == ["42"]
    assert values(w, "user") == []  # a tag, but not configured
    assert values(w, "Env") == []  # keys are case-sensitive, as Zipkin's
    # what is written after an answer is in the next one
    post_zipkin(w, [zipkin_span("cart", "put", {"env": "canary"})])
    assert values(w, "env") == ["canary", "dev", "prod", "qa", "staging"]
    # a value picked from the list finds the traces that have it
    r = get(f"{w.zipkin}/api/v2/traces", params={"annotationQuery": "env=staging"})
    assert [t[0]["localEndpoint"]["serviceName"] for t in r.json()] == ["cart"]


def test_py_zipkin_tags(collector, tmp_path):
    """Tags sent by Debian's py_zipkin (its binary_annotations) are offered."""
    need_module("py_zipkin")
    from py_zipkin import Encoding
    from py_zipkin.transport import BaseTransportHandler
    from py_zipkin.zipkin import zipkin_span as pz_span

    cfg = config(tmp_path, "collector:\n  autocomplete_keys: card.type\n")
    w = collector("col", "--config", cfg)

    class Http(BaseTransportHandler):
        def get_max_payload_bytes(self):
            return None

        def send(self, payload):
            r = requests.post(w.zipkin + "/api/v2/spans", data=payload,
                              headers={"Content-Type": "application/json"}, timeout=WAIT)
            assert r.status_code == 202, r.text

    for card in ("visa", "amex", "visa"):
        with pz_span(service_name="billing", span_name="charge", transport_handler=Http(),
                     sample_rate=100.0, encoding=Encoding.V2_JSON,
                     binary_annotations={"card.type": card, "bank": "acme"}):
            pass
    assert values(w, "card.type") == ["amex", "visa"]
    assert values(w, "bank") == []


def test_values_survive_a_restart(collector, spawn, tmp_path):
    """After weft serve stops and starts again on the same data directory, the values are
    read back from the stored spans."""
    cfg = config(tmp_path, "collector:\n  autocomplete_keys: env,region\n")
    w = collector("col", "--config", cfg)
    post_zipkin(w, [zipkin_span("shop", "get", {"env": "prod", "region": "eu"}),
                    zipkin_span("cart", "get", {"env": "staging", "region": "us"})])
    assert values(w, "env") == ["prod", "staging"]
    assert w.stop() == 0
    w2 = spawn(w.args, w.ports[0], name="col-again")
    wait_port(w.ports[2], w2.proc, w2.log)
    w2.zipkin = w.zipkin
    assert get(f"{w2.zipkin}/api/v2/autocompleteKeys").json() == ["env", "region"]
    assert values(w2, "region") == ["eu", "us"]
    assert values(w2, "env") == ["prod", "staging"]


def test_bound(collector, tmp_path):
    """collector.autocomplete_max_values bounds the distinct values kept per key: past it the
    answer holds that many of the values sent, and a repeated value costs nothing."""
    cfg = config(tmp_path, "collector:\n  autocomplete_keys: id\n  autocomplete_max_values: 3\n")
    w = collector("col", "--config", cfg)
    post_zipkin(w, [zipkin_span("shop", "get", {"id": "a"}),
                    zipkin_span("shop", "get", {"id": "a"}),
                    zipkin_span("shop", "get", {"id": "b"})])
    assert values(w, "id") == ["a", "b"]
    sent = ["a", "b"] + [f"v{i}" for i in range(8)]
    post_zipkin(w, [zipkin_span("shop", "get", {"id": v}) for v in sent[2:]])
    got = values(w, "id")
    assert len(got) == 3 and got == sorted(got) and set(got) <= set(sent), got
    assert values(w, "id") == got  # stable while nothing changes


def test_bad_parameters(collector, tmp_path):
    """A missing or empty key is refused with 400 and a JSON body naming the parameter; a
    key that is not configured is not an error (Zipkin answers [])."""
    cfg = config(tmp_path, "collector:\n  autocomplete_keys: env\n")
    w = collector("col", "--config", cfg)
    for params in ({}, {"key": ""}, {"other": "env"}):
        r = get(f"{w.zipkin}/api/v2/autocompleteValues", params=params)
        assert r.status_code == 400, (params, r.text)
        assert "key" in r.json()["message"], r.text
    r = get(f"{w.zipkin}/api/v2/autocompleteValues", params={"key": "x" * 3000})
    assert r.status_code == 400 and "key" in r.json()["message"], r.text
    assert values(w, "nope") == []


def test_bad_configuration(tmp_path):
    """Too many keys is a configuration error naming the key, exit status 2."""
    import subprocess
    from conftest import WEFT, free_port
    keys = ",".join(f"k{i}" for i in range(33))
    cfg = config(tmp_path, f"collector:\n  autocomplete_keys: \"{keys}\"\n")
    r = subprocess.run([str(WEFT), "serve", "--config", str(cfg), "--api",
                        f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 2, r.stderr
    assert "collector.autocomplete_keys" in r.stderr and "at most 32 keys" in r.stderr, r.stderr
