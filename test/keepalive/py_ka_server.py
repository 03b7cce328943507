#!/usr/bin/python3
"""Python grpcio server for test/keepalive/run_keepalive_py.sh.

Usage: py_ka_server.py [--strict]
Serves /test.Ka/Ping (echoes the request bytes) on 127.0.0.1, an
ephemeral port printed as "listening on 127.0.0.1:PORT".  Default grpcio
settings; with --strict the server enforces a high minimum interval for
pings without calls (grpc.http2.min_ping_interval_without_data_ms 60 s,
grpc.http2.max_ping_strikes 1), so a client that pings an idle connection
every 10 s is sent GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
Runs until SIGTERM.
"""

import signal
import sys
import threading
from concurrent import futures

import grpc


def main():
    strict = "--strict" in sys.argv[1:]
    opts = []
    if strict:
        opts = [
            ("grpc.http2.min_ping_interval_without_data_ms", 60000),
            ("grpc.http2.max_ping_strikes", 1),
        ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=opts)
    handler = grpc.method_handlers_generic_handler(
        "test.Ka",
        {"Ping": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("listening on 127.0.0.1:%d" % port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    done.wait()
    server.stop(0)


if __name__ == "__main__":
    main()
