"""The SDK's circuit breaker end to end: examples/breaker calls a peer by name through a real
`weft serve` registry every 50 ms; the peer (tests/integration/faulty.py, registered through
the registry's agent API) fails with 503 for a while. The breaker must open after 3 failures
in a row, fail calls fast without reaching the peer while open, half-open after open_for (and
re-open, for longer, while the peer still fails), and close once the peer is healthy, with
the calls succeeding again. The transitions are checked in order in the example's /status,
in the SDK's log lines (comp=client) and in its /metrics.
"""
import re

import requests

from conftest import BUILD, WAIT, WEFT, free_port, get, tail, wait_for

BREAKER = BUILD / "examples" / "breaker"


def start_weft(spawn, data):
    port = free_port()
    p = spawn([WEFT, "serve", "--api", f"127.0.0.1:{port}", "--dns", f"127.0.0.1:{free_port()}",
               "--data-dir", data, "--workers", "2", "--log-level", "warn"], port, name="weft")
    p.registry = f"http://127.0.0.1:{port}"
    return p


def status(b):
    r = get(b.url + "/status")
    assert r.status_code == 200, r.text
    return r.json()


def metric(text, name, **labels):
    """The value of one sample of name with exactly these labels (None when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def assert_chain(transitions):
    """Each transition starts where the last ended, from closed; the legal moves only."""
    legal = {("closed", "open"), ("open", "half_open"), ("half_open", "open"),
             ("half_open", "closed")}
    state = "closed"
    for t in transitions:
        frm, to = t.split("->")
        assert frm == state, f"{t} after reaching {state}: {transitions}"
        assert (frm, to) in legal, f"{t}: {transitions}"
        state = to
    return state


def test_breaker_trips_fails_fast_and_recovers(spawn, faulty, tmp_path):
    reg = start_weft(spawn, tmp_path / "data")
    peer = faulty("peer")
    r = requests.put(f"{reg.registry}/v1/agent/service/register", timeout=WAIT,
                     json={"ID": "peer-1", "Name": "peer", "Address": "127.0.0.1",
                           "Port": peer.port})
    assert r.status_code == 200, r.text
    port = free_port()
    b = spawn([BREAKER, "--peer", "peer", "--path", "/work", "--every", "50", "--failures", "3",
               "--open-for", "500", "--port", port, "--workers", "2", "--log-level", "info",
               "--registry", reg.registry, "--registry-check", "none"], port, name="breaker")

    # healthy: calls succeed, the breaker stays closed
    wait_for(lambda: status(b)["ok"] >= 5, "five good calls")
    assert status(b)["transitions"] == []

    # the peer fails: closed -> open after 3 failures, then calls fail fast
    peer.set_fault("status", status=503)
    wait_for(lambda: status(b)["fast_failed"] >= 5, "five calls failed fast")
    s = status(b)
    assert s["transitions"][0] == "closed->open", s
    assert s["failed"] >= 3, s
    # a call failed fast never reached the peer: every other call did (one may be in flight)
    reached = peer.stats()["requests_by_path"].get("/work", 0)
    s = status(b)
    assert s["ok"] + s["failed"] <= reached <= s["ok"] + s["failed"] + 1, (s, reached)
    assert reached < s["calls"] - 4, (s, reached)

    # still failing: open -> half_open (a trial after open_for) -> open again
    wait_for(lambda: "half_open->open" in status(b)["transitions"], "a failed trial re-opening")

    # healthy again: the next trial closes it, and calls succeed
    peer.set_fault("off")
    wait_for(lambda: status(b)["transitions"][-1:] == ["half_open->closed"], "the breaker closing",
             timeout=WAIT + 10)
    ok = status(b)["ok"]
    wait_for(lambda: status(b)["ok"] >= ok + 5, "five good calls after recovery")
    s = status(b)
    assert assert_chain(s["transitions"]) == "closed", s
    assert s["transitions"][-1] == "half_open->closed", s
    assert s["last"] == "200", s

    # the SDK's /metrics: state 0 (closed), every kind of transition counted with its reason
    text = get(b.url + "/metrics").text
    inst = {"service": "peer", "instance": "peer-1"}
    assert metric(text, "weft_client_breaker_state", **inst, worker="0") == 0, text
    tr = "weft_client_breaker_transitions_total"
    assert metric(text, tr, **inst, **{"from": "closed", "to": "open",
                                       "reason": "consecutive_failures"}) == 1, text
    assert metric(text, tr, **inst, **{"from": "half_open", "to": "open",
                                       "reason": "half_open_failure"}) >= 1, text
    assert metric(text, tr, **inst, **{"from": "open", "to": "half_open",
                                       "reason": "open_timeout"}) >= 2, text
    assert metric(text, tr, **inst, **{"from": "half_open", "to": "closed",
                                       "reason": "half_open_success"}) == 1, text
    assert metric(text, "breaker_example_calls_total", result="fast_failed") >= 5, text

    # the SDK's log: one line per transition, in the same order as /status
    logged = re.findall(r'comp=client msg="circuit breaker (?:opened|moved)" service=peer '
                        r'instance=peer-1 worker=0 from=(\w+)(?: to=(\w+))? reason=(\w+)',
                        tail(b.log))
    chain = [f"{frm}->{to or 'open'}" for frm, to, _ in logged]
    assert chain == s["transitions"], (chain, s["transitions"])
