#!/usr/bin/env python3
"""gRPC interop between libmsvc and grpcio (the Python implementation).

  interop.py server <interop_server> <proto dir> <work dir>
      grpcio's client calls libmsvc's server: unary, streaming, deadline
      exceeded, cancellation, metadata, large messages, health.
  interop.py server-tls <interop_server> <proto dir> <work dir> <cert dir>
      the same server over TLS (ALPN h2), a few calls through grpcio's
      secure channel checking the certificate against the test CA.
  interop.py client <interop_client> <proto dir> <work dir>
      libmsvc's client calls a grpcio server (started here); the C program
      runs its checks and exits 0 when they all held.

Stubs are generated with grpc_tools.protoc into the work dir. The health
service's .proto is compiled from a copy under another directory because
its own path (grpc/health/v1) would shadow the grpc package in Python.
"""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures

MODE, PROG, PROTO_DIR, WORK = sys.argv[1:5]


def generate():
    from grpc_tools import protoc
    out = os.path.join(WORK, "py")
    src = os.path.join(WORK, "protosrc", "msvc_health")
    os.makedirs(out, exist_ok=True)
    os.makedirs(src, exist_ok=True)
    shutil.copy(os.path.join(PROTO_DIR, "grpc/health/v1/health.proto"), src)
    rc = protoc.main(["protoc", "-I" + PROTO_DIR, "-I" + os.path.dirname(src),
                      "--python_out=" + out, "--grpc_python_out=" + out,
                      os.path.join(PROTO_DIR, "orders/v1/orders.proto"),
                      os.path.join(src, "health.proto")])
    if rc != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)


os.makedirs(WORK, exist_ok=True)
generate()
import grpc  # noqa: E402
from orders.v1 import orders_pb2, orders_pb2_grpc  # noqa: E402
from msvc_health import health_pb2, health_pb2_grpc  # noqa: E402

failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + (" " + str(detail) if detail else ""),
          flush=True)
    if not cond:
        failures.append(name)


def expect_code(name, fn, code):
    try:
        fn()
        check(name, False, "no error")
    except grpc.RpcError as e:
        check(name, e.code() == code, "%s %r" % (e.code(), e.details()))
        return e
    return None


def start_server(extra_env=None):
    env = dict(os.environ, MSVC_LOG_LEVEL="warn")
    env.update(extra_env or {})
    p = subprocess.Popen([PROG], stdout=subprocess.PIPE, env=env, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stdout.readline()
        if line.startswith("PORT "):
            return p, int(line.split()[1])
        if line == "" and p.poll() is not None:
            break
    p.kill()
    sys.exit("server did not start")


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    check("server exits cleanly", rc == 0, rc)


def run_server_tests():
    p, port = start_server()
    try:
        big_opts = [("grpc.max_receive_message_length", 16 << 20),
                    ("grpc.max_send_message_length", 16 << 20)]
        ch = grpc.insecure_channel("127.0.0.1:%d" % port, options=big_opts)
        grpc.channel_ready_future(ch).result(timeout=10)
        orders = orders_pb2_grpc.OrdersStub(ch)

        # unary, with metadata both ways
        o, call = orders.GetOrder.with_call(
            orders_pb2.GetOrderRequest(id=42), timeout=5,
            metadata=[("x-echo", "hello"), ("x-blob-bin", b"\x00\x01\xfe\xff")])
        check("unary reply", o.id == 42 and o.items[0].sku == "sku-42"
              and o.status == "created", o)
        hdr = dict(call.initial_metadata())
        trl = dict(call.trailing_metadata())
        check("metadata echoed in headers", hdr.get("x-echo") == "hello", hdr)
        check("binary metadata echoed in trailers",
              trl.get("x-blob-bin") == b"\x00\x01\xfe\xff", trl)

        # gzip both ways
        o = orders.GetOrder(orders_pb2.GetOrderRequest(id=1004), timeout=5,
                            compression=grpc.Compression.Gzip)
        check("gzip call", len(o.items[0].sku) == 4096)

        # status and message
        e = expect_code("NOT_FOUND with message",
                        lambda: orders.GetOrder(orders_pb2.GetOrderRequest(id=404), timeout=5),
                        grpc.StatusCode.NOT_FOUND)
        check("status message decoded", e is not None and "caf\u00e9" in e.details(),
              e and e.details())

        # deadline exceeded: the server never answers id 999
        t0 = time.time()
        expect_code("deadline exceeded",
                    lambda: orders.GetOrder(orders_pb2.GetOrderRequest(id=999), timeout=0.3),
                    grpc.StatusCode.DEADLINE_EXCEEDED)
        check("deadline kept", time.time() - t0 < 3, time.time() - t0)

        # cancellation of a unary call and of a stream, seen by the server
        before = orders.GetOrder(orders_pb2.GetOrderRequest(id=998), timeout=5).total_cents
        fut = orders.GetOrder.future(orders_pb2.GetOrderRequest(id=999), timeout=30)
        time.sleep(0.2)
        fut.cancel()
        stream = orders.ListOrders(orders_pb2.ListOrdersRequest(user_id=7, limit=1000),
                                   timeout=30)
        first = [next(stream) for _ in range(3)]
        stream.cancel()
        check("stream yields before cancel", [x.id for x in first] == [1, 2, 3])
        seen = 0
        for _ in range(50):
            seen = orders.GetOrder(orders_pb2.GetOrderRequest(id=998), timeout=5).total_cents
            if seen >= before + 2:
                break
            time.sleep(0.1)
        check("server saw both cancellations", seen >= before + 2, (before, seen))

        # server streaming
        got = list(orders.ListOrders(orders_pb2.ListOrdersRequest(user_id=1, limit=50),
                                     timeout=5))
        check("stream of 50", [x.id for x in got] == list(range(1, 51)), len(got))
        got = list(orders.ListOrders(orders_pb2.ListOrdersRequest(user_id=7, limit=5),
                                     timeout=5))
        check("slow stream of 5", len(got) == 5)
        got = list(orders.ListOrders(orders_pb2.ListOrdersRequest(user_id=1, limit=0),
                                     timeout=5))
        check("empty stream", got == [])

        # large messages: a 3 MiB reply passes, 5 MiB is over the server's
        # send limit; a 3 MiB request passes, 5 MiB is over its receive limit
        o = orders.GetOrder(orders_pb2.GetOrderRequest(id=1000 + 3072), timeout=10)
        check("3 MiB reply", len(o.items[0].sku) == 3 << 20)
        expect_code("5 MiB reply refused",
                    lambda: orders.GetOrder(orders_pb2.GetOrderRequest(id=1000 + 5120),
                                            timeout=10),
                    grpc.StatusCode.RESOURCE_EXHAUSTED)
        raw = ch.unary_unary("/orders.v1.Orders/GetOrder",
                             request_serializer=lambda b: b,
                             response_deserializer=orders_pb2.Order.FromString)

        def padded(n):
            # id = 7, then an unknown bytes field 15 of n bytes
            body = b"\x08\x07"
            ln, pre = n, b""
            while True:
                pre += bytes([(ln & 0x7f) | (0x80 if ln > 0x7f else 0)])
                ln >>= 7
                if ln == 0:
                    break
            return body + b"\x7a" + pre + b"z" * n

        o = raw(padded(3 << 20), timeout=10)
        check("3 MiB request", o.id == 7)
        expect_code("5 MiB request refused", lambda: raw(padded(5 << 20), timeout=10),
                    grpc.StatusCode.RESOURCE_EXHAUSTED)

        # an unknown method
        nope = ch.unary_unary("/orders.v1.Orders/Nope", request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        expect_code("unknown method", lambda: nope(b"", timeout=5),
                    grpc.StatusCode.UNIMPLEMENTED)

        # health
        health = health_pb2_grpc.HealthStub(ch)
        r = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        check("health SERVING", r.status == health_pb2.HealthCheckResponse.SERVING, r)
        r = health.Check(health_pb2.HealthCheckRequest(service="orders.v1.Orders"), timeout=5)
        check("health of orders.v1.Orders", r.status == health_pb2.HealthCheckResponse.SERVING)
        expect_code("health of an unknown service",
                    lambda: health.Check(health_pb2.HealthCheckRequest(service="x.Y"), timeout=5),
                    grpc.StatusCode.NOT_FOUND)
        w = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        first = next(w)
        check("health Watch", first.status == health_pb2.HealthCheckResponse.SERVING)
        w.cancel()
        ch.close()

        # the outcomes, by code, in the service's /metrics
        import urllib.request
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                      timeout=5).read().decode()
        series = {}
        for line in text.splitlines():
            if line.startswith("msvc_grpc_server_handled_total{"):
                name, value = line.rsplit(" ", 1)
                series[name] = float(value)

        def handled(method, code):
            return series.get('msvc_grpc_server_handled_total{service="orders.v1.Orders",'
                              'method="%s",code="%s"}' % (method, code), 0)
        check("metrics: GetOrder OK counted", handled("GetOrder", "OK") >= 5, series)
        check("metrics: NOT_FOUND counted", handled("GetOrder", "NOT_FOUND") == 1)
        # the client gives up at its deadline too: whichever end was first
        check("metrics: deadline and cancel counted",
              handled("GetOrder", "DEADLINE_EXCEEDED") + handled("GetOrder", "CANCELLED") >= 2)
        check("metrics: cancelled stream counted", handled("ListOrders", "CANCELLED") >= 1)
    finally:
        stop(p)


def run_tls_tests(cert_dir):
    p, port = start_server({"MSVC_TLS_CERT": os.path.join(cert_dir, "server.crt"),
                            "MSVC_TLS_KEY": os.path.join(cert_dir, "server.key")})
    try:
        with open(os.path.join(cert_dir, "ca.crt"), "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        ch = grpc.secure_channel("localhost:%d" % port, creds)
        grpc.channel_ready_future(ch).result(timeout=10)
        orders = orders_pb2_grpc.OrdersStub(ch)
        o, call = orders.GetOrder.with_call(orders_pb2.GetOrderRequest(id=42), timeout=5,
                                            metadata=[("x-echo", "tls")])
        check("unary over TLS", o.id == 42 and dict(call.initial_metadata()).get("x-echo")
              == "tls")
        got = list(orders.ListOrders(orders_pb2.ListOrdersRequest(user_id=1, limit=50),
                                     timeout=5))
        check("stream over TLS", len(got) == 50)
        expect_code("status over TLS",
                    lambda: orders.GetOrder(orders_pb2.GetOrderRequest(id=404), timeout=5),
                    grpc.StatusCode.NOT_FOUND)
        r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        check("health over TLS", r.status == health_pb2.HealthCheckResponse.SERVING)
        ch.close()
    finally:
        stop(p)


STATUS_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


class Orders(orders_pb2_grpc.OrdersServicer):
    def GetOrder(self, request, context):
        md = dict(context.invocation_metadata())
        if request.id == 404:
            context.abort(grpc.StatusCode.NOT_FOUND, "no order 404 (caf\u00e9)")
        if request.id == 503:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try elsewhere")
        if 5000 < request.id < 5017:
            # A status chosen by the caller: 5000 + the code's number.
            context.abort(grpc.StatusCode[STATUS_NAMES[request.id - 5000]], "as asked")
        if request.id == 999:
            time.sleep(2)
        context.set_trailing_metadata((("x-echo", md.get("x-echo", "")),
                                       ("x-blob-bin", md.get("x-blob-bin", b""))))
        sku = "k" * ((request.id - 1000) * 1024) if request.id > 1000 else "sku-%d" % request.id
        return orders_pb2.Order(id=request.id, user_id=7, status="created",
                                items=[orders_pb2.Item(sku=sku, quantity=1)])

    def ListOrders(self, request, context):
        for i in range(request.limit):
            yield orders_pb2.Order(id=i + 1, user_id=request.user_id)


def run_client_tests():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", 16 << 20),
                                  ("grpc.max_send_message_length", 16 << 20)])
    orders_pb2_grpc.add_OrdersServicer_to_server(Orders(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        rc = subprocess.call([PROG, "127.0.0.1", str(port)], timeout=120)
        check("libmsvc client against grpcio server", rc == 0, rc)
    finally:
        server.stop(0)


if MODE == "server":
    run_server_tests()
elif MODE == "server-tls":
    run_tls_tests(sys.argv[5])
else:
    run_client_tests()
if failures:
    sys.exit("failed: " + ", ".join(failures))
print("all passed")
