#!/usr/bin/env python3
"""One trace across bff -> user-service / order-service over real sockets.

Starts the OTLP test collector (node, decoding with the OpenTelemetry
definitions) and the three example services with tracing on, sends a
dashboard request with a known traceparent and checks the spans the
collector received: one trace id, server spans named by route, client spans
between them with the right parent links and kinds, resource attributes,
error status when a dependency is down, log lines with trace and span ids,
and that a collector answering 503 costs dropped spans (counted) and no
failed request. The services export in the given OTLP protocol
(OTEL_EXPORTER_OTLP_PROTOCOL; default http/protobuf, theirs too).

usage: propagation.py <examples build dir> <collector dir> [http/protobuf|http/json]
Exit 77 (skipped) when node or the collector's packages are missing.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
from msvc_system import System, request  # noqa: E402

FAILS = []


def check(ok, what, detail=None):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or detail is None else f": {detail}"))
    if not ok:
        FAILS.append(what)
    return ok


class Collector:
    def __init__(self, cdir, log_path):
        self.log = open(log_path, "w")
        self.p = subprocess.Popen(["node", os.path.join(cdir, "collector.mjs")],
                                  stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.p.stdout.readline()
        m = re.match(r"listening (\d+)", line)
        if not m:
            raise RuntimeError(f"collector did not start: {line!r}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def spans(self, trace_id=None):
        r = request("GET", self.url + "/spans")
        return [s for s in r.json if trace_id is None or s["traceId"] == trace_id]

    def stats(self):
        return request("GET", self.url + "/stats").json

    def set_status(self, code):
        request("POST", self.url + "/status", str(code), content_type="text/plain")

    def close(self):
        self.p.terminate()
        self.p.wait(10)
        self.log.close()


def wait_spans(col, trace_id, pred, timeout=15):
    deadline = time.monotonic() + timeout
    spans = []
    while time.monotonic() < deadline:
        spans = col.spans(trace_id)
        if pred(spans):
            return spans
        time.sleep(0.2)
    return spans


def metric(url, name):
    text = request("GET", url + "/metrics").body
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def by(spans, service, kind):
    return [s for s in spans if s["resource"].get("service.name") == service and s["kind"] == kind]


def main():
    bin_dir, cdir = sys.argv[1], sys.argv[2]
    protocol = sys.argv[3] if len(sys.argv) > 3 else "http/protobuf"
    if shutil.which("node") is None or not os.path.isdir(
            os.path.join(cdir, "node_modules", "@opentelemetry", "otlp-transformer")):
        print("skipped: node or the collector's packages (npm ci in tests/trace/collector) missing")
        return 77
    system = System(bin_dir, log=print)
    col = Collector(cdir, os.path.join(system.tmp, "logs", "collector.log"))
    try:
        env = {"MSVC_OTLP_ENDPOINT": col.url, "MSVC_TRACE_SAMPLE": "1"}
        if len(sys.argv) > 3:
            env["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
        system.start("user-service", extra_env=env)
        orders = system.start("order-service", extra_env=env)
        bff = system.start("bff", extra_env=env)
        system.wait_registered("user-service", 1)
        system.wait_registered("order-service", 1)

        email = f"t-{uuid.uuid4().hex[:8]}@example.com"
        r = request("POST", bff.url + "/api/users",
                    {"name": "Ada", "email": email, "password": "analytical-1843"})
        check(r.status == 201, "create a user through the gateway", r)
        uid = r.json["id"]
        r = request("POST", bff.url + "/api/login", {"email": email, "password": "analytical-1843"})
        check(r.status == 200, "log in through the gateway", r)
        token = r.json["access_token"]
        r = request("POST", bff.url + "/api/orders",
                    {"items": [{"sku": "A", "quantity": 1, "unit_price_cents": 100}]}, token=token)
        check(r.status == 201, "place an order", r)

        trace_id, caller = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        tp = f"00-{trace_id}-{caller}-01"
        r = request("GET", f"{bff.url}/web/users/{uid}/dashboard", token=token,
                    headers={"traceparent": tp, "tracestate": "vendor=abc"})
        check(r.status == 200, "dashboard with a traceparent", r)

        def complete(sp):
            return (len(by(sp, "bff", 2)) >= 1 and len(by(sp, "user-service", 2)) >= 1
                    and len(by(sp, "order-service", 2)) >= 1 and len(by(sp, "bff", 3)) >= 2
                    and len(by(sp, "bff", 1)) >= 1)
        spans = wait_spans(col, trace_id, complete)
        check(complete(spans), "spans of all three services arrive under one trace id",
              [(s["resource"].get("service.name"), s["name"]) for s in spans])
        if complete(spans):
            srv = by(spans, "bff", 2)[0]
            check(srv["name"] == "GET /web/users/:id/dashboard",
                  "the bff server span is named by its route", srv["name"])
            check(srv.get("parentSpanId") == caller, "its parent is the caller's span",
                  srv.get("parentSpanId"))
            if protocol == "http/protobuf":
                # sampled; the parent is known, and remote (OTLP 1.1 span flags)
                check(srv.get("flags") == 0x301, "the server span's flags: sampled, remote parent",
                      srv.get("flags"))
            check(srv["attrs"].get("http.route") == "/web/users/:id/dashboard"
                  and srv["attrs"].get("http.response.status_code") == "200",
                  "http.route and http.response.status_code set", srv["attrs"])
            for name in ("bff", "user-service", "order-service"):
                res = by(spans, name, 2)[0]["resource"]
                check(res.get("service.name") == name and res.get("service.instance.id")
                      and res.get("service.version"),
                      f"{name}: resource service.name, service.instance.id, service.version", res)
            clients = {s["name"]: s for s in by(spans, "bff", 3)}
            fan = [s for s in by(spans, "bff", 1) if s["name"] == "fanout"]
            check(len(fan) == 1 and fan[0].get("parentSpanId") == srv["spanId"]
                  and fan[0]["attrs"].get("msvc.fanout.calls") == "1"
                  and fan[0].get("flags") == (0x101 if protocol == "http/protobuf" else None),
                  "the dashboard's fan-out (the user read) is one internal span under the server span",
                  fan)
            # The orders are read through the bff's response cache, beside the
            # fan-out: their call is a child of the server span itself.
            cu0, co0 = clients.get("GET user-service"), clients.get("GET order-service")
            check(fan and cu0 is not None and cu0.get("parentSpanId") == fan[0]["spanId"]
                  and co0 is not None and co0.get("parentSpanId") == srv["spanId"],
                  "bff's user call is a child of its fan-out span, the cached orders read of the server span",
                  [(c["name"], c.get("parentSpanId")) for c in clients.values()])
            us = by(spans, "user-service", 2)[0]
            os_ = by(spans, "order-service", 2)[0]
            cu = clients.get("GET user-service")
            co = clients.get("GET order-service")
            check(cu is not None and co is not None, "client spans named by method and service",
                  list(clients))
            if cu and co:
                check(us.get("parentSpanId") == cu["spanId"],
                      "user-service's server span is the child of bff's call to it")
                check(os_.get("parentSpanId") == co["spanId"],
                      "order-service's server span is the child of bff's call to it")
            check(all(not re.search(r"/\d+", s["name"]) for s in spans),
                  "no raw path (ids) in any span name", [s["name"] for s in spans])
            check(all(int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 0 for s in spans),
                  "start and end times set")
            with open(bff.log_path) as f:
                logs = f.read()
            check(re.search(rf"trace_id={trace_id}.*span_id={srv['spanId']}", logs) is not None
                  or re.search(rf'"trace_id":"{trace_id}".*"span_id":"{srv["spanId"]}"', logs)
                  is not None, "bff's access log carries the trace id and its span id")

        # a second user-service dies without deregistering: a call that
        # picks it is retried on the first, one client span with a retry event
        extra = system.start("user-service", label="user-service-2", extra_env=env)
        system.wait_registered("user-service", 2)
        system.kill(extra)
        retried = []
        for _ in range(6):
            t = uuid.uuid4().hex
            r = request("GET", f"{bff.url}/web/users/{uid}/dashboard", token=token,
                        headers={"traceparent": f"00-{t}-{caller}-01"})
            check(r.status == 200, "dashboard with one user-service instance dead", r)
            sp = wait_spans(col, t, lambda sp: any(s["name"] == "GET user-service" for s in sp))
            retried += [s for s in sp if s["name"] == "GET user-service"
                        and any(e.get("name") == "retry" for e in s.get("events", []))]
            if retried:
                break
        check(bool(retried) and retried[0]["attrs"].get("http.request.resend_count") == "1"
              and retried[0].get("status", {}).get("code", 0) != 2,
              "a retried call: one client span, a retry event, resend_count 1, not an error",
              retried[:1])

        # a malformed traceparent starts a new trace
        r = request("GET", f"{bff.url}/web/users/{uid}/dashboard", token=token,
                    headers={"traceparent": f"00-{trace_id.upper()}-{caller}-01"})
        check(r.status == 200, "dashboard with a malformed traceparent", r)

        # order-service down: the call's span carries the error
        system.stop(orders)
        time.sleep(0.5)
        trace2 = uuid.uuid4().hex
        r = request("GET", f"{bff.url}/web/users/{uid}/dashboard", token=token,
                    headers={"traceparent": f"00-{trace2}-{caller}-01"})
        check(r.status == 200 and r.json.get("degraded") == ["order-service"],
              "dashboard degraded with order-service down", r)
        spans = wait_spans(col, trace2, lambda sp: any(
            s["name"] == "GET order-service" for s in sp))
        co = [s for s in spans if s["name"] == "GET order-service"]
        check(co and co[0].get("status", {}).get("code") == 2,
              "the failed call's client span has status ERROR", co)

        exported = metric(bff.url, "msvc_trace_spans_exported_total")
        check(exported > 0, "bff counts exported spans", exported)

        # the collector answers 503: requests are served, spans dropped and counted
        col.set_status(503)
        ok = sum(request("GET", bff.url + "/health").status == 200 for _ in range(50))
        check(ok == 50, "every request served while the collector answers 503", ok)
        deadline = time.monotonic() + 15
        dropped = 0
        while time.monotonic() < deadline and dropped == 0:
            time.sleep(0.3)
            dropped = metric(bff.url, 'msvc_trace_spans_dropped_total{reason="export_failed"}')
        check(dropped > 0, "spans refused by the collector are counted as dropped", dropped)
        col.set_status(200)

        st = col.stats()
        check(st["invalid"] == 0, "the collector decoded every payload", st.get("errors"))
        kind = "protobuf" if protocol == "http/protobuf" else "json"
        check(st[kind] > 0 and st["protobuf"] + st["json"] == st[kind],
              f"every payload came as {protocol}", st)
        for p in list(system.procs):
            check(system.stop(p) == 0, f"{p.label} exits cleanly")
        reports = system.sanitizer_reports() if hasattr(system, "sanitizer_reports") else []
        check(not reports, "no sanitizer report", reports)
    finally:
        system.close(keep_logs=bool(FAILS))
        col.close()
    print(f"{len(FAILS)} failure(s)")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
