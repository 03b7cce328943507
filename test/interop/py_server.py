#!/usr/bin/python3
"""grpc.testing.TestService interop server in Python grpcio (reference side).

Usage: py_server.py --port=N   (0 = ephemeral; prints "listening on
127.0.0.1:PORT").  Runs until SIGTERM/SIGINT.  Services are registered with
generic handlers; messages come from interop_pb (protoc --python_out).
"""

import signal
import sys
import threading
import time
from concurrent import futures

import grpc

sys.dont_write_bytecode = True  # keep the source tree clean (__pycache__)
import interop_pb  # noqa: E402

empty_pb2, pb = interop_pb.load_messages()

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"


def echo_metadata(ctx):
    initial, trailing = [], []
    for k, v in ctx.invocation_metadata():
        if k == ECHO_INITIAL:
            initial.append((k, v))
        elif k == ECHO_TRAILING:
            trailing.append((k, v))
    if initial:
        ctx.send_initial_metadata(initial)
    if trailing:
        ctx.set_trailing_metadata(trailing)


def check_request(req, compressed, ctx):
    """expect_compressed (CompressedRequest) and response_type checks."""
    fields = req.DESCRIPTOR.fields_by_name
    if "expect_compressed" in fields and req.HasField("expect_compressed") \
            and req.expect_compressed.value and not compressed:
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT,
                  "expected a compressed request message")
    if getattr(req, "response_type", pb.COMPRESSABLE) != pb.COMPRESSABLE:
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "unsupported response_type")


def echo_status(req, ctx):
    if req.HasField("response_status") and req.response_status.code != 0:
        code = interop_pb.STATUS_BY_VALUE.get(req.response_status.code,
                                              grpc.StatusCode.UNKNOWN)
        ctx.abort(code, req.response_status.message)


def payload(n):
    return pb.Payload(type=pb.COMPRESSABLE, body=b"\0" * n)


def empty_call(arg, ctx):
    echo_metadata(ctx)
    return empty_pb2.Empty()


def unary_call(arg, ctx):
    req, compressed = arg
    echo_metadata(ctx)
    check_request(req, compressed, ctx)
    if req.HasField("response_compressed") and req.response_compressed.value:
        ctx.set_compression(grpc.Compression.Gzip)
    else:
        ctx.set_compression(grpc.Compression.NoCompression)
    echo_status(req, ctx)
    return pb.SimpleResponse(payload=payload(req.response_size))


def streaming_input_call(it, ctx):
    echo_metadata(ctx)
    total = 0
    for req, compressed in it:
        check_request(req, compressed, ctx)
        total += len(req.payload.body)
    return pb.StreamingInputCallResponse(aggregated_payload_size=total)


def respond(req, ctx):
    """Yield one response per ResponseParameters, honouring interval_us and
    per-message compression (the call is gzip; uncompressed messages opt
    out)."""
    for rp in req.response_parameters:
        if rp.interval_us > 0:
            time.sleep(rp.interval_us / 1e6)
        if not (rp.HasField("compressed") and rp.compressed.value):
            ctx.disable_next_message_compression()
        yield pb.StreamingOutputCallResponse(payload=payload(rp.size))


def streaming_output_call(arg, ctx):
    req, compressed = arg
    echo_metadata(ctx)
    check_request(req, compressed, ctx)
    ctx.set_compression(grpc.Compression.Gzip)
    echo_status(req, ctx)
    yield from respond(req, ctx)


def full_duplex_call(it, ctx):
    echo_metadata(ctx)
    ctx.set_compression(grpc.Compression.Gzip)
    for req, compressed in it:
        check_request(req, compressed, ctx)
        echo_status(req, ctx)
        yield from respond(req, ctx)


def half_duplex_call(it, ctx):
    echo_metadata(ctx)
    ctx.set_compression(grpc.Compression.Gzip)
    reqs = []
    for req, compressed in it:
        check_request(req, compressed, ctx)
        reqs.append(req)
    for req in reqs:
        echo_status(req, ctx)
        yield from respond(req, ctx)


USAGE = ("usage: py_server.py --port=N [--use_tls[=true|false] "
         "--tls_cert_file=F --tls_key_file=F [--tls_client_ca_file=F]]\n")


def main(argv):
    port = None
    use_tls = False
    files = {"tls_cert_file": None, "tls_key_file": None,
             "tls_client_ca_file": None}
    i = 1
    while i < len(argv):
        a = argv[i]
        if a.startswith("--port="):
            port = a.split("=", 1)[1]
        elif a == "--port" and i + 1 < len(argv):
            i += 1
            port = argv[i]
        elif a in ("--use_tls", "--use_tls=true"):
            use_tls = True
        elif a == "--use_tls=false":
            use_tls = False
        elif a[2:].split("=", 1)[0] in files:
            if "=" in a:
                k, v = a[2:].split("=", 1)
            elif i + 1 < len(argv):
                k, v = a[2:], argv[i + 1]
                i += 1
            else:
                sys.stderr.write(USAGE)
                return 2
            files[k] = v
        else:
            sys.stderr.write(USAGE)
            return 2
        i += 1
    if port is None or not port.isdigit():
        sys.stderr.write(USAGE)
        return 2
    if use_tls and (files["tls_cert_file"] is None
                    or files["tls_key_file"] is None):
        sys.stderr.write(USAGE)
        return 2

    de = interop_pb.deserializer
    ser = interop_pb.serialize
    handlers = {
        "EmptyCall": grpc.unary_unary_rpc_method_handler(
            empty_call, de(empty_pb2.Empty), ser),
        "UnaryCall": grpc.unary_unary_rpc_method_handler(
            unary_call, de(pb.SimpleRequest), ser),
        "StreamingInputCall": grpc.stream_unary_rpc_method_handler(
            streaming_input_call, de(pb.StreamingInputCallRequest), ser),
        "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(
            streaming_output_call, de(pb.StreamingOutputCallRequest), ser),
        "FullDuplexCall": grpc.stream_stream_rpc_method_handler(
            full_duplex_call, de(pb.StreamingOutputCallRequest), ser),
        "HalfDuplexCall": grpc.stream_stream_rpc_method_handler(
            half_duplex_call, de(pb.StreamingOutputCallRequest), ser),
        # CacheableUnaryCall needs GET + a caching proxy: not offered;
        # UnimplementedCall is deliberately absent (-> UNIMPLEMENTED).
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                         options=interop_pb.RAW_OPTIONS)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(interop_pb.SERVICE, handlers),))
    if use_tls:
        def read(path):
            with open(path, "rb") as f:
                return f.read()
        ca = files["tls_client_ca_file"]
        creds = grpc.ssl_server_credentials(
            [(read(files["tls_key_file"]), read(files["tls_cert_file"]))],
            root_certificates=read(ca) if ca else None,
            require_client_auth=ca is not None)
        bound = server.add_secure_port("127.0.0.1:%s" % port, creds)
    else:
        bound = server.add_insecure_port("127.0.0.1:%s" % port)
    if bound == 0:
        sys.stderr.write("py_server: cannot bind 127.0.0.1:%s\n" % port)
        return 1
    server.start()
    print("listening on 127.0.0.1:%d" % bound, flush=True)

    done = threading.Event()

    def stop(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not done.wait(1.0):
        pass
    server.stop(1).wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
