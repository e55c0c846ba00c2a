"""Runs the example services as real processes on 127.0.0.1, for the tests.

The pieces: HTTP requests (http.client, one connection per request unless
asked otherwise), free ports, a private registry (a local:// directory, an
etcd started here, or DNS records served by a dnsmasq started here, which
this harness keeps as a platform would: an instance's SRV record appears once
it is ready and goes before it is stopped), the services started with MSVC_PORT set to a port chosen
here and waited for through /ready, stopped by PID, and ES256 / HS256 / none
tokens made with openssl and the standard library.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

SERVICES = ("user-service", "order-service", "payment-service", "bff")


class Resp:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    def error_code(self):
        try:
            return self.json["error"]["code"]
        except (TypeError, KeyError):
            return None

    def error_message(self):
        try:
            return self.json["error"]["message"]
        except (TypeError, KeyError):
            return None

    def __repr__(self):
        return f"{self.status} {self.body[:300]!r}"


def request(method, url, body=None, headers=None, token=None, timeout=10.0,
            content_type="application/json"):
    """One request on a fresh connection. Returns Resp; status 0 with the
    exception text as body when no answer came."""
    u = urllib.parse.urlsplit(url)
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    if body is not None and content_type and "Content-Type" not in hdrs:
        hdrs["Content-Type"] = content_type
    target = u.path + ("?" + u.query if u.query else "")
    start = time.monotonic()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        headers = {k.lower(): v for k, v in r.getheaders()}
        return Resp(r.status, headers, data.decode("utf-8", "replace"), time.monotonic() - start)
    except (OSError, http.client.HTTPException) as e:
        return Resp(0, {}, f"{type(e).__name__}: {e}", time.monotonic() - start)
    finally:
        conn.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token):
    h, p, _ = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p))


def _der_to_raw(der):
    """ECDSA signature: DER SEQUENCE { INTEGER r, INTEGER s } -> r || s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\x00")
        out += v.rjust(32, b"\x00")
        i += 2 + n
    return out


def sign_es256(key_pem_path, kid, claims, header_extra=None):
    header = {"alg": "ES256", "typ": "JWT", "kid": kid}
    header.update(header_extra or {})
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode()))
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_pem_path],
                         input=signing_input.encode(), capture_output=True, check=True).stdout
    return signing_input + "." + b64url(_der_to_raw(der))


def sign_hs256(secret, kid, claims):
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode()))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def unsigned_token(kid, claims):
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode()) + "."


def make_signing_key(path):
    ec = subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout"],
                        capture_output=True, check=True).stdout
    subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-out", path],
                   input=ec, check=True)
    os.chmod(path, 0o600)
    pub = subprocess.run(["openssl", "pkey", "-in", path, "-pubout"],
                         capture_output=True, check=True).stdout
    return pub


class Proc:
    def __init__(self, label, service, port, popen, log_path, env):
        self.label = label
        self.service = service
        self.port = port
        self.popen = popen
        self.log_path = log_path
        self.env = env

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None


DNS_DOMAIN = "e2e.test"


def free_dual_port():
    """A port free for both TCP and UDP on 127.0.0.1 (a DNS server needs
    both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no port free for both TCP and UDP")


class Dnsmasq:
    """The DNS records of the services, served by a dnsmasq on 127.0.0.1:
    one SRV record `_http._tcp.<service>.<domain>` per ready instance, its
    target an A record for 127.0.0.1. dnsmasq reads SRV records only when it
    starts, so a change restarts it on the same port; the services keep
    their last answers over that gap, as they would over a resolver hiccup."""

    def __init__(self, workdir, domain, log_path, ttl_s=1):
        self.bin = (shutil.which("dnsmasq") or
                    next((p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq")
                          if os.access(p, os.X_OK)), None))
        if self.bin is None:
            raise RuntimeError("dnsmasq is not installed (Debian: dnsmasq-base)")
        self.dir = workdir
        self.domain = domain
        self.log_path = log_path
        self.ttl_s = ttl_s
        self.records = {}  # label -> (service, port)
        self.proc = None
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        self.port = free_dual_port()
        self._restart()

    def _conf(self):
        lines = [f"port={self.port}", "listen-address=127.0.0.1", "bind-interfaces",
                 "no-resolv", "no-hosts", f"addn-hosts={self.dir}/hosts",
                 f"local=/{self.domain}/", f"local-ttl={self.ttl_s}",
                 f"pid-file={self.dir}/pid", f"log-facility={self.log_path}"]
        if os.geteuid() == 0:
            lines.append("user=root")
        hosts = []
        for label, (service, port) in sorted(self.records.items()):
            target = f"{label}.{self.domain}"
            lines.append(f"srv-host=_http._tcp.{service}.{self.domain},{target},{port},0,1")
            hosts.append(f"127.0.0.1 {target}")
        with open(os.path.join(self.dir, "hosts"), "w", encoding="utf-8") as f:
            f.write("\n".join(hosts) + "\n")
        with open(os.path.join(self.dir, "conf"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def _stop(self):
        if self.proc is not None:
            System._terminate(self.proc, 5)
            self.proc = None

    def _restart(self):
        self._stop()
        self._conf()
        for _ in range(100):
            self.proc = subprocess.Popen(
                [self.bin, f"--conf-file={self.dir}/conf", "--keep-in-foreground"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)  # its TCP children go with it
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return
                except OSError:
                    time.sleep(0.02)
            # The port was still held by the previous process: try again.
            self._stop()
            time.sleep(0.05)
        raise RuntimeError(f"dnsmasq did not start on port {self.port}")

    def publish(self, label, service, port):
        label = label.replace("_", "-")
        self.records[label] = (service, port)
        self._restart()

    def withdraw(self, label):
        if self.records.pop(label.replace("_", "-"), None) is not None:
            self._restart()

    def endpoints(self, service):
        return sorted(("127.0.0.1", port) for s, port in self.records.values() if s == service)

    def close(self):
        self._stop()


class System:
    """The example system: a registry and any number of service processes."""

    def __init__(self, bin_dir, registry="local", ttl_ms=3000, log=print):
        self.bin_dir = bin_dir
        self.kind = registry
        self.ttl_ms = ttl_ms
        self.log = log
        self.tmp = tempfile.mkdtemp(prefix="msvc-e2e-")
        self.procs = []
        self.on_start = None  # called with each Proc as it is started
        self.etcd = None
        self.etcd_port = None
        self.dns = None
        os.makedirs(os.path.join(self.tmp, "logs"))
        self.key_path = os.path.join(self.tmp, "signing-key.pem")
        self.public_pem = make_signing_key(self.key_path)
        self.user_db = os.path.join(self.tmp, "users.db")
        self.order_db = os.path.join(self.tmp, "orders.db")
        if registry == "etcd":
            self._start_etcd()
            self.registry_uri = f"etcd://127.0.0.1:{self.etcd_port}"
        elif registry == "dns":
            self.dns = Dnsmasq(os.path.join(self.tmp, "dns"), DNS_DOMAIN,
                               os.path.join(self.tmp, "logs", "dnsmasq.log"))
            self.registry_uri = (f"dns://?domain={DNS_DOMAIN}"
                                 f"&server=127.0.0.1:{self.dns.port}")
        else:
            # Private, as the local backend insists (whatever the umask).
            os.makedirs(os.path.join(self.tmp, "registry"), mode=0o700)
            self.registry_uri = "local://" + os.path.join(self.tmp, "registry")

    # ---- registry -------------------------------------------------------

    def _start_etcd(self):
        etcd = shutil.which("etcd")
        if etcd is None:
            raise RuntimeError("etcd is not installed (Debian: etcd-server)")
        for _ in range(3):
            client, peer = free_port(), free_port()
            data = os.path.join(self.tmp, "etcd")
            log = open(os.path.join(self.tmp, "logs", "etcd.log"), "ab")
            p = subprocess.Popen([
                etcd, "--name", "e2e", "--data-dir", data,
                "--listen-client-urls", f"http://127.0.0.1:{client}",
                "--advertise-client-urls", f"http://127.0.0.1:{client}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", f"e2e=http://127.0.0.1:{peer}",
                "--initial-cluster-state", "new"], stdout=log, stderr=log)
            log.close()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and p.poll() is None:
                r = request("GET", f"http://127.0.0.1:{client}/health", timeout=1)
                if r.status == 200 and '"true"' in r.body:
                    self.etcd, self.etcd_port = p, client
                    return
                time.sleep(0.1)
            p.kill()
            p.wait()
            shutil.rmtree(data, ignore_errors=True)
        raise RuntimeError("etcd did not start")

    def endpoints(self, service):
        """(host, port) of the registered instances of a service, as the
        registry has them now."""
        out = []
        if self.kind == "dns":
            return self.dns.endpoints(service)
        if self.kind == "etcd":
            prefix = f"/msvc/services/{service}/".encode()
            end = prefix[:-1] + b"0"
            r = request("POST", f"http://127.0.0.1:{self.etcd_port}/v3/kv/range",
                        {"key": base64.b64encode(prefix).decode(),
                         "range_end": base64.b64encode(end).decode()}, timeout=2)
            for kv in (r.json or {}).get("kvs", []):
                inst = json.loads(base64.b64decode(kv["value"]))
                out.append((inst["address"], int(inst["port"])))
            return sorted(out)
        d = os.path.join(self.tmp, "registry", service)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                with open(os.path.join(d, name), encoding="utf-8") as f:
                    inst = json.load(f)
            except (OSError, ValueError):
                continue
            out.append((inst["address"], int(inst["port"])))
        return sorted(out)

    # ---- services -------------------------------------------------------

    def program(self, service):
        for p in (os.path.join(self.bin_dir, service, service), os.path.join(self.bin_dir, service)):
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
        raise RuntimeError(f"no {service} program under {self.bin_dir}")

    def service_env(self, service, port):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MSVC_")}
        env.update({
            "MSVC_REGISTRY": self.registry_uri,
            "MSVC_HOST": "127.0.0.1",
            "MSVC_PORT": str(port),
            "MSVC_REGISTRY_TTL_MS": str(self.ttl_ms),
            "MSVC_JWT_ISSUER": "user-service",
            "MSVC_JWT_AUDIENCE": "msvc-demo",
            "MSVC_LOG_LEVEL": "info",
        })
        if service == "user-service":
            env.update({"USER_DB": self.user_db, "USER_SIGNING_KEY": self.key_path})
        else:
            env["MSVC_JWT_JWKS_URL"] = "http://user-service/.well-known/jwks.json"
        if service == "order-service":
            env["ORDER_DB"] = self.order_db
        if service == "bff":
            # The load of the scenarios is sent as one user: no per-user limit.
            env["BFF_USER_RATE"] = "100000"
        if service == "payment-service":
            env["PAYMENT_DB"] = os.path.join(self.tmp, "payments.db")
        return env

    def start(self, service, label=None, extra_env=None, wait=True, timeout=20):
        label = label or service
        for attempt in range(3):
            port = free_port()
            env = self.service_env(service, port)
            env.update(extra_env or {})
            log_path = os.path.join(self.tmp, "logs", f"{label}.log")
            with open(log_path, "ab") as log:
                p = subprocess.Popen([self.program(service)], env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
            proc = Proc(label, service, port, p, log_path, env)
            if self.on_start is not None:
                self.on_start(proc)
            if not wait:
                self.procs.append(proc)
                return proc
            if self.wait_ready(proc, timeout):
                self.procs.append(proc)
                if self.dns is not None:
                    self.dns.publish(proc.label, service, port)
                self.log(f"   started {label} (pid {p.pid}) on port {port}")
                return proc
            self._terminate(p)
            self.log(f"   {label} did not become ready on port {port} (attempt {attempt + 1})")
        raise RuntimeError(f"{label} did not start; its log:\n{self.tail(log_path)}")

    def wait_ready(self, proc, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                return False
            if request("GET", proc.url + "/ready", timeout=1).status == 200:
                return True
            time.sleep(0.05)
        return False

    def wait_registered(self, service, count, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.endpoints(service)) == count:
                return True
            time.sleep(0.05)
        return False

    @staticmethod
    def _terminate(p, timeout=15):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None

    def stop(self, proc, timeout=15):
        """SIGTERM, then wait; the exit status, or None when it had to be
        killed."""
        if self.dns is not None:
            self.dns.withdraw(proc.label)
        rc = self._terminate(proc.popen, timeout)
        if proc in self.procs:
            self.procs.remove(proc)
        return rc

    def kill(self, proc):
        proc.popen.kill()
        proc.popen.wait()
        if self.dns is not None:
            self.dns.withdraw(proc.label)
        if proc in self.procs:
            self.procs.remove(proc)

    @staticmethod
    def tail(path, lines=30):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def close(self, keep_logs=False):
        for proc in reversed(list(self.procs)):
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(list(self.procs)):
            self._terminate(proc.popen)
        self.procs = []
        if self.etcd is not None:
            self._terminate(self.etcd)
            self.etcd = None
        if self.dns is not None:
            self.dns.close()
            self.dns = None
        if keep_logs:
            return self.tmp
        shutil.rmtree(self.tmp, ignore_errors=True)
        return None

    def sanitizer_reports(self):
        """Log files with an AddressSanitizer, LeakSanitizer or UBSan report
        (for services built with -DLIBMSVC_SANITIZE=ON)."""
        found = []
        logs = os.path.join(self.tmp, "logs")
        for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
            with open(os.path.join(logs, name), encoding="utf-8", errors="replace") as f:
                text = f.read()
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                i = text.find(marker)
                if i >= 0:
                    found.append(f"{name}: {text[max(0, i - 200):i + 1500]}")
                    break
        return found
