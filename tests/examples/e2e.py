#!/usr/bin/env python3
"""End-to-end tests of the example services.

  e2e.py build SOURCE_DIR BUILD_DIR WORK_DIR CMAKE
      Installs the libmsvc of BUILD_DIR into WORK_DIR/prefix and builds each
      example service out of tree against it, as a user would
      (find_package(libmsvc)), into WORK_DIR/bin/<service>/<service>.

  e2e.py run --bin-dir DIR [--registry local|etcd|dns] [--promtool PATH]
             [--only NAME,...] [--keep-logs]
      Starts the system (two user-service instances, an order-service and a
      bff) on 127.0.0.1 with a private registry, and runs every scenario:
      the REST contract, token refusals, load spread, /metrics,
      degradation, and graceful restarts under load.

Exit status 0 when every check passed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import msvc_system  # noqa: E402
from msvc_system import (SERVICES, System, b64url, b64url_decode, jwt_parts,  # noqa: E402
                         sign_es256, sign_hs256, unsigned_token)

# Every answer of a service is also checked against its openapi.yaml (when
# the run has set these).
CONFORMANCE = None
PORT_SERVICE = {}


def request(method, url, *args, **kwargs):
    r = msvc_system.request(method, url, *args, **kwargs)
    if CONFORMANCE is not None:
        u = urllib.parse.urlsplit(url)
        service = PORT_SERVICE.get(u.port)
        if service is not None:
            CONFORMANCE.observe(service, method, u.path, r)
    return r

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


# ---------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------

def cmd_build(args):
    src, build, work, cmake = args.src, args.build, args.work, args.cmake
    prefix = os.path.join(work, "prefix")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    subprocess.run([cmake, "--install", build, "--prefix", prefix], check=True,
                   stdout=subprocess.DEVNULL)
    has_events = os.path.exists(os.path.join(prefix, "include", "msvc", "events.h"))
    has_grpc = os.path.exists(os.path.join(prefix, "include", "msvc", "grpc.h"))
    for svc in SERVICES:
        if svc == "payment-service" and not has_events:
            print(f"== {svc} skipped: the installed libmsvc has no events block", flush=True)
            continue
        out = os.path.join(work, "build", svc)
        print(f"== building {svc} against the installed libmsvc", flush=True)
        subprocess.run([cmake, "-S", os.path.join(src, "examples", svc), "-B", out,
                        f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([cmake, "--build", out, "-j", "2"], check=True, stdout=subprocess.DEVNULL)
        binary = os.path.join(out, svc)
        if not os.access(binary, os.X_OK):
            print(f"{svc}: no program {binary}", file=sys.stderr)
            return 1
        if has_grpc and svc in ("order-service", "bff"):
            # Built against an installed libmsvc with gRPC, order-service
            # serves orders.v1.Orders and the bff can call it.
            with open(binary, "rb") as f:
                if b"orders.v1.Orders" not in f.read():
                    print(f"{svc}: built without its gRPC part", file=sys.stderr)
                    return 1
        dest = os.path.join(work, "bin", svc)
        os.makedirs(dest)
        shutil.copy2(binary, dest)
        linked = subprocess.run(["ldd", os.path.join(dest, svc)], capture_output=True,
                                text=True).stdout
        if "libmsvc.so" in linked and prefix not in linked:
            print(f"{svc} links a libmsvc other than the installed one:\n{linked}",
                  file=sys.stderr)
            return 1
    print("built the example services against the installed libmsvc")
    return tutorial(src, work, prefix, args.cc)


def tutorial(src, work, prefix, cc):
    """The service of docs/getting-started.md, assembled from its code
    blocks, must build with pkg-config against the installed libmsvc and
    answer its first route."""
    with open(os.path.join(src, "docs", "getting-started.md"), encoding="utf-8") as f:
        blocks = re.findall(r"```c\n(.*?)```", f.read(), re.S)
    first, auth, call = blocks[0], blocks[1], blocks[2]
    cut = first.index("int main(void)")
    extra = []
    parts = [first[:cut]]
    for b in (auth, call):
        i = b.index("/* in main()")
        parts.append(b[:i])
        extra.append(b[i:].split("\n", 1)[1].strip())
    main = first[cut:].replace("  return msvc_service_run(svc)",
                               "  " + "\n  ".join(extra) + "\n  return msvc_service_run(svc)")
    source = os.path.join(work, "greeter.c")
    with open(source, "w", encoding="utf-8") as f:
        f.write("".join(parts) + main)
    pc_dir = next(d for d, _, files in os.walk(prefix) if "libmsvc.pc" in files)
    libdir = os.path.dirname(pc_dir)
    env = dict(os.environ, PKG_CONFIG_PATH=pc_dir)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libmsvc", "libcjson"], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    binary = os.path.join(work, "greeter")
    print("== building the getting-started service with pkg-config", flush=True)
    subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", binary, source, *flags,
                    f"-Wl,-rpath,{libdir}"], check=True)
    port = msvc_system.free_port()
    run_env = dict(os.environ, MSVC_PORT=str(port), MSVC_REGISTRY="memory://",
                   MSVC_JWT_JWKS_URL="http://user-service/.well-known/jwks.json")
    p = subprocess.Popen([binary], env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = None
        for _ in range(100):
            r = msvc_system.request("GET", f"http://127.0.0.1:{port}/hello/Ada", timeout=1)
            if r.status != 0 or p.poll() is not None:
                break
            time.sleep(0.05)
        ok = r is not None and r.status == 200 and r.json == {"message": "Hello, Ada!"}
        unauth = msvc_system.request("GET", f"http://127.0.0.1:{port}/me").status
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
    if not ok or unauth != 401 or rc != 0:
        print(f"the getting-started service: /hello/Ada {r!r}, /me {unauth}, exit {rc}",
              file=sys.stderr)
        return 1
    print("the getting-started service builds, answers, and stops cleanly")
    return own_keys(binary, prefix, work)


def own_keys(binary, prefix, work):
    """Section 5's keys of one's own: the installed msvc-jwt makes a key
    pair and its JWK Set, the service verifies with the set alone, and a
    token signed with the key opens GET /me."""
    tool = os.path.join(prefix, "bin", "msvc-jwt")
    key = os.path.join(work, "signing-key.pem")
    jwks = os.path.join(work, "jwks.json")
    for path in (key, jwks):
        if os.path.exists(path):
            os.unlink(path)
    kid = subprocess.run([tool, "keygen", "--out", key], capture_output=True, text=True,
                         check=True).stdout.strip()
    with open(jwks, "w", encoding="utf-8") as f:
        subprocess.run([tool, "jwks", key], stdout=f, check=True)
    claims = json.dumps({"sub": "42", "exp": int(time.time()) + 600})
    token = subprocess.run([tool, "sign", "--alg", "ES256", "--key", key, "--kid", kid, claims],
                           capture_output=True, text=True, check=True).stdout.strip()
    port = msvc_system.free_port()
    env = dict(os.environ, MSVC_PORT=str(port), MSVC_REGISTRY="memory://", MSVC_JWT_JWKS_FILE=jwks)
    env.pop("MSVC_JWT_JWKS_URL", None)
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = None
        for _ in range(100):
            r = msvc_system.request("GET", f"http://127.0.0.1:{port}/me", token=token, timeout=1)
            if r.status != 0 or p.poll() is not None:
                break
            time.sleep(0.05)
        bare = msvc_system.request("GET", f"http://127.0.0.1:{port}/me").status
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
    if r is None or r.status != 200 or r.json != {"user_id": "42"} or bare != 401 or rc != 0:
        print(f"keys of one's own (msvc-jwt keygen/jwks/sign): /me {r!r}, without a token {bare}, "
              f"exit {rc}", file=sys.stderr)
        return 1
    print("a key pair from msvc-jwt keygen protects the getting-started service's /me")
    return 0


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------

class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []
        self.scenario = ""

    def __call__(self, cond, what, detail=None):
        if cond:
            self.passed += 1
            print(f"  ok    {what}", flush=True)
        else:
            self.failed.append(f"[{self.scenario}] {what}")
            print(f"  FAIL  {what}" + (f"\n        got: {detail!r}" if detail is not None else ""),
                  flush=True)
        return cond

    def status(self, r, status, what, code=None):
        ok = r.status == status and (code is None or r.error_code() == code)
        want = f"{status}" + (f" {code}" if code else "")
        return self(ok, f"{what} -> {want}", r if not ok else None)

    def error(self, r, status, code, what, message=None):
        """An error answer (docs/reference.md): status, code, a message."""
        ok = self.status(r, status, what, code)
        if ok:
            msg = r.error_message()
            self(isinstance(msg, str) and msg != "", f"{what}: has a message")
            if message is not None:
                self(msg == message, f"{what}: message is {message!r}", msg)
        return ok


def challenge_ok(r, missing=False):
    """The 401's WWW-Authenticate (RFC 6750): a bad token is named
    error="invalid_token"; a request without any bearer credentials may get
    the bare challenge, which RFC 6750 section 3.1 recommends."""
    h = r.header("www-authenticate") or ""
    if not h.startswith("Bearer"):
        return False
    if 'error="invalid_token"' in h:
        return True
    return missing and "error=" not in h


def metric_samples(text, name):
    """[(labels dict, value)] of one metric family in Prometheus text."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.append((labels, float(m.group(4))))
    return out


def metric_sum(url, name, **match):
    r = request("GET", url + "/metrics", timeout=5)
    total = 0.0
    for labels, value in metric_samples(r.body, name):
        if all(re.fullmatch(v, labels.get(k, "")) for k, v in match.items()):
            total += value
    return total


# ---------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------

class Load:
    """A bounded load: `threads` clients in a loop, each request on a fresh
    connection, with a short pause between requests. `targets()` returns the
    URLs to use (one picked in turn), so that a client can follow the
    registry the way a discovering client does."""

    def __init__(self, targets, path, token=None, threads=3, pause=0.01,
                 ok_status=(200,), retry_draining=False):
        self.targets = targets
        self.path = path
        self.token = token
        self.threads = threads
        self.pause = pause
        self.ok_status = ok_status
        self.retry_draining = retry_draining
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.total = 0
        self.failures = []
        self.retries = 0
        self.workers = []

    def _one(self, n):
        urls = self.targets()
        attempts = 3 if self.retry_draining else 1
        r = None
        for a in range(attempts):
            if not urls:
                break
            url = urls[(n + a) % len(urls)]
            r = request("GET", url + self.path, token=self.token, timeout=10)
            # A discovering client retries an idempotent request on another
            # instance when one refuses it because it is going away: a
            # refused connection, or 503 SHUTTING_DOWN from a draining one.
            draining = r.status == 0 and "Refused" in r.body or \
                (r.status == 503 and r.error_code() == "SHUTTING_DOWN")
            if not (self.retry_draining and draining):
                break
            with self.lock:
                self.retries += 1
            urls = self.targets()
        return r

    def _run(self, idx):
        n = idx
        while not self.stop_flag.is_set():
            r = self._one(n)
            n += 1
            with self.lock:
                self.total += 1
                if r is None or r.status not in self.ok_status:
                    self.failures.append(r)
            time.sleep(self.pause)

    def __enter__(self):
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.workers.append(t)
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.workers:
            t.join(30)
        return False

    def summary(self):
        return f"{self.total} requests, {len(self.failures)} failed, {self.retries} retried"


# ---------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------

class Scenario:
    def __init__(self, system, check, promtool):
        self.sys = system
        self.check = check
        self.promtool = promtool
        self.u = []  # user-service processes
        self.orders = None
        self.bff = None
        self.seq = 0

    # ---- helpers --------------------------------------------------------

    def start_all(self):
        s = self.sys
        self.u = [s.start("user-service", "user-service-1"), s.start("user-service", "user-service-2")]
        self.orders = s.start("order-service")
        self.bff = s.start("bff")
        self.check(s.wait_registered("user-service", 2), "both user-service instances registered",
                   s.endpoints("user-service"))

    def new_user(self, base=None, name="Ada Lovelace"):
        self.seq += 1
        email = f"user{self.seq}.{os.getpid()}.{int(time.time() * 1000) % 100000}@example.com"
        password = "correct horse battery"
        r = request("POST", (base or self.u[0].url) + "/users",
                    {"name": name, "email": email, "password": password})
        if r.status != 201:
            raise AssertionError(f"creating a user: {r}")
        r2 = request("POST", self.u[0].url + "/login", {"email": email, "password": password})
        if r2.status != 200:
            raise AssertionError(f"logging in: {r2}")
        return r.json["id"], email, password, r2.json["access_token"]

    def kid(self):
        return request("GET", self.u[0].url + "/.well-known/jwks.json").json["keys"][0]["kid"]

    def claims(self, sub, **over):
        now = int(time.time())
        c = {"iss": "user-service", "aud": "msvc-demo", "sub": str(sub), "iat": now,
             "nbf": now, "exp": now + 600, "jti": f"e2e-{now}-{self.seq}"}
        c.update(over)
        return c

    def token_for(self, sub, **over):
        return sign_es256(self.sys.key_path, self.kid(), self.claims(sub, **over))

    def place_order(self, token, items=None, base=None):
        items = items or [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}]
        return request("POST", (base or self.orders.url) + "/orders", {"items": items}, token=token)

    def user_urls(self):
        return [p.url for p in self.u if p.alive()]

    def registered_urls(self, service):
        return [f"http://{h}:{p}" for h, p in self.sys.endpoints(service)]

    # ---- configuration ----------------------------------------------------

    def configuration(self):
        c = self.check
        cases = [
            ("user-service", {"MSVC_LB": "fastest"}, "MSVC_LB"),
            ("order-service", {"MSVC_PORT": "99999"}, "MSVC_PORT"),
            ("bff", {"MSVC_REGISTRY_TTL_MS": "soon"}, "MSVC_REGISTRY_TTL_MS"),
            ("bff", {"MSVC_LOG_LEVEL": "loud"}, "MSVC_LOG_LEVEL"),
            ("user-service", {"MSVC_REGISTRY": "zookeeper://x"}, "MSVC_REGISTRY"),
            ("user-service", {"USER_SIGNING_KEY": ""}, "USER_SIGNING_KEY"),
            ("user-service", {"USER_SIGNING_KEY": "/nonexistent/key.pem"}, "USER_SIGNING_KEY"),
        ]
        for service, env, var in cases:
            rc, out = bad_start(self.sys, service, env, var)
            lines = [ln for ln in out.splitlines() if ln.strip()]
            c(rc == 2 and any(var in ln for ln in lines),
              f"{service} with a bad {var}: exit 2, naming it", (rc, out[-300:]))

    # ---- the REST contract ------------------------------------------------

    def builtins(self):
        c = self.check
        for p in [*self.u, self.orders, self.bff]:
            r = request("GET", p.url + "/health")
            c(r.status == 200 and r.json == {"status": "ok"}, f"{p.label} /health", r)
            r = request("GET", p.url + "/ready")
            c(r.status == 200 and (r.json or {}).get("status") == "ready", f"{p.label} /ready", r)
            c(bool(r.header("x-request-id")), f"{p.label}: answers carry X-Request-Id")
            r = request("GET", p.url + "/health", headers={"X-Request-Id": "e2e-request-42"})
            c(r.header("x-request-id") == "e2e-request-42", f"{p.label}: echoes X-Request-Id",
              r.header("x-request-id"))
            r = request("GET", p.url + "/no/such/route")
            c.error(r, 404, "NOT_FOUND", f"{p.label}: unknown route")

    def user_service_contract(self):
        c = self.check
        base = self.u[0].url
        email = f"grace.{os.getpid()}.{int(time.time())}@example.com"
        good = {"name": "Grace Hopper", "email": email, "password": "cobol-1959"}
        r = request("POST", base + "/users", good)
        if c.status(r, 201, "POST /users"):
            body = r.json
            c(set(body) >= {"id", "name", "email", "created_at"}, "user has id, name, email, created_at", body)
            c(isinstance(body.get("id"), int), "user id is an integer", body.get("id"))
            c("password" not in r.body and "cobol-1959" not in r.body, "the password is never returned")
            c(bool(RFC3339_UTC.match(str(body.get("created_at")))), "created_at is RFC 3339 UTC",
              body.get("created_at"))
            uid = body["id"]
        else:
            return
        c.error(request("POST", base + "/users", good), 409, "EMAIL_TAKEN", "the same email again")
        c.error(request("POST", self.u[1].url + "/users", good), 409, "EMAIL_TAKEN",
                "the same email on the other instance")
        bad_cases = [
            ({"email": "x1@example.com", "password": "12345678"}, "name"),
            ({"name": "", "email": "x2@example.com", "password": "12345678"}, "name"),
            ({"name": "n" * 101, "email": "x3@example.com", "password": "12345678"}, "name"),
            ({"name": "N", "email": "x4@example.com", "password": "1234567"}, "password"),
            ({"name": "N", "email": "x5@example.com", "password": "p" * 129}, "password"),
            ({"name": "N", "password": "12345678"}, "email"),
            ({"name": "N", "email": 12, "password": "12345678"}, "email"),
        ]
        for body, field in bad_cases:
            r = request("POST", base + "/users", body)
            if c.error(r, 400, "INVALID_ARGUMENT", f"POST /users with a bad {field}"):
                c(field in r.error_message(), f"the message names '{field}'", r.error_message())
        r = request("POST", base + "/users",
                    {"name": "n" * 100, "email": f"long.{email}", "password": "p" * 128})
        c.status(r, 201, "POST /users at the longest name and password")
        c.error(request("POST", base + "/users", "{not json"), 400, "INVALID_ARGUMENT",
                "POST /users with malformed JSON")
        c.error(request("POST", base + "/users", "[1,2]"), 400, "INVALID_ARGUMENT",
                "POST /users with a JSON array")
        c.error(request("POST", base + "/users", good, content_type="text/plain"), 415,
                "UNSUPPORTED_MEDIA_TYPE", "POST /users as text/plain")
        c.error(request("POST", base + "/users", b"x" * (2 * 1024 * 1024)), 413,
                "PAYLOAD_TOO_LARGE", "POST /users with a 2 MiB body")
        r = request("GET", base + "/users", headers={"X-Big": "b" * 20000})
        c.error(r, 431, "HEADERS_TOO_LARGE", "a 20 kB header")
        r = request("DELETE", base + "/users")
        if c.error(r, 405, "METHOD_NOT_ALLOWED", "DELETE /users"):
            c("GET" in (r.header("allow") or "") and "POST" in (r.header("allow") or ""),
              "Allow lists GET and POST", r.header("allow"))

        # Reads need a token: the owner sees the whole record, any other
        # signed-in user only id and name, nobody else anything.
        own = request("POST", base + "/login", {"email": email, "password": "cobol-1959"})
        own_token = (own.json or {}).get("access_token")
        other_id, _, _, other_token = self.new_user(name="Other Reader")
        r = request("GET", f"{self.u[1].url}/users/{uid}", token=own_token)
        c(r.status == 200 and r.json.get("email") == email and r.json.get("id") == uid,
          "GET /users/{id} of oneself on the other instance (shared database)", r)
        r = request("GET", f"{base}/users/{uid}", token=other_token)
        c(r.status == 200 and r.json == {"id": uid, "name": "Grace Hopper"},
          "GET /users/{id} of another user: id and name only", r)
        for what, tok in (("no token", None), ("a malformed token", "not.a.jwt"),
                          ("an expired token", self.token_for(uid, iat=int(time.time()) - 7200,
                                                              nbf=int(time.time()) - 7200,
                                                              exp=int(time.time()) - 3600))):
            for path in (f"/users/{uid}", "/users?limit=200"):
                r = request("GET", base + path, token=tok)
                if c.error(r, 401, "UNAUTHENTICATED", f"GET {path} with {what}"):
                    c(challenge_ok(r, missing=tok is None), f"GET {path} with {what}: the challenge",
                      r.header("www-authenticate"))
                c(email not in r.body, f"GET {path} with {what}: no email in the answer")
        c.error(request("GET", base + "/users/987654321", token=own_token), 404, "USER_NOT_FOUND",
                "GET /users/{unknown}", "The user with ID 987654321 was not found.")
        r = request("GET", base + "/users/abc", token=own_token)
        c(r.status in (400, 404) and r.error_code() in ("INVALID_ARGUMENT", "USER_NOT_FOUND", "NOT_FOUND"),
          "GET /users/abc is refused", r)

        r = request("GET", base + "/users?limit=2&offset=0", token=own_token)
        c(r.status == 200 and isinstance(r.json.get("users"), list) and len(r.json["users"]) <= 2
          and r.json.get("limit") == 2 and r.json.get("offset") == 0, "GET /users?limit=2", r)
        r = request("GET", base + "/users", token=own_token)
        c(r.status == 200 and r.json.get("limit") == 50 and r.json.get("offset") == 0,
          "GET /users defaults to limit 50, offset 0", r)
        c(all("password" not in u for u in (r.json or {}).get("users", [])), "no password in the list")
        for q in ("limit=0", "limit=201", "limit=x", "offset=-1"):
            c.error(request("GET", f"{base}/users?{q}", token=own_token), 400, "INVALID_ARGUMENT",
                    f"GET /users?{q}")
        r = request("GET", base + "/users?limit=200", token=other_token)
        users = (r.json or {}).get("users") or []
        c(r.status == 200 and len(users) >= 2, "GET /users?limit=200 with a token", r)
        c(all(set(u) == {"id", "name"} for u in users) and "@" not in r.body,
          "the list shows id and name only, no email (not even one's own)", users[:3])

        r = request("POST", base + "/login", {"email": email, "password": "cobol-1959"})
        if c.status(r, 200, "POST /login"):
            c(r.json.get("token_type") == "Bearer" and r.json.get("expires_in") == 900,
              "token_type Bearer, expires_in 900", r.json)
            header, claims = jwt_parts(r.json["access_token"])
            jwks = request("GET", base + "/.well-known/jwks.json")
            keys = (jwks.json or {}).get("keys", [])
            c(jwks.status == 200 and len(keys) >= 1, "GET /.well-known/jwks.json", jwks)
            c(all(k.get("kty") == "EC" and k.get("crv") == "P-256" and "d" not in k and
                  {"x", "y", "kid"} <= set(k) for k in keys), "the JWK Set holds public P-256 keys only")
            c(header.get("alg") == "ES256" and header.get("kid") in [k.get("kid") for k in keys],
              "the token is ES256 with the kid of the published key", header)
            c(claims.get("iss") == "user-service" and claims.get("aud") in ("msvc-demo", ["msvc-demo"])
              and claims.get("sub") == str(uid), "claims iss, aud, sub", claims)
            c(all(k in claims for k in ("iat", "nbf", "exp", "jti")) and
              claims["exp"] - claims["iat"] == 900, "claims iat, nbf, exp (+900 s), jti", claims)
            c(abs(claims["iat"] - time.time()) < 60, "iat is now")
        c.error(request("POST", base + "/login", {"email": email, "password": "wrong-password"}),
                401, "INVALID_CREDENTIALS", "POST /login with a wrong password")
        c.error(request("POST", base + "/login", {"email": "nobody@example.com", "password": "whatever1"}),
                401, "INVALID_CREDENTIALS", "POST /login with an unknown email")
        c.error(request("POST", base + "/login", {"email": email}), 400, "INVALID_ARGUMENT",
                "POST /login without a password")

    def brute_force(self):
        """Failed logins are limited per account, known or not, alike, for
        the whole service: 5 per account, shared by the two user-service
        instances (2.5 each) that the gateway alternates between."""
        c = self.check
        g = self.bff.url + "/api"
        uid, email, password, token = self.new_user(name="Grace Hopper")
        unknown = "nobody." + email
        seen = {}
        for who, mail in (("known", email), ("unknown", unknown)):
            answers = []
            for i in range(12):
                answers.append(request("POST", g + "/login", {"email": mail, "password": f"guess-{i:04d}"}))
                if answers[-1].status != 401:
                    break
            seen[who] = answers
            # 2 failures per instance once both count 2 instances; an
            # instance whose discovery still shows only itself allows 5 (the
            # bound of docs/limits.md while instances come and go).
            c(answers[-1].status == 429 and 4 <= len(answers) - 1 <= 10,
              f"{who} account: 4 wrong passwords get 401 (2 per instance), then 429",
              [a.status for a in answers])
        for who, answers in seen.items():
            last = answers[-1]
            c.error(last, 429, "RATE_LIMITED", f"{who} account: the 429 is RATE_LIMITED")
            c(last.header("retry-after") is not None and last.header("ratelimit-remaining") == "0"
              and last.header("ratelimit-limit") in ("2", "5"),
              f"{who} account: Retry-After and RateLimit headers (a share of 2, or 5 alone)", last)
        k, u = seen["known"][-1], seen["unknown"][-1]
        c(k.status == u.status and (k.json or {}).get("error", {}).get("code") ==
          (u.json or {}).get("error", {}).get("code") and
          set(k.headers) == set(u.headers),
          "the 429 does not tell known and unknown accounts apart", (k, u))
        for u in self.u:
            r = request("POST", u.url + "/login", {"email": email, "password": password})
            c.status(r, 429, f"{u.label}: the right password is refused too while the account is locked")

    def order_service_contract(self):
        c = self.check
        uid, _, _, token = self.new_user()
        other_id, _, _, other_token = self.new_user()
        base = self.orders.url
        r = request("POST", base + "/orders", {"items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}]})
        if c.error(r, 401, "UNAUTHENTICATED", "POST /orders without a token"):
            c(challenge_ok(r, missing=True), "WWW-Authenticate: Bearer", r.header("www-authenticate"))
        items = [{"sku": "BOOK-42", "quantity": 2, "unit_price_cents": 1250},
                 {"sku": "PEN-1", "quantity": 3, "unit_price_cents": 199}]
        r = self.place_order(token, items)
        order_id = None
        if c.status(r, 201, "POST /orders"):
            o = r.json
            order_id = o.get("id")
            c(isinstance(order_id, int) and o.get("user_id") == uid and o.get("status") == "created",
              "order has id, the caller's user_id, status created", o)
            c(o.get("total_cents") == 2 * 1250 + 3 * 199, "total_cents is the sum", o.get("total_cents"))
            c(isinstance(o.get("items"), list) and len(o["items"]) == 2 and
              o["items"][0].get("sku") == "BOOK-42", "items are returned", o.get("items"))
            c(bool(RFC3339_UTC.match(str(o.get("created_at")))), "created_at is RFC 3339 UTC")
        bad = [
            ({"items": []}, "items"),
            ({"items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}] * 101}, "items"),
            ({"items": [{"sku": "A", "quantity": 0, "unit_price_cents": 1}]}, "quantity"),
            ({"items": [{"sku": "A", "quantity": 1, "unit_price_cents": -1}]}, "unit_price_cents"),
            ({"items": [{"quantity": 1, "unit_price_cents": 1}]}, "sku"),
            ({}, "items"),
        ]
        for body, field in bad:
            r = request("POST", base + "/orders", body, token=token)
            if c.error(r, 400, "INVALID_ARGUMENT", f"POST /orders with a bad {field}"):
                c(field in r.error_message(), f"the message names '{field}'", r.error_message())
        r = self.place_order(token, [{"sku": "A", "quantity": 1, "unit_price_cents": 0}] * 100)
        c.status(r, 201, "POST /orders with 100 items")
        c.error(request("POST", base + "/orders", "{oops", token=token), 400, "INVALID_ARGUMENT",
                "POST /orders with malformed JSON")
        c.error(request("POST", base + "/orders", {"items": items}, token=token,
                        content_type="text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE",
                "POST /orders as text/plain")
        ghost = self.token_for(987654321)
        c.error(self.place_order(ghost), 422, "USER_NOT_FOUND",
                "POST /orders for a user user-service does not know")
        if order_id is not None:
            r = request("GET", f"{base}/orders/{order_id}", token=token)
            c(r.status == 200 and r.json.get("id") == order_id, "GET /orders/{id} of the caller", r)
            c.error(request("GET", f"{base}/orders/{order_id}", token=other_token), 404,
                    "ORDER_NOT_FOUND", "GET /orders/{id} of another user")
        c.error(request("GET", f"{base}/orders/987654321", token=token), 404, "ORDER_NOT_FOUND",
                "GET /orders/{unknown}")
        r = request("GET", f"{base}/orders?user_id={uid}", token=token)
        c(r.status == 200 and isinstance(r.json.get("orders"), list) and len(r.json["orders"]) == 2
          and all(o.get("user_id") == uid for o in r.json["orders"]), "GET /orders?user_id=me", r)
        c.error(request("GET", f"{base}/orders?user_id={other_id}", token=token), 403,
                "PERMISSION_DENIED", "GET /orders?user_id=someone else")
        c.error(request("DELETE", f"{base}/orders/{order_id}", token=token), 405,
                "METHOD_NOT_ALLOWED", "DELETE /orders/{id}")
        self.idempotency(uid, token, other_token)

    def idempotency(self, uid, token, other_token):
        """POST /orders with an Idempotency-Key: a repeat (even through the
        gateway, even on spacing) returns the first order, other items under
        the key are refused, another user's key space is their own."""
        c = self.check
        base = self.orders.url
        key = f"e2e-{os.getpid()}-{uuid.uuid4()}"
        items = [{"sku": "IDEM-1", "quantity": 2, "unit_price_cents": 300}]
        before = len(request("GET", f"{base}/orders?user_id={uid}", token=token).json.get("orders", []))
        hdr = {"Idempotency-Key": key}
        first = request("POST", base + "/orders", {"items": items}, token=token, headers=hdr)
        c.status(first, 201, "POST /orders with an Idempotency-Key")
        c(first.header("idempotent-replayed") is None, "the first answer is not marked as a replay",
          first.headers)
        first_id = (first.json or {}).get("id")
        again = request("POST", base + "/orders", json.dumps({"items": items}, indent=2),
                        token=token, headers=hdr)
        c(again.status == 201 and again.json == first.json,
          "the same key and items again: the first order, unchanged", (again, first.json))
        c(again.header("idempotent-replayed") == "true", "marked Idempotent-Replayed: true",
          again.headers)
        c(again.header("location") == f"/orders/{first_id}", "Location of the first order",
          again.header("location"))
        gw = request("POST", self.bff.url + "/api/orders", {"items": items}, token=token, headers=hdr)
        c(gw.status == 201 and (gw.json or {}).get("id") == first_id,
          "the same key through the gateway: the first order", gw)
        r = request("POST", base + "/orders", {"items": [{**items[0], "quantity": 3}]},
                    token=token, headers=hdr)
        if c.error(r, 422, "IDEMPOTENCY_KEY_REUSED", "the same key with other items"):
            c("Idempotency-Key" in r.error_message(), "the message names the header", r.error_message())
        r = request("POST", base + "/orders", {"items": items}, token=other_token, headers=hdr)
        c(r.status == 201 and (r.json or {}).get("id") != first_id,
          "another user's key space: the same key makes their own order", r)
        for bad in ("", "has space", "k" * 256):
            c.error(request("POST", base + "/orders", {"items": items}, token=token,
                            headers={"Idempotency-Key": bad}), 400, "INVALID_ARGUMENT",
                    f"Idempotency-Key of {len(bad)} bytes{' with a space' if ' ' in bad else ''}")
        # Several clients retrying one request at the same moment: one order.
        key2 = key + "-race"
        results = []
        lock = threading.Lock()

        def fire():
            r = request("POST", base + "/orders", {"items": items}, token=token,
                        headers={"Idempotency-Key": key2})
            with lock:
                results.append(r)
        threads = [threading.Thread(target=fire) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        ids = {(r.json or {}).get("id") for r in results}
        c(all(r.status == 201 for r in results) and len(ids) == 1,
          "six requests with one key at once: all 201, one order", [(r.status, r.json) for r in results])
        after = request("GET", f"{base}/orders?user_id={uid}", token=token).json.get("orders", [])
        c(len(after) == before + 2, "the caller has exactly two more orders (one per key)",
          (before, len(after)))

    def token_refusals(self):
        c = self.check
        uid, _, _, token = self.new_user()
        other_id, _, _, _ = self.new_user()
        kid = self.kid()
        now = int(time.time())
        forged = {
            "no token": None,
            "a malformed token": "not.a.jwt",
            "an expired token": self.token_for(uid, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
            "a not-yet-valid token": self.token_for(uid, nbf=now + 3600, exp=now + 7200),
            "alg none": unsigned_token(kid, self.claims(uid)),
            "HS256 signed with the public key": sign_hs256(self.sys.public_pem, kid, self.claims(uid)),
            "a wrong issuer": self.token_for(uid, iss="someone-else"),
            "a wrong audience": self.token_for(uid, aud="another-app"),
            "an unknown kid": sign_es256(self.sys.key_path, "no-such-kid", self.claims(uid)),
            "a tampered payload": self._tamper(token, sub=str(other_id)),
        }
        targets = [("order-service GET /orders", f"{self.orders.url}/orders?user_id={uid}"),
                   ("bff web dashboard", f"{self.bff.url}/web/users/{uid}/dashboard"),
                   ("bff mobile dashboard", f"{self.bff.url}/mobile/users/{uid}/dashboard")]
        for what, tok in forged.items():
            for where, url in targets:
                if tok is None:
                    r = request("GET", url)
                else:
                    r = request("GET", url, token=tok)
                if c.error(r, 401, "UNAUTHENTICATED", f"{where} with {what}"):
                    c(challenge_ok(r, missing=tok is None),
                      f"{where} with {what}: WWW-Authenticate Bearer"
                      + ("" if tok is None else ' error="invalid_token"'), r.header("www-authenticate"))
        r = request("GET", f"{self.orders.url}/orders", headers={"Authorization": "Basic dTpw"})
        c.error(r, 401, "UNAUTHENTICATED", "order-service with Basic credentials")
        for where, url in [("bff web", f"{self.bff.url}/web/users/{other_id}/dashboard"),
                           ("bff mobile", f"{self.bff.url}/mobile/users/{other_id}/dashboard"),
                           ("order-service", f"{self.orders.url}/orders?user_id={other_id}")]:
            c.error(request("GET", url, token=token), 403, "PERMISSION_DENIED",
                    f"{where}: another user's id with a valid token")
        r = request("GET", f"{self.orders.url}/orders?user_id={uid}", token=token)
        c.status(r, 200, "and the valid token itself is accepted")
        jwt_ok = metric_sum(self.orders.url, "msvc_jwt_verifications_total", result="ok")
        jwt_bad = metric_sum(self.orders.url, "msvc_jwt_verifications_total", result="(?!ok$).*")
        c(jwt_ok > 0 and jwt_bad > 0, "msvc_jwt_verifications_total counts ok and refused tokens",
          (jwt_ok, jwt_bad))

    @staticmethod
    def _tamper(token, **claims):
        h, p, s = token.split(".")
        payload = json.loads(b64url_decode(p))
        payload.update(claims)
        return h + "." + b64url(json.dumps(payload).encode()) + "." + s

    def bff_contract(self):
        c = self.check
        uid, email, password, token = self.new_user(name="Alan Turing")
        totals = []
        ids = []
        for i in range(4):
            r = self.place_order(token, [{"sku": f"S{i}", "quantity": i + 1, "unit_price_cents": 100}])
            c.status(r, 201, f"order {i + 1} for the dashboards")
            totals.append((i + 1) * 100)
            ids.append(r.json.get("id") if r.json else None)
        r = request("GET", f"{self.bff.url}/web/users/{uid}/dashboard", token=token)
        if c.status(r, 200, "GET /web/users/{id}/dashboard"):
            d = r.json
            c(d.get("user", {}).get("id") == uid and d["user"].get("email") == email and
              "password" not in d["user"], "web: the user", d.get("user"))
            c(isinstance(d.get("orders"), list) and len(d["orders"]) == 4, "web: the 4 orders", d.get("orders"))
            c(d.get("total_spent_cents") == sum(totals), "web: total_spent_cents", d.get("total_spent_cents"))
            c(d.get("degraded") == [], "web: degraded is []", d.get("degraded"))
        r = request("GET", f"{self.bff.url}/mobile/users/{uid}/dashboard", token=token)
        if c.status(r, 200, "GET /mobile/users/{id}/dashboard"):
            d = r.json
            c(d.get("name") == "Alan Turing" and d.get("order_count") == 4, "mobile: name, order_count", d)
            recent = d.get("recent_orders") or []
            c(len(recent) == 3 and all(set(o) >= {"id", "total_cents"} for o in recent),
              "mobile: 3 recent orders with id and total_cents", recent)
            c({o.get("id") for o in recent} == set(ids[1:]), "mobile: the last 3 orders",
              (recent, ids))
            c(d.get("degraded") == [], "mobile: degraded is []", d.get("degraded"))
        c.error(request("GET", f"{self.bff.url}/web/users/987654321/dashboard",
                        token=self.token_for(987654321)), 404, "USER_NOT_FOUND",
                "web dashboard of a user that does not exist")

        # The gateway: prefix stripped, Authorization forwarded, ids added.
        g = self.bff.url + "/api"
        mail2 = "gw." + email
        r = request("POST", g + "/users", {"name": "Via Gateway", "email": mail2, "password": password})
        c(r.status == 201 and r.json.get("email") == mail2, "POST /api/users -> user-service", r)
        gw_uid = (r.json or {}).get("id")
        c(bool(r.header("x-request-id")), "gateway answers carry X-Request-Id")
        r = request("POST", g + "/login", {"email": mail2, "password": password})
        c(r.status == 200 and r.json.get("token_type") == "Bearer", "POST /api/login", r)
        gw_token = (r.json or {}).get("access_token")
        r = request("GET", f"{g}/users/{gw_uid}", headers={"X-Request-Id": "gw-req-7"}, token=gw_token)
        c(r.status == 200 and r.json.get("id") == gw_uid and r.json.get("email") == mail2,
          "GET /api/users/{id} of oneself", r)
        c(r.header("x-request-id") == "gw-req-7", "the gateway keeps the caller's X-Request-Id",
          r.header("x-request-id"))
        r = request("GET", f"{g}/users/{uid}", token=gw_token)
        c(r.status == 200 and set(r.json or {}) == {"id", "name"} and email not in r.body,
          "GET /api/users/{id} of another user: no email", r)
        # Account data needs a token through the gateway too.
        r = request("GET", f"{g}/users?limit=200")
        if c.error(r, 401, "UNAUTHENTICATED", "GET /api/users?limit=200 without a token"):
            c(challenge_ok(r, missing=True), "GET /api/users without a token: the challenge",
              r.header("www-authenticate"))
        c("@" not in r.body, "GET /api/users without a token: no email anywhere", r.body[:200])
        c.error(request("GET", f"{g}/users/{uid}"), 401, "UNAUTHENTICATED",
                "GET /api/users/{id} without a token")
        r = request("GET", f"{g}/users?limit=200", token=gw_token)
        users = (r.json or {}).get("users") or []
        c(r.status == 200 and r.json.get("limit") == 200 and len(users) >= 2,
          "GET /api/users?limit=200 with a token (query kept)", r)
        c(all(set(u) == {"id", "name"} for u in users) and "@" not in r.body,
          "GET /api/users lists id and name only", users[:3])
        r = request("POST", g + "/orders", {"items": [{"sku": "G", "quantity": 1, "unit_price_cents": 5}]},
                    token=gw_token)
        c(r.status == 201 and r.json.get("user_id") == gw_uid, "POST /api/orders forwards Authorization", r)
        gw_order = (r.json or {}).get("id")
        r = request("GET", f"{g}/orders/{gw_order}", token=gw_token)
        c(r.status == 200 and r.json.get("id") == gw_order, "GET /api/orders/{id}", r)
        r = request("GET", f"{g}/orders?user_id={gw_uid}", token=gw_token)
        c(r.status == 200 and len(r.json.get("orders", [])) == 1, "GET /api/orders?user_id=", r)
        c.error(request("GET", f"{g}/orders?user_id={gw_uid}"), 401, "UNAUTHENTICATED",
                "GET /api/orders without a token (order-service's answer, passed through)")
        c.error(request("GET", f"{g}/users/987654321", token=gw_token), 404, "USER_NOT_FOUND",
                "GET /api/users/{unknown} (passed through)")
        # The gateway passes the caller's request id and trace on: the
        # upstream's access log has them (no-cache: the bff's cache asks
        # user-service again rather than answering from what it keeps).
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        r = request("GET", f"{g}/users/{gw_uid}", token=gw_token, headers={
            "Cache-Control": "no-cache",
            "X-Request-Id": "e2e-gateway-trace-1",
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
        c.status(r, 200, "GET /api/users/{id} with a traceparent")
        time.sleep(0.3)  # let the access log line reach the file
        logs = "".join(self.sys.tail(p.log_path, 400) for p in self.u)
        c("e2e-gateway-trace-1" in logs, "user-service logged the caller's X-Request-Id")
        c(trace_id in logs, "user-service logged the caller's trace id (traceparent forwarded)")
        r = request("GET", self.bff.url + "/api/nothing-here")
        c(r.status == 404 and r.error_code() is not None, "GET /api/{unknown service} is 404", r)

    # ---- load spread and metrics ------------------------------------------

    def spread(self):
        c = self.check
        uid, _, _, token = self.new_user()
        before = [metric_sum(p.url, "msvc_http_server_requests_total", route="/users/.*") for p in self.u]
        picks_before = metric_sum(self.bff.url, "msvc_lb_picks_total", service="user-service")
        n = 60
        fails = 0
        for _ in range(n):
            # no-cache: every request reaches an instance (the bff's cache
            # revalidates instead of answering from memory)
            if request("GET", f"{self.bff.url}/api/users/{uid}", token=token,
                       headers={"Cache-Control": "no-cache"}).status != 200:
                fails += 1
        c(fails == 0, f"{n} gateway requests answered 200", fails)
        served = [metric_sum(p.url, "msvc_http_server_requests_total", route="/users/.*") - b
                  for p, b in zip(self.u, before)]
        c(sum(served) >= n and all(s >= n * 0.25 for s in served),
          f"each user-service instance served a fair share ({served[0]:.0f} / {served[1]:.0f})", served)
        bff_metrics = request("GET", self.bff.url + "/metrics").body
        picks = {lab.get("endpoint"): v for lab, v in metric_samples(bff_metrics, "msvc_lb_picks_total")
                 if lab.get("service") == "user-service"}
        want = {f"127.0.0.1:{p.port}" for p in self.u}
        c(want <= set(picks) and all(picks[e] > 0 for e in want),
          "the bff's msvc_lb_picks_total names both endpoints", picks)
        c(sum(picks.values()) - picks_before >= n, "the bff counted a pick per request",
          (sum(picks.values()), picks_before))
        # order-service balances its user checks the same way.
        for _ in range(20):
            self.place_order(token)
        om = request("GET", self.orders.url + "/metrics").body
        opicks = {lab.get("endpoint"): v for lab, v in metric_samples(om, "msvc_lb_picks_total")
                  if lab.get("service") == "user-service"}
        c(want <= set(opicks) and all(opicks[e] > 0 for e in want),
          "order-service's user checks went to both instances", opicks)
        inst = [v for lab, v in metric_samples(om, "msvc_registry_instances")
                if lab.get("service") == "user-service"]
        c(inst == [2.0], "order-service sees 2 user-service instances (msvc_registry_instances)", inst)

    def metrics(self):
        c = self.check
        for p in [*self.u, self.orders, self.bff]:
            r = request("GET", p.url + "/metrics")
            c(r.status == 200 and (r.header("content-type") or "").startswith("text/plain")
              and "version=0.0.4" in (r.header("content-type") or ""),
              f"{p.label} /metrics is Prometheus text 0.0.4", r.header("content-type"))
            names = {m for m in re.findall(r"^# TYPE (\S+)", r.body, re.M)}
            need = {"msvc_http_server_requests_total", "msvc_http_server_request_duration_seconds",
                    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"}
            if p.service != "user-service":
                need |= {"msvc_http_client_requests_total", "msvc_lb_picks_total", "msvc_breaker_state"}
            c(need <= names, f"{p.label} exposes {', '.join(sorted(need))}", sorted(need - names))
            routes = {lab.get("route") for lab, _ in metric_samples(r.body, "msvc_http_server_requests_total")}
            c(not any(re.search(r"/\d+(/|$)", rt or "") for rt in routes),
              f"{p.label}: route labels are patterns, never raw paths", sorted(routes))
            if self.promtool:
                pr = subprocess.run([self.promtool, "check", "metrics"], input=r.body,
                                    capture_output=True, text=True)
                c(pr.returncode == 0, f"{p.label} /metrics passes promtool check metrics",
                  pr.stdout + pr.stderr)

    # ---- degradation -------------------------------------------------------

    def wait_dashboard_ok(self, url, token, timeout=20):
        """Waits until a dashboard is whole again (breakers closed)."""
        deadline = time.monotonic() + timeout
        r = None
        while time.monotonic() < deadline:
            r = request("GET", url, token=token)
            if r.status == 200 and r.json.get("degraded") == []:
                break
            time.sleep(0.2)
        self.check(r is not None and r.status == 200 and r.json.get("degraded") == [],
                   "the dashboard is whole again", r)

    def degradation(self):
        c = self.check
        s = self.sys
        uid, _, _, token = self.new_user()
        self.place_order(token)
        web = f"{self.bff.url}/web/users/{uid}/dashboard"
        mobile = f"{self.bff.url}/mobile/users/{uid}/dashboard"

        print("  -- order-service frozen (SIGSTOP): its calls time out")
        os.kill(self.orders.pid, signal.SIGSTOP)
        try:
            r = request("GET", web, token=token, timeout=15)
        finally:
            os.kill(self.orders.pid, signal.SIGCONT)
        if c.status(r, 200, "web dashboard while order-service does not answer"):
            c(r.json.get("degraded") == ["order-service"] and r.json.get("orders") is None,
              "web: degraded names order-service, orders null", r.json)
        c(r.elapsed < 6, f"web: answered within the bff's deadline ({r.elapsed:.2f}s)")
        self.wait_dashboard_ok(web, token)

        print("  -- both user-service instances frozen (SIGSTOP)")
        for p in self.u:
            os.kill(p.pid, signal.SIGSTOP)
        try:
            r = request("GET", web, token=token, timeout=15)
        finally:
            for p in self.u:
                os.kill(p.pid, signal.SIGCONT)
        c.error(r, 504, "UPSTREAM_TIMEOUT", "web dashboard while user-service does not answer")
        c(r.elapsed < 6, f"web: 504 within the bff's deadline ({r.elapsed:.2f}s)")
        self.wait_dashboard_ok(web, token)

        print("  -- order-service killed (SIGKILL)")
        s.kill(self.orders)
        for url, what in ((web, "web"), (mobile, "mobile")):
            r = request("GET", url, token=token, timeout=15)
            if c.status(r, 200, f"{what} dashboard without order-service"):
                c(r.json.get("degraded") == ["order-service"], f"{what}: degraded names order-service", r.json)
                c(r.elapsed < 5, f"{what}: answered in {r.elapsed:.2f}s (< 5 s)")
            if what == "web" and r.json:
                # The bff's cache may stand in with the last good orders
                # (stale-if-error); degraded still names order-service.
                c((r.json.get("orders") is None or len(r.json["orders"]) == 1)
                  and r.json.get("user", {}).get("id") == uid,
                  "web: orders null or the last good ones, the user still there", r.json)
        r = request("GET", f"{self.bff.url}/api/orders?user_id={uid}", token=token, timeout=15)
        c.error(r, 503, "UPSTREAM_UNAVAILABLE", "gateway to a dead order-service")
        self.orders = s.start("order-service")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = request("GET", web, token=token)
            if r.status == 200 and r.json.get("degraded") == []:
                break
            time.sleep(0.2)
        c(r.status == 200 and r.json.get("degraded") == [] and len(r.json.get("orders") or []) == 1,
          "back to normal once order-service is back", r)

        print("  -- one user-service instance killed under load")
        with Load(lambda: [self.bff.url], f"/web/users/{uid}/dashboard", token=token) as load:
            time.sleep(1.0)
            victim = self.u.pop(0)
            s.kill(victim)
            time.sleep(3.0)
        c(load.total > 20 and not load.failures, f"bff under load, one instance killed: {load.summary()}",
          load.failures[:3])
        with Load(lambda: [self.bff.url], f"/api/users/{uid}", token=token) as load:
            time.sleep(1.5)
        c(load.total > 10 and not load.failures, f"the gateway meanwhile: {load.summary()}", load.failures[:3])

        print("  -- both user-service instances down")
        s.kill(self.u.pop(0))
        for url, what in ((web, "web"), (mobile, "mobile")):
            r = request("GET", url, token=token, timeout=15)
            if c.error(r, 503, "UPSTREAM_UNAVAILABLE", f"{what} dashboard without user-service"):
                c(r.header("retry-after") is not None, f"{what}: Retry-After", r.headers)
            c(r.elapsed < 2.0, f"{what}: 503 fast ({r.elapsed:.2f}s < 2 s)")
        r = self.place_order(token)
        if c.error(r, 503, "UPSTREAM_UNAVAILABLE", "POST /orders without user-service"):
            c(r.header("retry-after") is not None, "POST /orders: Retry-After")
        c(r.elapsed < 5.0, f"POST /orders: fails in {r.elapsed:.2f}s (< 5 s)")
        self.u = [s.start("user-service", "user-service-3"), s.start("user-service", "user-service-4")]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = request("GET", web, token=token)
            if r.status == 200:
                break
            time.sleep(0.2)
        c(r.status == 200, "the dashboards recover when user-service is back", r)

    # ---- graceful restarts ------------------------------------------------

    def rolling_restart(self, service, old, label):
        """Start a new instance, then SIGTERM the old one: the callers'
        requests never fail. Returns the new instance."""
        s = self.sys
        new = s.start(service, label)
        t0 = time.monotonic()
        rc = s.stop(old)
        took = time.monotonic() - t0
        self.check(rc == 0, f"{old.label} exited 0 after SIGTERM (in {took:.2f}s)", rc)
        return new

    def graceful_restarts(self):
        c = self.check
        s = self.sys
        # Start from a steady state: instances killed by earlier scenarios
        # stay registered until their TTL runs out.
        ttl_s = s.ttl_ms / 1000.0
        for service, n in (("user-service", len(self.u)), ("order-service", 1), ("bff", 1)):
            c(s.wait_registered(service, n, timeout=2 * ttl_s + 5),
              f"steady state: {n} {service} instance(s) registered", s.endpoints(service))
        uid, _, _, token = self.new_user()
        self.place_order(token)
        dash = f"/web/users/{uid}/dashboard"

        for i in range(len(self.u)):
            with Load(lambda: [self.bff.url], dash, token=token) as load:
                time.sleep(0.8)
                self.u[i] = self.rolling_restart("user-service", self.u[i], f"user-service-r{i}")
                time.sleep(0.8)
            c(load.total > 10 and not load.failures,
              f"restart of a user-service instance under load: {load.summary()}", load.failures[:3])

        with Load(lambda: [self.bff.url], dash, token=token) as load:
            time.sleep(0.8)
            self.orders = self.rolling_restart("order-service", self.orders, "order-service-r")
            time.sleep(0.8)
        c(load.total > 10 and not load.failures,
          f"restart of order-service under load: {load.summary()}", load.failures[:3])

        # Callers of the bff follow the registry, as services calling each
        # other do.
        with Load(lambda: self.registered_urls("bff"), dash, token=token, retry_draining=True) as load:
            time.sleep(0.8)
            self.bff = self.rolling_restart("bff", self.bff, "bff-r")
            time.sleep(0.8)
        c(load.total > 10 and not load.failures,
          f"restart of the bff under load (clients following the registry): {load.summary()}",
          load.failures[:3])

        # A plain SIGTERM (no replacement): in-flight requests finish, the
        # instance leaves the registry first, and exits 0.
        extra = s.start("user-service", "user-service-extra")
        c(s.wait_registered("user-service", 3), "a third user-service instance registered")
        rc = s.stop(extra)
        c(rc == 0, "SIGTERM: exit status 0", rc)
        c(s.wait_registered("user-service", 2, timeout=2), "SIGTERM: deregistered at once",
          s.endpoints("user-service"))


def bad_start(system, service, env, what):
    """Starts a service with a bad environment: it must exit 2 at once with
    one line naming the variable."""
    from msvc_system import free_port
    e = system.service_env(service, free_port())
    e.update(env)
    try:
        r = subprocess.run([system.program(service)], env=e, capture_output=True, text=True,
                           timeout=10)
    except subprocess.TimeoutExpired:
        return None, f"{what}: still running after 10 s"
    return r.returncode, r.stderr + r.stdout


SCENARIOS = ("configuration", "builtins", "user_service_contract", "brute_force", "order_service_contract",
             "token_refusals",
             "bff_contract", "spread", "metrics", "degradation", "graceful_restarts")


def cmd_run(args):
    global CONFORMANCE
    check = Checks()
    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    try:
        from openapi_check import Conformance
        CONFORMANCE = Conformance(args.src, SERVICES)
    except ImportError as e:
        print(f"answers are not checked against openapi.yaml: {e}")
    system = System(args.bin_dir, registry=args.registry, ttl_ms=10000)
    system.on_start = lambda proc: PORT_SERVICE.__setitem__(proc.port, proc.service)
    print(f"registry {system.registry_uri}; work directory {system.tmp}", flush=True)
    keep = args.keep_logs
    try:
        sc = Scenario(system, check, args.promtool)
        check.scenario = "start"
        sc.start_all()
        for name in SCENARIOS:
            if name not in only:
                continue
            check.scenario = name
            print(f"\n== {name} ({args.registry} registry)", flush=True)
            try:
                getattr(sc, name)()
            except Exception:  # a crashed scenario is a failure, and the rest still runs
                check(False, f"{name} ran to the end", traceback.format_exc())
            if CONFORMANCE is not None:
                seen, errors = CONFORMANCE.take()
                check(not errors, f"{seen} answers match the services' openapi.yaml",
                      errors[:8])
    except Exception:
        check(False, "the system started", traceback.format_exc())
    finally:
        for p in system.procs:
            if not p.alive():
                check(False, f"{p.label} still running at the end", p.popen.returncode)
        system.close(keep_logs=True)
        reports = system.sanitizer_reports()
        check.scenario = "sanitizers"
        check(not reports, "no sanitizer report in any service's log", reports[:2])
        if check.failed:
            keep = True
        kept = system.close(keep_logs=keep)
        if kept:
            print(f"logs kept in {kept}/logs")
    print(f"\n{check.passed} checks passed, {len(check.failed)} failed")
    for f in check.failed:
        print(f"  FAILED {f}")
    return 1 if check.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("src")
    b.add_argument("build")
    b.add_argument("work")
    b.add_argument("cmake")
    b.add_argument("cc", nargs="?", default=os.environ.get("CC", "cc"))
    r = sub.add_parser("run")
    r.add_argument("--bin-dir", required=True)
    r.add_argument("--registry", choices=("local", "etcd", "dns"), default="local")
    r.add_argument("--promtool", default=shutil.which("promtool"))
    r.add_argument("--only", default="")
    r.add_argument("--keep-logs", action="store_true")
    r.add_argument("--src", default=os.path.normpath(os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "..")), help="the source tree (for openapi.yaml)")
    args = ap.parse_args()
    return cmd_build(args) if args.cmd == "build" else cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
