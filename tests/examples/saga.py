#!/usr/bin/env python3
"""End-to-end tests of the order saga on a real NATS JetStream broker.

  saga.py SCENARIO --bin-dir DIR [--nats PATH] [--keep-logs]

Scenarios (each starts its own nats-server, with -js -sd <tmpdir>, and its
own services on free ports, so that several can run at once):

  both_ways     a small order ends confirmed, a big one cancelled with
                reason amount_limit; payment-service shows the decision to
                the order's user only; the bff's dashboards show the status
  broker_kill   nats-server is killed (SIGKILL) in the middle of a batch of
                order creations and started again: every order ends
                confirmed or cancelled as its total says, with one payment
                and one event each, and no service restarts
  payment_kill  one of two payment-service instances is killed mid-batch:
                the other one takes over its unacknowledged events

Exit status 0 when every check passed.
"""
import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from msvc_system import System, free_port, request  # noqa: E402

SMALL = [{"sku": "BOOK-42", "quantity": 2, "unit_price_cents": 1250}]     # 2500
BIG = [{"sku": "PIANO-1", "quantity": 1, "unit_price_cents": 150000}]     # 150000


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def __call__(self, cond, what, detail=None):
        if cond:
            self.passed += 1
            print(f"   ok   {what}", flush=True)
        else:
            self.failed.append(what)
            print(f"   FAIL {what}" + (f": {detail!r}"[:600] if detail is not None else ""),
                  flush=True)
        return cond


class Nats:
    """A private nats-server with JetStream, stopped by PID."""

    def __init__(self, binary, tmp):
        self.binary = binary
        self.store = os.path.join(tmp, "nats")
        self.log = os.path.join(tmp, "logs", "nats-server.log")
        self.port = None
        self.proc = None

    def start(self, timeout=15):
        for _ in range(3):
            port = self.port or free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen([self.binary, "-js", "-sd", self.store,
                                              "-a", "127.0.0.1", "-p", str(port)],
                                             stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        self.port = port
                        return
                except OSError:
                    time.sleep(0.05)
            self.stop()
            if self.port is not None:
                break  # a restart must keep its port
        raise RuntimeError("nats-server did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def uri(self):
        return f"nats://127.0.0.1:{self.port}"


class Saga:
    def __init__(self, bin_dir, nats_bin, check):
        self.check = check
        self.system = System(bin_dir, registry="local", ttl_ms=10000)
        self.nats = Nats(nats_bin, self.system.tmp)
        self.payment_db = os.path.join(self.system.tmp, "payments.db")
        print(f"work directory {self.system.tmp}", flush=True)

    def start(self, payments=1, payment_env=None):
        self.nats.start()
        print(f"   nats-server (pid {self.nats.proc.pid}) on {self.nats.uri}", flush=True)
        ev = {"MSVC_EVENTS": self.nats.uri}
        s = self.system
        self.user = s.start("user-service")
        self.order = s.start("order-service", extra_env=ev)
        self.payments = []
        for i in range(payments):
            env = dict(ev, PAYMENT_DB=self.payment_db, **(payment_env or {}))
            self.payments.append(s.start("payment-service", label=f"payment-service-{i + 1}",
                                         extra_env=env))
        self.bff = s.start("bff")
        self.pids = {p.label: p.pid for p in s.procs}

    def close(self, keep):
        self.nats.stop()
        self.system.close(keep_logs=keep)

    # ---- helpers --------------------------------------------------------

    def new_user(self, tag):
        email = f"{tag}.{os.getpid()}.{time.monotonic_ns()}@example.com"
        r = request("POST", self.user.url + "/users",
                    {"name": "Grace Hopper", "email": email, "password": "correct horse battery"})
        assert r.status == 201, r
        uid = r.json["id"]
        r = request("POST", self.user.url + "/login",
                    {"email": email, "password": "correct horse battery"})
        assert r.status == 200, r
        return uid, r.json["access_token"]

    def place(self, token, items):
        return request("POST", self.order.url + "/orders", {"items": items}, token=token,
                       timeout=15)

    def wait_decided(self, token, order_id, timeout=20):
        deadline = time.monotonic() + timeout
        doc = None
        while time.monotonic() < deadline:
            r = request("GET", f"{self.order.url}/orders/{order_id}", token=token)
            doc = r.json
            if r.status == 200 and doc.get("status") in ("confirmed", "cancelled"):
                return doc
            time.sleep(0.1)
        return doc

    def db(self, path, sql):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def services_alive(self):
        c = self.check
        for p in self.system.procs:
            c(p.alive() and self.pids.get(p.label) == p.pid,
              f"{p.label} kept running (pid {p.pid}, never restarted)", p.popen.returncode)

    # ---- scenarios ------------------------------------------------------

    def both_ways(self):
        c = self.check
        self.start()
        uid, token = self.new_user("saga")
        r = self.place(token, SMALL)
        c(r.status == 201 and r.json.get("status") == "pending",
          "a new order starts pending", r)
        small = r.json["id"]
        r = self.place(token, BIG)
        c(r.status == 201 and r.json.get("status") == "pending", "a big order starts pending", r)
        big = r.json["id"]
        start = time.monotonic()
        doc = self.wait_decided(token, small)
        c(doc and doc.get("status") == "confirmed" and "reason" not in doc,
          f"the small order is confirmed ({time.monotonic() - start:.2f} s)", doc)
        doc = self.wait_decided(token, big)
        c(doc and doc.get("status") == "cancelled" and doc.get("reason") == "amount_limit",
          "the big order is cancelled with reason amount_limit", doc)
        pay = self.payments[0].url + "/payments"
        r = request("GET", f"{pay}?order_id={big}", token=token)
        c(r.status == 200 and r.json.get("payments") and
          r.json["payments"][0].get("status") == "declined" and
          r.json["payments"][0].get("reason") == "amount_limit",
          "payment-service shows the decline to the order's user", r)
        r = request("GET", f"{pay}?order_id={small}", token=token)
        c(r.status == 200 and r.json["payments"][0].get("status") == "authorized" and
          r.json["payments"][0].get("reason") is None, "and the authorisation", r)
        _, other = self.new_user("other")
        r = request("GET", f"{pay}?order_id={big}", token=other)
        c(r.status == 200 and r.json == {"payments": []}, "another user sees no payment", r)
        r = request("GET", f"{pay}?order_id=abc", token=token)
        c(r.status == 400, "a bad order_id is refused with 400", r)
        r = request("GET", f"{pay}?order_id={big}")
        c(r.status == 401, "no token: 401", r)
        r = request("GET", f"{self.bff.url}/web/users/{uid}/dashboard", token=token)
        statuses = sorted(o.get("status") for o in (r.json or {}).get("orders") or [])
        c(r.status == 200 and statuses == ["cancelled", "confirmed"],
          "the web dashboard shows both statuses", r)
        r = request("GET", f"{self.bff.url}/mobile/users/{uid}/dashboard", token=token)
        statuses = sorted(o.get("status") for o in (r.json or {}).get("recent_orders") or [])
        c(r.status == 200 and statuses == ["cancelled", "confirmed"],
          "the mobile dashboard shows both statuses", r)
        # The trace of the order request reaches payment-service: its
        # decision event carries the same traceparent trace id.
        rows = self.db(self.payment_db, "SELECT headers FROM outbox")
        c(len(rows) == 2 and all(h and "traceparent" in h for (h,) in rows),
          "the payment events carry the order request's traceparent", rows)
        r = request("GET", self.order.url + "/ready")
        c(r.status == 200, "order-service is ready with the broker up", r)
        self.services_alive()

    def _create_many(self, token, n, threads, on_progress=None):
        ids, errors = [], []
        lock = threading.Lock()
        counter = iter(range(n))

        def worker():
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                items = BIG if i % 4 == 3 else SMALL
                r = self.place(token, items)
                with lock:
                    if r.status == 201:
                        ids.append((r.json["id"], r.json["total_cents"]))
                    else:
                        errors.append(r)
                    done = len(ids) + len(errors)
                if on_progress is not None:
                    on_progress(done)

        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return ids, errors

    def _all_decided(self, ids, timeout):
        deadline = time.monotonic() + timeout
        rows = {}
        while time.monotonic() < deadline:
            rows = dict((i, (s, r)) for i, s, r in
                        self.db(self.system.order_db, "SELECT id, status, reason FROM orders"))
            if all(rows.get(i, ("",))[0] in ("confirmed", "cancelled") for i, _ in ids):
                break
            time.sleep(0.25)
        return rows

    def _verify_batch(self, ids, rows, what):
        c = self.check
        wrong = [(i, t, rows.get(i)) for i, t in ids
                 if rows.get(i) != (("cancelled", "amount_limit") if t > 100000
                                    else ("confirmed", None))]
        c(not wrong, f"{what}: all {len(ids)} orders ended confirmed or cancelled as their "
          f"totals say", wrong[:5])
        per_order = self.db(self.payment_db,
                            "SELECT count(*), count(DISTINCT order_id) FROM payments")[0]
        c(per_order == (len(ids), len(ids)), f"{what}: one payment per order", per_order)
        # A row whose relay died between the broker's ack and the mark is
        # published again (same id) once its lease (10 s) has run out.
        deadline = time.monotonic() + 20
        while True:
            ev = self.db(self.payment_db, "SELECT count(*), count(DISTINCT event_id), "
                         "sum(sent_at IS NULL) FROM outbox")[0]
            if ev[2] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        c(ev == (len(ids), len(ids), 0),
          f"{what}: one payment event per order, each with its own id, all sent", ev)
        ev = self.db(self.system.order_db, "SELECT count(*), sum(sent_at IS NULL) FROM outbox")[0]
        c(ev == (len(ids), 0), f"{what}: one order.created per order, all sent", ev)
        applied = self.db(self.system.order_db, "SELECT count(*) FROM inbox")[0][0]
        c(applied == len(ids), f"{what}: each payment event applied once ({applied})", applied)

    def broker_kill(self, n=1000):
        c = self.check
        self.start()
        _, token = self.new_user("outage")
        killed = threading.Event()
        ready_codes = []

        def progress(done):
            # SIGKILL once a third of the orders are in, and start the broker
            # again a second later, while the rest keep coming.
            if done == n // 3 and not killed.is_set():
                killed.set()
                self.nats.kill()
                print(f"   killed nats-server after {done} orders", flush=True)

                def restart():
                    for _ in range(10):
                        ready_codes.append(request("GET", self.order.url + "/ready",
                                                   timeout=2).status)
                        time.sleep(0.1)
                    self.nats.start()
                    print(f"   nats-server started again (pid {self.nats.proc.pid})", flush=True)

                threading.Thread(target=restart).start()

        start = time.monotonic()
        ids, errors = self._create_many(token, n, threads=4, on_progress=progress)
        c(not errors and len(ids) == n,
          f"all {n} orders were accepted, broker or not ({time.monotonic() - start:.1f} s)",
          errors[:3])
        c(killed.is_set(), "the broker was killed mid-batch")
        c(ready_codes and all(code == 200 for code in ready_codes),
          "/ready stayed 200 through the outage (no flapping)", ready_codes)
        deadline = time.monotonic() + 15
        while self.nats.proc is None or self.nats.proc.poll() is not None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        rows = self._all_decided(ids, timeout=40)
        print(f"   decided {sum(1 for i, _ in ids if rows.get(i, ('',))[0] != 'pending')} of "
              f"{n} orders {time.monotonic() - start:.1f} s after the first", flush=True)
        self._verify_batch(ids, rows, "broker killed")
        self.services_alive()

    def held(self, proc):
        """Messages proc's handler holds unsettled, from its /metrics:
        consumed minus acknowledged minus negatively acknowledged."""
        r = request("GET", proc.url + "/metrics", timeout=2)
        total = {"consumed": 0.0, "acked": 0.0, "nacked": 0.0}
        for line in (r.body or "").splitlines():
            for k in total:
                if line.startswith(f"msvc_events_{k}_total"):
                    total[k] += float(line.rsplit(" ", 1)[1])
        return int(total["consumed"] - total["acked"] - total["nacked"])

    def payment_kill(self, n=200):
        c = self.check
        # 100 ms per decision on two pool threads: an instance falls behind
        # the orders and holds unacknowledged events.
        self.start(payments=2, payment_env={"PAYMENT_DELAY_MS": "100"})
        _, token = self.new_user("takeover")
        start = time.monotonic()
        ids, errors = self._create_many(token, n, threads=4)
        c(not errors and len(ids) == n, f"all {n} orders were accepted", errors[:3])
        # Kill the first instance once its own metrics say it holds events
        # it has not acknowledged: what it held must reach the other one.
        # Timing decides nothing here; the instance's state does.
        victim, survivor = self.payments
        deadline = time.monotonic() + 20
        held = 0
        while time.monotonic() < deadline:
            held = self.held(victim)
            if held >= 3:
                break
            time.sleep(0.02)
        c(held >= 3, f"{victim.label} held {held} unacknowledged events when killed")
        self.system.kill(victim)
        self.pids.pop(victim.label)
        print(f"   killed {victim.label} (SIGKILL)", flush=True)
        rows = self._all_decided(ids, timeout=40)
        print(f"   all decided {time.monotonic() - start:.1f} s after the first order", flush=True)
        self._verify_batch(ids, rows, "payment instance killed")
        with open(survivor.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        c("redelivered" in log,
          f"{survivor.label} received the events the killed instance had not acknowledged "
          f"({log.count('redelivered')} redeliveries)")
        self.services_alive()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=("both_ways", "broker_kill", "payment_kill"))
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--nats", default=shutil.which("nats-server"))
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args()
    if not args.nats:
        print("nats-server not found")
        return 1
    check = Checks()
    saga = Saga(args.bin_dir, args.nats, check)
    try:
        getattr(saga, args.scenario)()
    except Exception:  # noqa: BLE001 - a crashed scenario is a failure
        import traceback
        check(False, f"{args.scenario} ran to the end", traceback.format_exc())
    finally:
        # Stopped first: a leak is reported when a service exits.
        for p in saga.system.procs:
            if not p.alive():
                check(False, f"{p.label} still running at the end", p.popen.returncode)
        saga.close(keep=True)
        reports = saga.system.sanitizer_reports()
        check(not reports, "no sanitizer report in any service's log", reports[:2])
        if args.keep_logs or check.failed:
            print(f"logs kept in {saga.system.tmp}/logs")
        else:
            shutil.rmtree(saga.system.tmp, ignore_errors=True)
    print(f"\n{check.passed} checks passed, {len(check.failed)} failed")
    for f in check.failed:
        print(f"  FAILED {f}")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
