"""A WebSocket upstream for test_gateway_ws.py (python3-websockets):
  /echo         every message back as it came (text or binary)
  /close        answers the first message with "bye", then closes the connection itself
  /stream/N     sends N bytes of binary messages (1 MiB each, the last shorter), then
                "done" and waits for the client to close
  /deny         not upgraded: 403 with a JSON body (a plain HTTP answer)
  /count        not upgraded: 200 with {"open": connections open now, "closed": ended}
Stops on SIGTERM with status 0."""
import argparse
import asyncio
import http
import json
import signal

import websockets

STATE = {"open": 0, "closed": 0}
MIB = 1 << 20


async def handler(ws, path):
    STATE["open"] += 1
    try:
        if path == "/echo":
            async for m in ws:
                await ws.send(m)
        elif path == "/close":
            await ws.recv()
            await ws.send("bye")
            await ws.close()
        elif path.startswith("/stream/"):
            left = int(path.rsplit("/", 1)[1])
            chunk = bytes(range(256)) * (MIB // 256)
            while left > 0:
                n = min(left, MIB)
                await ws.send(chunk[:n])
                left -= n
            await ws.send("done")
            await ws.wait_closed()
    except websockets.ConnectionClosed:
        pass
    finally:
        STATE["open"] -= 1
        STATE["closed"] += 1


async def process_request(path, headers):
    if path == "/deny":
        return http.HTTPStatus.FORBIDDEN, [("Content-Type", "application/json")], \
            b'{"error":"no websocket here"}\n'
    if path == "/count" or "Upgrade" not in headers:
        return http.HTTPStatus.OK, [("Content-Type", "application/json")], \
            json.dumps(STATE).encode() + b"\n"
    return None


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(handler, "127.0.0.1", port, process_request=process_request,
                                max_size=None, compression=None):
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    asyncio.run(main(ap.parse_args().port))
