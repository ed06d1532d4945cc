#!/usr/bin/env python3
"""A complete faultline external adapter for faultline's built-in store.

faultline runs it once per client worker and speaks newline-delimited JSON
on stdin/stdout (see the README, "External adapters"). It forwards each
request to the built-in store's line protocol (docs/node-protocol.md) on
port 7000 of the request's node. Run it with:

  faultline run --db external --db-opt server=builtin \
      --db-opt command="python3 examples/adapters/builtin_adapter.py"
"""
import json
import socket
import sys

PORT = 7000
TIMEOUT = 1.0  # seconds; faultline's own --op-timeout is the real bound
conns = {}  # addr -> (socket, file)


def log(msg):
    print(msg, file=sys.stderr, flush=True)  # stderr is the adapter's log


def call(addr, req):
    """One request to the store; raises OSError (or ValueError) on trouble."""
    if addr not in conns:
        s = socket.create_connection((addr, PORT), timeout=TIMEOUT)
        conns[addr] = (s, s.makefile("rb"))
    s, f = conns[addr]
    s.sendall((json.dumps(req) + "\n").encode())
    line = f.readline()
    if not line:
        raise OSError("connection closed")
    return json.loads(line)


def handle(req):
    rid, f = req["id"], req["f"]
    if f == "open":  # the handshake: ready when every node answers ping
        for n in req["nodes"]:
            try:
                call(n["addr"], {"id": 1, "f": "ping"})
            except (OSError, ValueError) as e:
                conns.pop(n["addr"], None)
                return {"id": rid, "type": "fail", "error": f"{n['name']}: {e}"}
        return {"id": rid, "type": "ok"}
    addr = req["addr"]
    fresh = addr not in conns
    try:
        r = call(addr, {"id": rid, "f": f, "key": req["key"], "value": req.get("value")})
        return {"id": rid, "type": r["type"], "value": r.get("value"), "error": r.get("error")}
    except (OSError, ValueError) as e:
        conns.pop(addr, None)
        # Could not connect: nothing was sent, so it certainly failed.
        kind = "fail" if fresh and isinstance(e, ConnectionRefusedError) else "info"
        return {"id": rid, "type": kind, "error": f"{type(e).__name__}: {e}"}


for line in sys.stdin:  # EOF: faultline is done (or gone), so exit
    if line.strip():
        print(json.dumps(handle(json.loads(line))), flush=True)
log("adapter: stdin closed, exiting")
