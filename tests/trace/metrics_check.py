#!/usr/bin/env python3
"""Metrics and traces together, on live services.

Starts user-service, order-service and bff with tracing on (exporting to
examples/otlp_collector.py), drives some traffic, then checks:
  - /metrics in the text format 0.0.4 passes `promtool check metrics` and
    carries no exemplar;
  - /metrics asked for as OpenMetrics parses with the OpenMetrics parser of
    prometheus_client, and the request-duration buckets carry exemplars
    whose trace_id and span_id are well-formed ids;
  - every metric the Grafana dashboard queries (examples/deploy/grafana)
    exists on those live /metrics, or is a recording rule of rules.yml;
  - `promtool check rules` accepts rules.yml and alerts.yml.

usage: metrics_check.py <examples build dir> <source dir> [promtool]
Exit 77 (skipped) when the prometheus_client package is missing.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def parser_or_reexec():
    """The OpenMetrics parser; when this interpreter lacks the package,
    another python3 on PATH that has it runs the script instead."""
    try:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
        return text_string_to_metric_families
    except ImportError:
        pass
    if os.environ.get("MSVC_REEXEC"):
        return None
    for d in os.environ.get("PATH", "").split(os.pathsep):
        py = os.path.join(d, "python3")
        if os.access(py, os.X_OK) and os.path.realpath(py) != os.path.realpath(sys.executable):
            if subprocess.run([py, "-c", "import prometheus_client"],
                              capture_output=True).returncode == 0:
                env = dict(os.environ, MSVC_REEXEC="1")
                sys.exit(subprocess.run([py] + sys.argv, env=env).returncode)
    return None


FAILS = []


def check(ok, what, detail=None):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or detail is None else f": {detail}"))
    if not ok:
        FAILS.append(what)
    return ok


def main():
    om_parse = parser_or_reexec()
    if om_parse is None:
        print("skipped: python3 package prometheus_client missing (Debian: python3-prometheus-client)")
        return 77
    bin_dir, src = sys.argv[1], sys.argv[2]
    promtool = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else shutil.which("promtool")
    sys.path.insert(0, os.path.join(src, "tests", "examples"))
    from msvc_system import System, request  # noqa: E402
    deploy = os.path.join(src, "examples", "deploy")

    system = System(bin_dir, log=print)
    col = subprocess.Popen([sys.executable, os.path.join(src, "examples", "otlp_collector.py"),
                            "serve", "--discard"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(col.stdout.readline().split()[1])
        env = {"MSVC_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "MSVC_TRACE_SAMPLE": "1"}
        services = [system.start(s, extra_env=env) for s in ("user-service", "order-service", "bff")]
        bff = services[2]
        system.wait_registered("user-service", 1)
        system.wait_registered("order-service", 1)
        email = f"m-{uuid.uuid4().hex[:8]}@example.com"
        uid = request("POST", bff.url + "/api/users",
                      {"name": "Grace", "email": email, "password": "cobol-1959"}).json["id"]
        token = request("POST", bff.url + "/api/login",
                        {"email": email, "password": "cobol-1959"}).json["access_token"]
        request("POST", bff.url + "/api/orders",
                {"items": [{"sku": "B", "quantity": 2, "unit_price_cents": 50}]}, token=token)
        for _ in range(3):
            request("GET", f"{bff.url}/web/users/{uid}/dashboard", token=token)
            request("GET", f"{bff.url}/mobile/users/{uid}/dashboard", token=token)
        # order-service dies without deregistering: bff's calls to it fail
        # until its breaker opens (the breaker series then exist)
        system.kill(services[1])
        for _ in range(12):
            request("GET", f"{bff.url}/web/users/{uid}/dashboard", token=token)
        services = [services[0], services[2]]
        import time
        time.sleep(1.5)  # a batch of spans goes out: the trace counters have children

        families = {}
        for proc in services:
            r = request("GET", proc.url + "/metrics")
            check(r.status == 200 and r.header("content-type").startswith("text/plain; version=0.0.4"),
                  f"{proc.label}: /metrics in the text format", r.header("content-type"))
            check("# {" not in r.body, f"{proc.label}: no exemplar in the text format")
            if promtool:
                p = subprocess.run([promtool, "check", "metrics"], input=r.body,
                                   capture_output=True, text=True)
                check(p.returncode == 0, f"{proc.label}: promtool check metrics", p.stdout + p.stderr)
            for m in re.finditer(r"^# TYPE (\S+) (\S+)$", r.body, re.M):
                families[m.group(1)] = m.group(2)

        r = request("GET", bff.url + "/metrics",
                    headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        check(r.header("content-type", ).startswith("application/openmetrics-text"),
              "OpenMetrics when asked for", r.header("content-type"))
        exemplars = []
        try:
            for fam in om_parse(r.body):
                for s in fam.samples:
                    if s.exemplar is not None:
                        exemplars.append((s.name, s.exemplar))
            check(True, "the OpenMetrics exposition parses (exemplars included)")
        except ValueError as e:
            check(False, "the OpenMetrics exposition parses", e)
        dur = [e for n, e in exemplars if n == "msvc_http_server_request_duration_seconds_bucket"]
        check(len(dur) > 0, "request-duration buckets carry exemplars", exemplars[:3])
        check(all(re.fullmatch(r"[0-9a-f]{32}", e.labels.get("trace_id", "")) and
                  re.fullmatch(r"[0-9a-f]{16}", e.labels.get("span_id", "")) and
                  e.timestamp is not None for e in dur),
              "each exemplar names a trace id, a span id and a time", dur[:2])

        rules_file = os.path.join(deploy, "rules.yml")
        with open(rules_file) as f:
            recorded = set(re.findall(r"^\s*- record: (\S+)", f.read(), re.M))
        with open(os.path.join(deploy, "grafana", "msvc-services.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        check(len(exprs) >= 15, "the dashboard has its queries", len(exprs))
        missing = set()
        for e in exprs:
            for name in re.findall(r"\b([a-z_][a-z0-9_:]*)\{", e) + re.findall(
                    r"\b((?:msvc|process)_[a-z0-9_]+)\b", e):
                if ":" in name:
                    if name not in recorded:
                        missing.add(name)
                    continue
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name not in families and not (base in families and families[base] == "histogram"):
                    missing.add(name)
        check(not missing, "every metric the dashboard queries exists on a live /metrics",
              sorted(missing))
        ds = {t["datasource"]["uid"] for p in dash["panels"] for t in p.get("targets", [])}
        with open(os.path.join(deploy, "grafana", "provisioning-datasources.yml")) as f:
            prov = f.read()
        check(all(f"uid: {u}" in prov for u in ds), "the dashboard's data source is provisioned", ds)
        if promtool:
            for f in ("rules.yml", "alerts.yml"):
                p = subprocess.run([promtool, "check", "rules", os.path.join(deploy, f)],
                                   capture_output=True, text=True)
                check(p.returncode == 0, f"promtool check rules {f}", p.stdout + p.stderr)
        for p in list(system.procs):
            check(system.stop(p) == 0, f"{p.label} exits cleanly")
    finally:
        system.close(keep_logs=bool(FAILS))
        col.terminate()
        col.wait(10)
    print(f"{len(FAILS)} failure(s)")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
