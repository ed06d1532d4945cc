#!/usr/bin/env python3
"""A complete faultline external adapter for faultline's built-in store.

faultline runs it once per client worker and speaks newline-delimited JSON
on stdin/stdout (see the README, "External adapters"). It forwards each
request to the built-in store's line protocol (docs/node-protocol.md) on
port 7000 of the request's node; a `txn` (the list-append, rw-register,
bank and seats workloads) becomes one request per micro-op, which is not a
transaction, and faultline says so. Run it with:

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


def micro_op(addr, rid, m):
    """One micro-op of a txn on the built-in store; returns (read, wrote).
    Raises OSError/ValueError on trouble, TxnFailed when it must fail."""
    f, k, v = m
    key = str(k)
    if f == "r":
        r = call(addr, {"id": rid, "f": "read", "key": key})
        return r.get("value"), False
    if f == "append":  # read, then cas the longer list in (retried)
        for _ in range(20):
            cur = call(addr, {"id": rid, "f": "read", "key": key}).get("value")
            new = (cur or []) + [v]
            r = call(addr, {"id": rid, "f": "cas", "key": key, "value": [cur, new]})
            if r["type"] == "ok":
                return None, True
            if r["type"] == "info":
                raise ValueError("cas: " + str(r.get("error")))  # maybe applied
        raise TxnFailed("append: too many cas mismatches")
    if f == "w":
        r = call(addr, {"id": rid, "f": "write", "key": key, "value": v})
    elif f == "add":
        r = call(addr, {"id": rid, "f": "incr", "key": key, "value": v})
    elif f == "book":  # only if the seat is free (absent)
        r = call(addr, {"id": rid, "f": "cas", "key": key, "value": [None, v]})
        if r["type"] == "fail":
            raise TxnFailed("taken")
    else:
        raise TxnFailed(f"unknown micro-op {f}")
    if r["type"] != "ok":
        raise TxnFailed(r.get("error") or r["type"])
    return None, True


class TxnFailed(Exception):
    pass


def txn(req):
    """A txn, one micro-op after the other. The built-in store has no
    transactions: each micro-op is atomic on its own, the txn is not (so
    `faultline check` finds anomalies; that is the point of the example).
    Once a write may have happened, a failure is `info`, not `fail`."""
    rid, addr, done, wrote = req["id"], req["addr"], [], False
    try:
        for m in req["value"]:
            read, w = micro_op(addr, rid, m)
            wrote = wrote or w
            done.append([m[0], m[1], read] if m[0] == "r" else m)
        return {"id": rid, "type": "ok", "value": done}
    except (OSError, ValueError, TxnFailed) as e:
        if isinstance(e, (OSError, ValueError)):
            conns.pop(addr, None)
            wrote = True  # the request in flight may have been applied
        kind = "info" if wrote else "fail"
        return {"id": rid, "type": kind, "error": f"{type(e).__name__}: {e}"}


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
    if f == "txn":
        return txn(req)
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
