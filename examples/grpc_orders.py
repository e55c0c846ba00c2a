#!/usr/bin/env python3
"""A tiny gRPC client of order-service's orders.v1.Orders, with grpcio.

  grpc_orders.py [options] HOST:PORT get ORDER_ID
  grpc_orders.py [options] HOST:PORT list USER_ID
  grpc_orders.py [options] HOST:PORT health

Prints each reply message as one line of JSON (ListOrders streams one line
per order), or "CODE: message" on stderr and exit status 1 when the call
ends with an error. The bearer token comes from $TOKEN. The Python stubs
are generated from the .proto files at each run into a temporary directory
(Debian: python3-grpcio and python3-grpc-tools).

Options:
  --proto-dir DIR   where orders/v1/orders.proto is (default: the
                    repository's proto/, else an installed
                    share/libmsvc/proto next to this script)
  --cacert FILE     TLS: the CA that signed the server's certificate
  --cert FILE       TLS: this client's certificate (mutual TLS)
  --key FILE        TLS: its private key
  --timeout S       the call's deadline in seconds (default 5)
"""
import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def proto_dir(given):
    for d in ([given] if given else
              [os.path.join(HERE, "..", "proto"),
               os.path.join(HERE, "..", "share", "libmsvc", "proto")]):
        if d and os.path.exists(os.path.join(d, "orders", "v1", "orders.proto")):
            return d
    sys.exit("grpc_orders: orders/v1/orders.proto not found (use --proto-dir)")


def stubs(protos, out):
    """Generates the Python modules of orders.proto and health.proto into out;
    health.proto from a copy under another package, since its own path
    (grpc/health/v1) would shadow the grpc package."""
    from grpc_tools import protoc

    health = os.path.join(out, "src", "msvc_health")
    os.makedirs(health)
    shutil.copy(os.path.join(protos, "grpc", "health", "v1", "health.proto"), health)
    if protoc.main(["protoc", "-I" + protos, "-I" + os.path.dirname(health),
                    "--python_out=" + out, "--grpc_python_out=" + out,
                    os.path.join(protos, "orders", "v1", "orders.proto"),
                    os.path.join(health, "health.proto")]) != 0:
        sys.exit("grpc_orders: protoc failed")
    sys.path.insert(0, out)


def channel(grpc, target, a):
    if not a.cacert:
        return grpc.insecure_channel(target)
    with open(a.cacert, "rb") as f:
        ca = f.read()
    key = cert = None
    if a.cert and a.key:
        with open(a.key, "rb") as f:
            key = f.read()
        with open(a.cert, "rb") as f:
            cert = f.read()
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                         certificate_chain=cert)
    return grpc.secure_channel(target, creds)


def main():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--proto-dir")
    p.add_argument("--cacert")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("target", nargs="?")
    p.add_argument("method", nargs="?", choices=["get", "list", "health"])
    p.add_argument("arg", nargs="?", type=int)
    a = p.parse_args()
    if a.help or not a.target or not a.method or (a.method != "health" and a.arg is None):
        print(__doc__.strip())
        return 0 if a.help else 2
    import grpc
    from google.protobuf import json_format

    work = tempfile.mkdtemp(prefix="grpc-orders.")
    try:
        stubs(proto_dir(a.proto_dir), work)
        from orders.v1 import orders_pb2, orders_pb2_grpc
        from msvc_health import health_pb2, health_pb2_grpc

        md = [("authorization", "Bearer " + os.environ["TOKEN"])] if os.environ.get("TOKEN") else []
        with channel(grpc, a.target, a) as ch:
            stub = orders_pb2_grpc.OrdersStub(ch)
            if a.method == "get":
                replies = [stub.GetOrder(orders_pb2.GetOrderRequest(id=a.arg), metadata=md,
                                         timeout=a.timeout)]
            elif a.method == "list":
                replies = stub.ListOrders(orders_pb2.ListOrdersRequest(user_id=a.arg),
                                          metadata=md, timeout=a.timeout)
            else:
                replies = [health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=a.timeout)]
            for m in replies:
                print(json_format.MessageToJson(m, indent=None,
                                                preserving_proto_field_name=True), flush=True)
    except grpc.RpcError as e:
        print("%s: %s" % (e.code().name, e.details()), file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
