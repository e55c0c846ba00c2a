#!/usr/bin/env python3
"""Checks the deployment files of the example services without a cluster.

Every YAML file under examples/deploy/ must parse (and the etcd-less
variant in examples/deploy-dns/ must hold together); the Kubernetes manifests
must hold the facts the services rely on (probes on /ready and /health, the
container port, a grace period longer than the drain deadline, resources,
the registry, the signing key from a Secret); prometheus.yml must pass
`promtool check config` and scrape every service; the Dockerfiles must build
on Debian 12, run as a non-root user and declare a HEALTHCHECK on /health.

usage: check_deploy.py SOURCE_DIR [PROMTOOL]
"""
import os
import re
import subprocess
import sys

import yaml

SERVICES = ("user-service", "order-service", "payment-service", "bff")
# The services of the order saga, and the broker they share.
EVENT_SERVICES = ("order-service", "payment-service")
EVENTS_URI = "nats://nats:4222"
failures = []


def check(cond, what):
    if cond:
        print(f"ok    {what}")
    else:
        print(f"FAIL  {what}")
        failures.append(what)


def drain_deadline_s(src):
    """The service object's default drain deadline, from its public header."""
    with open(os.path.join(src, "include/msvc/service.h"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"drain[^\n]*\(default (\d+) ms\)", text)
    if not m:
        raise SystemExit("service.h no longer states the default drain deadline")
    return int(m.group(1)) / 1000.0


def load_all(deploy):
    docs = {}
    for name in sorted(os.listdir(deploy)):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(deploy, name)
        try:
            with open(path, encoding="utf-8") as f:
                parsed = [d for d in yaml.safe_load_all(f) if d is not None]
            check(True, f"{name} parses")
        except yaml.YAMLError as e:
            check(False, f"{name} parses ({e})")
            parsed = []
        docs[name] = parsed
    return docs


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def check_probe(probe, path, where):
    get = (probe or {}).get("httpGet", {})
    check(get.get("path") == path, f"{where}: probe on {path}")
    check(get.get("port") in ("http", 8080), f"{where}: probe on the http port")


def check_deployment(d, by_kind, drain_s):
    name = d["metadata"]["name"]
    spec = d["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    check(spec["selector"]["matchLabels"].items() <= labels.items(),
          f"{name}: the selector matches the pod labels")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre_stop = 0
    c = next(c for c in pod["containers"] if c["name"] == name)
    cmd = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if cmd[:1] == ["sleep"]:
        pre_stop = float(cmd[1])
    check(grace > drain_s + pre_stop,
          f"{name}: grace period {grace}s > drain {drain_s:g}s + pre-stop {pre_stop:g}s")
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True,
          f"{name}: runs as non-root")
    check(c["image"].startswith(f"libmsvc/{name}:"), f"{name}: image libmsvc/{name}")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    env = env_of(c)
    check(ports.get("http") == 8080 and env.get("MSVC_PORT") == "8080",
          f"{name}: listens on 8080 (port and MSVC_PORT agree)")
    check(env.get("MSVC_HOST") == "0.0.0.0", f"{name}: listens on every interface")
    check(env.get("MSVC_REGISTRY") == "etcd://etcd:2379", f"{name}: MSVC_REGISTRY=etcd://etcd:2379")
    check(env.get("MSVC_ADVERTISE") == "$(POD_IP):8080", f"{name}: advertises the pod address")
    check(any(e["name"] == "POD_IP" and e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
              == "status.podIP" for e in c["env"]), f"{name}: POD_IP from the downward API")
    check_probe(c.get("readinessProbe"), "/ready", f"{name} readiness")
    check_probe(c.get("livenessProbe"), "/health", f"{name} liveness")
    res = c.get("resources", {})
    check({"cpu", "memory"} <= set(res.get("requests", {})) and
          {"cpu", "memory"} <= set(res.get("limits", {})),
          f"{name}: cpu and memory requests and limits")
    if name != "user-service":
        check(env.get("MSVC_JWT_JWKS_URL") == "http://user-service/.well-known/jwks.json",
              f"{name}: verifies tokens with user-service's JWK Set")
    if name in EVENT_SERVICES:
        check(env.get("MSVC_EVENTS") == EVENTS_URI, f"{name}: MSVC_EVENTS={EVENTS_URI}")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    for var, vol in (("USER_DB", "data"), ("ORDER_DB", "data"), ("PAYMENT_DB", "data")):
        if var in env:
            check(vol in mounts and env[var].startswith(mounts[vol] + "/"),
                  f"{name}: {var} is on a mounted volume")
            claim = volumes[vol].get("persistentVolumeClaim", {}).get("claimName")
            check(claim in by_kind.get("PersistentVolumeClaim", {}) or "emptyDir" in volumes[vol],
                  f"{name}: its database volume is declared")
    if name == "user-service":
        key = env.get("USER_SIGNING_KEY", "")
        secret = volumes.get("signing-key", {}).get("secret", {})
        check(key == mounts.get("signing-key", "?") + "/signing-key.pem",
              "user-service: USER_SIGNING_KEY is in the mounted Secret")
        return secret.get("secretName")
    return None


def check_services(by_kind):
    for name in SERVICES:
        svcs = [s for s in by_kind.get("Service", {}).values()
                if s["spec"].get("selector", {}).get("app.kubernetes.io/name") == name]
        check(bool(svcs), f"{name}: has a Service")
        for s in svcs:
            check(all(p.get("targetPort") == "http" for p in s["spec"]["ports"]),
                  f"Service {s['metadata']['name']}: targets the http port")
    etcd_svc = by_kind.get("Service", {}).get("etcd")
    check(etcd_svc is not None and any(p["port"] == 2379 for p in etcd_svc["spec"]["ports"]),
          "etcd: Service on 2379")
    sts = by_kind.get("StatefulSet", {}).get("etcd")
    check(sts is not None and sts["spec"]["replicas"] == 1, "etcd: single-member StatefulSet")
    if sts:
        c = sts["spec"]["template"]["spec"]["containers"][0]
        check(any("--listen-client-urls=http://0.0.0.0:2379" == a for a in c["command"]),
              "etcd: listens for clients on 2379")
        check(bool(sts["spec"].get("volumeClaimTemplates")), "etcd: data on a volume")
    nats_svc = by_kind.get("Service", {}).get("nats")
    check(nats_svc is not None and any(p["port"] == 4222 for p in nats_svc["spec"]["ports"]),
          "nats: Service on 4222")
    nats = by_kind.get("StatefulSet", {}).get("nats")
    check(nats is not None, "nats: StatefulSet")
    if nats:
        c = nats["spec"]["template"]["spec"]["containers"][0]
        args = c.get("args", []) + c.get("command", [])
        check("-js" in args and "-sd" in args, "nats: JetStream on, its store on a volume")
        check(bool(nats["spec"].get("volumeClaimTemplates")), "nats: data on a volume")


def check_dns_variant(deploy, by_kind):
    """examples/deploy-dns: the same system without etcd, discovering through
    the headless Services' DNS records."""
    d = os.path.join(os.path.dirname(deploy), "deploy-dns")
    with open(os.path.join(d, "kustomization.yaml"), encoding="utf-8") as f:
        kust = yaml.safe_load(f)
    with open(os.path.join(d, "registry-dns.yaml"), encoding="utf-8") as f:
        ops = yaml.safe_load(f)
    check(kust.get("resources") == ["../deploy"], "dns variant: builds on examples/deploy")
    deleted = set()
    for p in kust.get("patches", []):
        body = p.get("patch")
        if body:
            doc = yaml.safe_load(body)
            if doc.get("$patch") == "delete":
                deleted.add((doc["kind"], doc["metadata"]["name"]))
    check({("StatefulSet", "etcd"), ("Service", "etcd")} <= deleted,
          "dns variant: etcd's StatefulSet and Service are removed")
    check(any(p.get("path") == "registry-dns.yaml" and p.get("target", {}).get("kind") == "Deployment"
              for p in kust.get("patches", [])), "dns variant: patches every Deployment")
    test = next((o for o in ops if o["op"] == "test"), None)
    repl = next((o for o in ops if o["op"] == "replace"), None)
    check(test is not None and repl is not None
          and repl["path"] == test["path"].rsplit("/", 1)[0] + "/value"
          and repl["value"] == "dns://?domain=msvc-demo.svc.cluster.local",
          "dns variant: MSVC_REGISTRY=dns://?domain=msvc-demo.svc.cluster.local")
    if test is not None:
        idx = int(test["path"].split("/")[-2])
        for name in SERVICES:
            dep = by_kind.get("Deployment", {}).get(name)
            env = dep["spec"]["template"]["spec"]["containers"][0]["env"] if dep else []
            check(len(env) > idx and env[idx]["name"] == "MSVC_REGISTRY",
                  f"dns variant: {name}'s env[{idx}] is MSVC_REGISTRY")
    # The services called by name are found through their Service's records.
    for name in ("user-service", "order-service"):
        svc = by_kind.get("Service", {}).get(name)
        check(svc is not None and svc["spec"].get("clusterIP") == "None"
              and any(p.get("name") == "http" for p in svc["spec"]["ports"]),
              f"dns variant: Service {name} is headless with a port named http "
              f"(SRV _http._tcp.{name})")


def check_prometheus(deploy, docs, promtool):
    prom = docs.get("prometheus.yml", [{}])[0]
    jobs = {j["job_name"]: j for j in prom.get("scrape_configs", [])}
    for name in SERVICES:
        job = jobs.get(name)
        check(job is not None, f"prometheus: job {name}")
        if job is None:
            continue
        check(job.get("metrics_path", "/metrics") == "/metrics", f"prometheus: {name} on /metrics")
        names = [n for sd in job.get("dns_sd_configs", []) for n in sd["names"]]
        ports = {sd.get("port") for sd in job.get("dns_sd_configs", [])}
        check(len(names) == 1 and names[0].split(".")[0] in (name, name + "-pods")
              and ports == {8080}, f"prometheus: {name} found through its headless Service")
    if promtool:
        for what, file in (("config", "prometheus.yml"), ("rules", "alerts.yml")):
            r = subprocess.run([promtool, "check", what, os.path.join(deploy, file)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(r.stdout + r.stderr)
            check(r.returncode == 0, f"promtool check {what} {file}")
    else:
        print("skip  promtool not found: prometheus.yml checked by the parser only")


def check_dockerfile(src, name):
    path = os.path.join(src, "examples", name, "Dockerfile")
    with open(path, encoding="utf-8") as f:
        lines = [ln.strip() for ln in f.read().replace("\\\n", " ").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    froms = [ln.split()[1] for ln in lines if ln.upper().startswith("FROM ")]
    check(len(froms) >= 2, f"{name}/Dockerfile: multi-stage")
    check(all(re.match(r"debian:(12|bookworm)\b", f) for f in froms),
          f"{name}/Dockerfile: every stage is Debian 12 ({', '.join(froms)})")
    final = lines[max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")):]
    users = [ln.split()[1] for ln in final if ln.upper().startswith("USER ")]
    check(bool(users) and users[-1].split(":")[0] not in ("root", "0"),
          f"{name}/Dockerfile: runs as a non-root user")
    hc = [ln for ln in final if ln.upper().startswith("HEALTHCHECK ")]
    check(len(hc) == 1 and "/health" in hc[0] and "/ready" not in hc[0],
          f"{name}/Dockerfile: HEALTHCHECK on /health")
    check(any(ln.upper().startswith("ENV ") and "MSVC_PORT=8080" in ln for ln in final),
          f"{name}/Dockerfile: ENV defaults (MSVC_PORT=8080)")
    check(any(ln.upper().startswith("EXPOSE ") and "8080" in ln for ln in final),
          f"{name}/Dockerfile: EXPOSE 8080")
    check(any(ln.startswith("ENTRYPOINT") and f"/{name}" in ln for ln in final),
          f"{name}/Dockerfile: runs {name}")
    check(not any("-dev" in ln for ln in final if ln.upper().startswith("RUN ")),
          f"{name}/Dockerfile: no development packages in the runtime stage")
    check(any(f"examples/{name}" in ln for ln in lines), f"{name}/Dockerfile: builds examples/{name}")


def main():
    src = os.path.abspath(sys.argv[1])
    promtool = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    deploy = os.path.join(src, "examples", "deploy")
    drain_s = drain_deadline_s(src)
    docs = load_all(deploy)
    by_kind = {}
    for name, parsed in docs.items():
        for d in parsed:
            if isinstance(d, dict) and "kind" in d and "metadata" in d:
                by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    kust = docs.get("kustomization.yaml", [{}])[0]
    listed = set(kust.get("resources", []))
    manifests = {n for n, p in docs.items() if any(isinstance(d, dict) and "apiVersion" in d
                                                  and d.get("kind") != "Kustomization" for d in p)}
    check(manifests == listed, f"kustomization lists every manifest ({sorted(manifests - listed)} missing)")
    secret_name = None
    for name in SERVICES:
        d = by_kind.get("Deployment", {}).get(name)
        check(d is not None, f"Deployment {name}")
        if d is not None:
            secret_name = check_deployment(d, by_kind, drain_s) or secret_name
    generated = {g["name"] for g in kust.get("secretGenerator", [])}
    check(secret_name is not None and secret_name in generated,
          f"the signing key Secret '{secret_name}' is generated by the kustomization")
    check_services(by_kind)
    check_dns_variant(deploy, by_kind)
    check_prometheus(deploy, docs, promtool)
    for name in SERVICES:
        check_dockerfile(src, name)
    with open(os.path.join(src, ".dockerignore"), encoding="utf-8") as f:
        ignored = f.read().split()
    check(".git" in ignored and "build*/" in ignored, ".dockerignore keeps .git and build trees out")
    if failures:
        print(f"\n{len(failures)} check(s) failed")
        return 1
    print("\nevery deployment check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
