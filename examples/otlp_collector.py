#!/usr/bin/env python3
"""A small OTLP/HTTP trace collector for the demo and the benchmarks, and a
terminal waterfall of what it received. Standard library only.

  otlp_collector.py serve [--port N] [--out FILE] [--discard]
      Listens on 127.0.0.1 (port 0: any free port, printed as
      "listening PORT" on the first line of stdout). POST /v1/traces takes
      an ExportTraceServiceRequest in protobuf (application/x-protobuf) or
      JSON (application/json); every span is appended to FILE
      as one JSON line (with its resource's service.name), or only counted
      with --discard. GET /stats gives the counts.

  otlp_collector.py waterfall FILE [--trace ID]
      Prints one trace (the given id, else the one with the most spans) as
      a waterfall: one line per span, indented under its parent, with the
      service, the span name, its start offset and duration, and a bar.
"""
import argparse
import json
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# ---- protobuf: just enough of the wire format for the spans we read ------

def pb_fields(buf):
    """Yields (field number, wire type, value) of one message."""
    pos, end = 0, len(buf)

    def varint():
        nonlocal pos
        v = shift = 0
        while True:
            b = buf[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    while pos < end:
        tag = varint()
        field, wt = tag >> 3, tag & 7
        if wt == 0:
            yield field, wt, varint()
        elif wt == 1:
            yield field, wt, buf[pos:pos + 8]
            pos += 8
        elif wt == 5:
            yield field, wt, buf[pos:pos + 4]
            pos += 4
        elif wt == 2:
            n = varint()
            if pos + n > end:
                raise ValueError("length past the end")
            yield field, wt, buf[pos:pos + n]
            pos += n
        else:
            raise ValueError(f"wire type {wt}")


def pb_any(buf):
    for f, _, v in pb_fields(buf):
        if f == 1:
            return {"stringValue": bytes(v).decode("utf-8", "replace")}
        if f == 2:
            return {"boolValue": bool(v)}
        if f == 3:
            return {"intValue": str(v - (1 << 64) if v >= 1 << 63 else v)}
        if f == 4:
            return {"doubleValue": struct.unpack("<d", v)[0]}
    return {}


def pb_attrs(buf):
    kv = {"key": "", "value": {}}
    for f, _, v in pb_fields(buf):
        if f == 1:
            kv["key"] = bytes(v).decode("utf-8", "replace")
        elif f == 2:
            kv["value"] = pb_any(v)
    return kv


def pb_span(buf):
    s = {"attributes": [], "events": []}
    names = {1: "traceId", 2: "spanId", 4: "parentSpanId"}
    for f, _, v in pb_fields(buf):
        if f in names:
            s[names[f]] = bytes(v).hex()
        elif f == 5:
            s["name"] = bytes(v).decode("utf-8", "replace")
        elif f == 6:
            s["kind"] = v
        elif f in (7, 8):
            s["startTimeUnixNano" if f == 7 else "endTimeUnixNano"] = str(
                struct.unpack("<Q", v)[0])
        elif f == 9:
            s["attributes"].append(pb_attrs(v))
        elif f == 11:
            e = {"attributes": []}
            for g, _, w in pb_fields(v):
                if g == 1:
                    e["timeUnixNano"] = str(struct.unpack("<Q", w)[0])
                elif g == 2:
                    e["name"] = bytes(w).decode("utf-8", "replace")
                elif g == 3:
                    e["attributes"].append(pb_attrs(w))
            s["events"].append(e)
        elif f == 15:
            st = {}
            for g, _, w in pb_fields(v):
                if g == 2:
                    st["message"] = bytes(w).decode("utf-8", "replace")
                elif g == 3:
                    st["code"] = w
            s["status"] = st
    return s


def pb_request(body, spans=True):
    """The JSON form of an ExportTraceServiceRequest (only span counts,
    as empty dicts, when spans is false)."""
    out = []
    for f, _, rs in pb_fields(memoryview(body)):
        if f != 1:
            continue
        r = {"resource": {"attributes": []}, "scopeSpans": []}
        for g, _, v in pb_fields(rs):
            if g == 1:
                r["resource"]["attributes"] = [pb_attrs(a) for h, _, a in pb_fields(v) if h == 1]
            elif g == 2:
                r["scopeSpans"].append({"spans": [pb_span(x) if spans else {}
                                                  for h, _, x in pb_fields(v) if h == 2]})
        out.append(r)
    return {"resourceSpans": out}


class Store:
    def __init__(self, out, discard):
        self.lock = threading.Lock()
        self.out = None if discard or out is None else open(out, "a", buffering=1)
        self.spans = 0
        self.posts = 0
        self.bad = 0

    def take(self, body, protobuf=False):
        req = pb_request(body, self.out is not None) if protobuf else json.loads(body)
        lines = []
        for rs in req.get("resourceSpans", []):
            res = {a["key"]: next(iter(a["value"].values()))
                   for a in rs.get("resource", {}).get("attributes", [])}
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    lines.append(s if self.out is None else
                                 dict(s, service=res.get("service.name", "?")))
        with self.lock:
            self.posts += 1
            self.spans += len(lines)
            if self.out is not None:
                for s in lines:
                    self.out.write(json.dumps(s) + "\n")


def serve(args):
    store = Store(args.out, args.discard)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/stats":
                self.reply(200, {"posts": store.posts, "spans": store.spans, "bad": store.bad})
            else:
                self.reply(404, {})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces":
                return self.reply(404, {})
            try:
                ctype = self.headers.get("Content-Type", "")
                store.take(body, ctype.startswith("application/x-protobuf"))
            except (ValueError, KeyError, AttributeError, StopIteration, IndexError,
                    struct.error):
                store.bad += 1
                return self.reply(400, {"error": "not an OTLP trace request"})
            self.reply(200, {"partialSuccess": {}})

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


def waterfall(args):
    spans = []
    with open(args.file) as f:
        for line in f:
            if line.strip():
                spans.append(json.loads(line))
    if not spans:
        print("no spans received")
        return 1
    trace = args.trace
    if trace is None:
        counts = {}
        for s in spans:
            counts[s["traceId"]] = counts.get(s["traceId"], 0) + 1
        trace = max(counts, key=counts.get)
    spans = [s for s in spans if s["traceId"] == trace]
    if not spans:
        print(f"no spans of trace {trace}")
        return 1
    for s in spans:
        s["t0"], s["t1"] = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
    ids = {s["spanId"] for s in spans}
    kids = {}
    for s in spans:
        parent = s.get("parentSpanId") if s.get("parentSpanId") in ids else None
        kids.setdefault(parent, []).append(s)
    for v in kids.values():
        v.sort(key=lambda s: s["t0"])
    start = min(s["t0"] for s in spans)
    total = max(s["t1"] for s in spans) - start or 1
    width = 40
    kinds = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
    print(f"trace {trace}  ({len(spans)} spans, {total / 1e6:.2f} ms)")
    print(f"{'service':<16} {'span':<44} {'start':>9} {'took':>9}")

    def show(s, depth):
        a = int((s["t0"] - start) * width / total)
        b = max(a + 1, int((s["t1"] - start) * width / total))
        bar = " " * a + "#" * (b - a)
        err = " ERROR" if s.get("status", {}).get("code") == 2 else ""
        name = ("  " * depth + s["name"] + f" [{kinds.get(s.get('kind'), '?')}]")[:44]
        print(f"{s.get('service', '?'):<16} {name:<44} {(s['t0'] - start) / 1e6:>7.2f}ms "
              f"{(s['t1'] - s['t0']) / 1e6:>7.2f}ms |{bar:<{width}}|{err}")
        for k in kids.get(s["spanId"], []):
            show(k, depth + 1)

    for root in kids.get(None, []):
        show(root, 0)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--out")
    s.add_argument("--discard", action="store_true")
    w = sub.add_parser("waterfall")
    w.add_argument("file")
    w.add_argument("--trace")
    args = p.parse_args()
    return serve(args) if args.cmd == "serve" else waterfall(args)


if __name__ == "__main__":
    sys.exit(main() or 0)
