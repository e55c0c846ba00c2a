#!/usr/bin/env python3
"""The example services over gRPC, as real processes on a local registry.

  example_e2e.py <examples bin dir> <proto dir> <work dir>

order-service serves orders.v1.Orders beside its REST API; a grpcio client
checks it (token rules, errors, health), and the bff started with
BFF_ORDERS_GRPC=1 builds its dashboards from ListOrders, degrading when
order-service is gone.
"""
import os
import sys

import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
BIN_DIR, PROTO_DIR, WORK = sys.argv[1:4]

from msvc_system import System, request  # noqa: E402
from grpc_tools import protoc  # noqa: E402

# The stubs, generated as interop.py does (health from a copy: its own path
# would shadow Python's grpc package).
os.makedirs(WORK, exist_ok=True)
out = os.path.join(WORK, "py")
src = os.path.join(WORK, "protosrc", "msvc_health")
os.makedirs(out, exist_ok=True)
os.makedirs(src, exist_ok=True)
shutil.copy(os.path.join(PROTO_DIR, "grpc/health/v1/health.proto"), src)
if protoc.main(["protoc", "-I" + PROTO_DIR, "-I" + os.path.dirname(src),
                "--python_out=" + out, "--grpc_python_out=" + out,
                os.path.join(PROTO_DIR, "orders/v1/orders.proto"),
                os.path.join(src, "health.proto")]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, out)
import grpc  # noqa: E402
from orders.v1 import orders_pb2, orders_pb2_grpc  # noqa: E402
from msvc_health import health_pb2, health_pb2_grpc  # noqa: E402

failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + (" " + str(detail) if detail else ""),
          flush=True)
    if not cond:
        failures.append(name)


def code_of(fn):
    try:
        fn()
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def new_user(base, n):
    email = "grpc%d.%d@example.com" % (n, os.getpid())
    r = request("POST", base + "/users", {"name": "Grace", "email": email,
                                          "password": "correct horse battery"})
    assert r.status == 201, r
    r2 = request("POST", base + "/login", {"email": email, "password": "correct horse battery"})
    assert r2.status == 200, r2
    return r.json["id"], r2.json["access_token"]


s = System(BIN_DIR, registry="local", ttl_ms=3000)
try:
    users = s.start("user-service")
    orders = s.start("order-service")
    bff = s.start("bff", extra_env={"BFF_ORDERS_GRPC": "1"})
    uid, token = new_user(users.url, 1)
    uid2, token2 = new_user(users.url, 2)
    ids = []
    for price in (250, 1000):
        r = request("POST", orders.url + "/orders",
                    {"items": [{"sku": "book", "quantity": 2, "unit_price_cents": price}]},
                    token=token)
        check("order placed over REST", r.status == 201, r)
        ids.append(r.json["id"])

    ch = grpc.insecure_channel("127.0.0.1:%d" % orders.port)
    grpc.channel_ready_future(ch).result(timeout=10)
    stub = orders_pb2_grpc.OrdersStub(ch)
    auth = [("authorization", "Bearer " + token)]
    o = stub.GetOrder(orders_pb2.GetOrderRequest(id=ids[0]), metadata=auth, timeout=5)
    check("GetOrder over gRPC", o.id == ids[0] and o.user_id == uid and o.total_cents == 500
          and o.items[0].sku == "book" and o.status == "created", o)
    got = list(stub.ListOrders(orders_pb2.ListOrdersRequest(user_id=uid), metadata=auth,
                               timeout=5))
    check("ListOrders streams the user's orders", sorted(x.id for x in got) == sorted(ids), got)
    check("no token: UNAUTHENTICATED",
          code_of(lambda: stub.GetOrder(orders_pb2.GetOrderRequest(id=ids[0]), timeout=5))
          == grpc.StatusCode.UNAUTHENTICATED)
    check("another user's order: NOT_FOUND",
          code_of(lambda: stub.GetOrder(orders_pb2.GetOrderRequest(id=ids[0]), timeout=5,
                                        metadata=[("authorization", "Bearer " + token2)]))
          == grpc.StatusCode.NOT_FOUND)
    check("another user's list: PERMISSION_DENIED",
          code_of(lambda: list(stub.ListOrders(orders_pb2.ListOrdersRequest(user_id=uid),
                                               timeout=5,
                                               metadata=[("authorization",
                                                          "Bearer " + token2)])))
          == grpc.StatusCode.PERMISSION_DENIED)
    h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    check("order-service health SERVING", h.status == health_pb2.HealthCheckResponse.SERVING)
    ch.close()

    r = request("GET", bff.url + "/web/users/%d/dashboard" % uid, token=token)
    check("bff dashboard from gRPC orders", r.status == 200 and r.json["degraded"] == []
          and len(r.json["orders"]) == 2 and r.json["total_spent_cents"] == 2500, r)
    r = request("GET", bff.url + "/mobile/users/%d/dashboard" % uid, token=token)
    check("bff mobile dashboard from gRPC orders", r.status == 200
          and r.json["order_count"] == 2, r)

    m = request("GET", bff.url + "/metrics")
    check("bff counts its gRPC calls",
          'msvc_grpc_client_handled_total{service="order-service",method="ListOrders",'
          'code="OK"} 2' in m.body, [x for x in m.body.splitlines() if "grpc" in x])

    rc = s.stop(orders)
    check("order-service stops cleanly", rc == 0, rc)
    r = request("GET", bff.url + "/web/users/%d/dashboard" % uid, token=token)
    check("bff degrades without order-service", r.status == 200
          and r.json["orders"] is None and r.json["degraded"] == ["order-service"], r)
    for p in list(s.procs):
        rc = s.stop(p)
        check(p.label + " stops cleanly", rc == 0, rc)
    reports = s.sanitizer_reports()
    check("no sanitizer report in any service's log", not reports, reports[:2])
finally:
    for p in list(s.procs):
        s.kill(p)
    if failures:
        for name in ("user-service", "order-service", "bff"):
            print("---- %s log:\n%s" % (name, System.tail(os.path.join(s.tmp, "logs",
                                                                     name + ".log"))))
    shutil.rmtree(s.tmp, ignore_errors=True)
if failures:
    sys.exit("failed: " + ", ".join(failures))
print("all passed")
