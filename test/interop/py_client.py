#!/usr/bin/python3
"""grpc.testing interop client in Python grpcio (reference side).

Usage: py_client.py --server_host=H --server_port=P --test_case=NAME|all
       [--use_tls[=true|false]] [--tls_ca_file=F] [--server_host_override=X]
       [--tls_cert_file=F --tls_key_file=F]
With --use_tls the channel uses grpc.ssl_channel_credentials: the server is
verified with --tls_ca_file (grpc's default roots without it) against
--server_host_override (grpc.ssl_target_name_override) or the host; a
client certificate and key make it mutual TLS.
Exit 0 when the case passed; otherwise one line "FAIL case: reason" on
stderr and exit 1.  Every call carries a deadline, so nothing hangs.
"""

import faulthandler
import os
import queue
import sys

import grpc

sys.dont_write_bytecode = True  # keep the source tree clean (__pycache__)
import interop_pb  # noqa: E402

empty_pb2, pb = interop_pb.load_messages()

CALL_TIMEOUT = 20.0  # seconds, every RPC
SVC = "/" + interop_pb.SERVICE + "/"
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


class Fail(Exception):
    pass


def want(cond, fmt, *args):
    if not cond:
        raise Fail(fmt % args if args else fmt)


def zeros(n):
    return pb.Payload(type=pb.COMPRESSABLE, body=b"\0" * n)


def check_body(resp, n, what="response"):
    body = resp.payload.body
    want(len(body) == n, "%s payload %d bytes, want %d", what, len(body), n)
    want(body.count(0) == n, "%s payload is not all zeros", what)


class Pipe:
    """Request iterator fed by the test: blocks until add() or close()."""

    def __init__(self):
        self.q = queue.Queue()

    def add(self, m):
        self.q.put(m)

    def close(self):
        self.q.put(None)

    def __iter__(self):
        return self

    def __next__(self):
        # bounded: a forgotten close() cannot hold the process for ever
        try:
            m = self.q.get(timeout=CALL_TIMEOUT)
        except queue.Empty:
            raise StopIteration
        if m is None:
            raise StopIteration
        return m


class Stubs:
    def __init__(self, ch):
        de = interop_pb.deserializer
        ser = interop_pb.serialize
        self.empty = ch.unary_unary(SVC + "EmptyCall", ser, de(empty_pb2.Empty))
        self.unary = ch.unary_unary(SVC + "UnaryCall", ser, de(pb.SimpleResponse))
        self.sin = ch.stream_unary(SVC + "StreamingInputCall", ser,
                                   de(pb.StreamingInputCallResponse))
        self.sout = ch.unary_stream(SVC + "StreamingOutputCall", ser,
                                    de(pb.StreamingOutputCallResponse))
        self.bidi = ch.stream_stream(SVC + "FullDuplexCall", ser,
                                     de(pb.StreamingOutputCallResponse))
        self.unimpl_method = ch.unary_unary(SVC + "UnimplementedCall", ser,
                                            de(empty_pb2.Empty))
        self.unimpl_service = ch.unary_unary(
            "/" + interop_pb.UNIMPL_SERVICE + "/UnimplementedCall", ser,
            de(empty_pb2.Empty))


def expect_code(fn, code, what):
    try:
        fn()
    except grpc.RpcError as e:
        want(e.code() == code, "%s: status %s (%s), want %s", what, e.code(),
             e.details(), code)
        return e
    raise Fail("%s: call succeeded, want %s" % (what, code))


def ok(fn, what):
    try:
        return fn()
    except grpc.RpcError as e:
        raise Fail("%s: %s %s" % (what, e.code(), e.details()))


def large_request(**kw):
    return pb.SimpleRequest(response_type=pb.COMPRESSABLE, response_size=314159,
                            payload=zeros(271828), **kw)


# ---------------------------------------------------------------- cases

def empty_unary(s):
    resp, _ = ok(lambda: s.empty(empty_pb2.Empty(), timeout=CALL_TIMEOUT),
                 "EmptyCall")
    want(resp is not None, "no response")


def large_unary(s):
    resp, _ = ok(lambda: s.unary(large_request(), timeout=CALL_TIMEOUT),
                 "UnaryCall")
    check_body(resp, 314159)


def client_compressed_unary(s):
    probe = large_request(expect_compressed=pb.BoolValue(value=True))
    expect_code(lambda: s.unary(probe, timeout=CALL_TIMEOUT),
                grpc.StatusCode.INVALID_ARGUMENT, "uncompressed probe")
    resp, _ = ok(lambda: s.unary(probe, timeout=CALL_TIMEOUT,
                                 compression=grpc.Compression.Gzip),
                 "compressed call")
    check_body(resp, 314159, "compressed call response")
    plain = large_request(expect_compressed=pb.BoolValue(value=False))
    resp, _ = ok(lambda: s.unary(plain, timeout=CALL_TIMEOUT), "uncompressed call")
    check_body(resp, 314159, "uncompressed call response")


def server_compressed_unary(s):
    for flag in (True, False):
        req = large_request(response_compressed=pb.BoolValue(value=flag))
        resp, compressed = ok(lambda: s.unary(req, timeout=CALL_TIMEOUT),
                              "response_compressed=%s" % flag)
        want(compressed == flag, "response_compressed=%s: compressed flag %s",
             flag, compressed)
        check_body(resp, 314159)


def client_streaming(s):
    sizes = (27182, 8, 1828, 45904)
    reqs = [pb.StreamingInputCallRequest(payload=zeros(n)) for n in sizes]
    resp, _ = ok(lambda: s.sin(iter(reqs), timeout=CALL_TIMEOUT),
                 "StreamingInputCall")
    want(resp.aggregated_payload_size == 74922,
         "aggregated_payload_size %d, want 74922", resp.aggregated_payload_size)


def client_compressed_streaming(s):
    probe = pb.StreamingInputCallRequest(
        expect_compressed=pb.BoolValue(value=True), payload=zeros(27182))
    expect_code(lambda: s.sin(iter([probe]), timeout=CALL_TIMEOUT),
                grpc.StatusCode.INVALID_ARGUMENT, "uncompressed probe")
    # Python cannot switch compression off for one message of a call: the
    # second message goes compressed too (the server only checks messages
    # with expect_compressed=true).
    second = pb.StreamingInputCallRequest(
        expect_compressed=pb.BoolValue(value=False), payload=zeros(45904))
    resp, _ = ok(lambda: s.sin(iter([probe, second]), timeout=CALL_TIMEOUT,
                               compression=grpc.Compression.Gzip),
                 "compressed stream")
    want(resp.aggregated_payload_size == 73086,
         "aggregated_payload_size %d, want 73086", resp.aggregated_payload_size)


def collect(call, what):
    try:
        return list(call)
    except grpc.RpcError as e:
        raise Fail("%s: %s %s" % (what, e.code(), e.details()))


def server_streaming(s):
    sizes = (31415, 9, 2653, 58979)
    req = pb.StreamingOutputCallRequest(
        response_type=pb.COMPRESSABLE,
        response_parameters=[pb.ResponseParameters(size=n) for n in sizes])
    got = collect(s.sout(req, timeout=CALL_TIMEOUT), "StreamingOutputCall")
    want(len(got) == 4, "%d responses, want 4", len(got))
    for (resp, _), n in zip(got, sizes):
        check_body(resp, n)


def server_compressed_streaming(s):
    params = ((31415, True), (92653, False))
    req = pb.StreamingOutputCallRequest(response_parameters=[
        pb.ResponseParameters(size=n, compressed=pb.BoolValue(value=c))
        for n, c in params])
    got = collect(s.sout(req, timeout=CALL_TIMEOUT), "StreamingOutputCall")
    want(len(got) == 2, "%d responses, want 2", len(got))
    for i, ((resp, compressed), (n, c)) in enumerate(zip(got, params)):
        want(compressed == c, "response %d of 2: compressed flag %s, want %s",
             i + 1, compressed, c)
        check_body(resp, n, "response %d of 2" % (i + 1))


def ping_pong(s):
    pairs = ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904))
    pipe = Pipe()
    call = s.bidi(pipe, timeout=CALL_TIMEOUT)
    try:
        for i, (rsize, qsize) in enumerate(pairs):
            pipe.add(pb.StreamingOutputCallRequest(
                response_parameters=[pb.ResponseParameters(size=rsize)],
                payload=zeros(qsize)))
            try:
                resp, _ = next(call)
            except StopIteration:
                raise Fail("stream ended after %d responses, want 4" % i)
            check_body(resp, rsize, "ping %d response" % (i + 1))
        pipe.close()
        rest = collect(call, "FullDuplexCall")
        want(not rest, "%d extra responses", len(rest))
    except grpc.RpcError as e:
        raise Fail("FullDuplexCall: %s %s" % (e.code(), e.details()))
    finally:
        pipe.close()


def empty_stream(s):
    got = collect(s.bidi(iter([]), timeout=CALL_TIMEOUT), "FullDuplexCall")
    want(not got, "%d responses, want 0", len(got))


def timeout_on_sleeping_server(s):
    pipe = Pipe()
    pipe.add(pb.StreamingOutputCallRequest(payload=zeros(27182)))
    try:
        call = s.bidi(pipe, timeout=0.001)
        expect_code(lambda: list(call), grpc.StatusCode.DEADLINE_EXCEEDED,
                    "FullDuplexCall with 1 ms deadline")
    finally:
        pipe.close()


def cancel_after_begin(s):
    pipe = Pipe()
    try:
        fut = s.sin.future(pipe, timeout=CALL_TIMEOUT)
        fut.cancel()
        want(fut.cancelled(), "future not cancelled")
        want(fut.code() == grpc.StatusCode.CANCELLED, "status %s, want CANCELLED",
             fut.code())
    finally:
        pipe.close()


def cancel_after_first_response(s):
    pipe = Pipe()
    try:
        call = s.bidi(pipe, timeout=CALL_TIMEOUT)
        pipe.add(pb.StreamingOutputCallRequest(
            response_parameters=[pb.ResponseParameters(size=31415)],
            payload=zeros(27182)))
        try:
            resp, _ = next(call)
        except grpc.RpcError as e:
            raise Fail("FullDuplexCall: %s %s" % (e.code(), e.details()))
        check_body(resp, 31415)
        call.cancel()
        expect_code(lambda: next(call), grpc.StatusCode.CANCELLED,
                    "read after cancel")
        want(call.code() == grpc.StatusCode.CANCELLED, "status %s, want CANCELLED",
             call.code())
    finally:
        pipe.close()


ECHO_MD = (("x-grpc-test-echo-initial", "test_initial_metadata_value"),
           ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab"))


def check_echo(call, what):
    init = dict(call.initial_metadata() or ())
    trail = dict(call.trailing_metadata() or ())
    got = init.get(ECHO_MD[0][0])
    want(got == ECHO_MD[0][1], "%s: initial metadata %s=%r, want %r", what,
         ECHO_MD[0][0], got, ECHO_MD[0][1])
    got = trail.get(ECHO_MD[1][0])
    want(got == ECHO_MD[1][1], "%s: trailing metadata %s=%r, want %r", what,
         ECHO_MD[1][0], got, ECHO_MD[1][1])


def custom_metadata(s):
    (resp, _), call = ok(lambda: s.unary.with_call(
        large_request(), metadata=ECHO_MD, timeout=CALL_TIMEOUT), "UnaryCall")
    check_body(resp, 314159)
    check_echo(call, "UnaryCall")
    req = pb.StreamingOutputCallRequest(
        response_parameters=[pb.ResponseParameters(size=314159)],
        payload=zeros(271828))
    call = s.bidi(iter([req]), metadata=ECHO_MD, timeout=CALL_TIMEOUT)
    got = collect(call, "FullDuplexCall")
    want(len(got) == 1, "FullDuplexCall: %d responses, want 1", len(got))
    check_body(got[0][0], 314159)
    check_echo(call, "FullDuplexCall")


def check_status(fn, msg, what):
    e = expect_code(fn, grpc.StatusCode.UNKNOWN, what)
    want(e.details() == msg, "%s: message %r, want %r", what, e.details(), msg)


def status_code_and_message(s):
    msg = "test status message"
    st = pb.EchoStatus(code=2, message=msg)
    check_status(lambda: s.unary(pb.SimpleRequest(response_status=st),
                                 timeout=CALL_TIMEOUT), msg, "UnaryCall")
    check_status(lambda: list(s.bidi(iter([pb.StreamingOutputCallRequest(
        response_status=st)]), timeout=CALL_TIMEOUT)), msg, "FullDuplexCall")


def special_status_message(s):
    st = pb.EchoStatus(code=2, message=SPECIAL_MESSAGE)
    check_status(lambda: s.unary(pb.SimpleRequest(response_status=st),
                                 timeout=CALL_TIMEOUT), SPECIAL_MESSAGE,
                 "UnaryCall")


def unimplemented_method(s):
    expect_code(lambda: s.unimpl_method(empty_pb2.Empty(), timeout=CALL_TIMEOUT),
                grpc.StatusCode.UNIMPLEMENTED, "TestService/UnimplementedCall")


def unimplemented_service(s):
    expect_code(lambda: s.unimpl_service(empty_pb2.Empty(), timeout=CALL_TIMEOUT),
                grpc.StatusCode.UNIMPLEMENTED,
                "UnimplementedService/UnimplementedCall")


CASES = [
    ("empty_unary", empty_unary),
    ("large_unary", large_unary),
    ("client_streaming", client_streaming),
    ("server_streaming", server_streaming),
    ("ping_pong", ping_pong),
    ("empty_stream", empty_stream),
    ("timeout_on_sleeping_server", timeout_on_sleeping_server),
    ("cancel_after_begin", cancel_after_begin),
    ("cancel_after_first_response", cancel_after_first_response),
    ("custom_metadata", custom_metadata),
    ("status_code_and_message", status_code_and_message),
    ("special_status_message", special_status_message),
    ("unimplemented_method", unimplemented_method),
    ("unimplemented_service", unimplemented_service),
    ("client_compressed_unary", client_compressed_unary),
    ("server_compressed_unary", server_compressed_unary),
    ("client_compressed_streaming", client_compressed_streaming),
    ("server_compressed_streaming", server_compressed_streaming),
]


def usage():
    sys.stderr.write("usage: py_client.py --server_host=H --server_port=P "
                     "--test_case=NAME|all\n")
    return 2


def main(argv):
    opts = {"server_host": "127.0.0.1", "server_port": None, "test_case": None,
            "server_host_override": None, "use_tls": "false",
            "tls_ca_file": None, "tls_cert_file": None, "tls_key_file": None}
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            return usage()
        if "=" in a:
            k, v = a[2:].split("=", 1)
        elif a == "--use_tls" and (i + 1 == len(args)
                                   or args[i + 1].startswith("--")):
            k, v = "use_tls", "true"
        elif i + 1 < len(args):
            k, v = a[2:], args[i + 1]
            i += 1
        else:
            return usage()
        if k not in opts and k != "use_test_ca":
            return usage()
        opts[k] = v
        i += 1
    if opts["use_tls"] not in ("false", "0", "true", "1"):
        return usage()
    use_tls = opts["use_tls"] in ("true", "1")
    if (opts["tls_cert_file"] is None) != (opts["tls_key_file"] is None):
        return usage()
    if not opts["server_port"] or not opts["test_case"]:
        return usage()
    known = dict(CASES)
    if opts["test_case"] == "all":
        todo = CASES
    elif opts["test_case"] in known:
        todo = [(opts["test_case"], known[opts["test_case"]])]
    else:
        sys.stderr.write("FAIL %s: unknown test case\n" % opts["test_case"])
        return 2
    chopts = list(interop_pb.RAW_OPTIONS)
    if opts["server_host_override"]:
        chopts.append(("grpc.default_authority", opts["server_host_override"]))
    target = "%s:%s" % (opts["server_host"], opts["server_port"])
    if use_tls:
        def read(path):
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(opts["tls_ca_file"]),
            private_key=read(opts["tls_key_file"]),
            certificate_chain=read(opts["tls_cert_file"]))
        if opts["server_host_override"]:
            chopts.append(("grpc.ssl_target_name_override",
                           opts["server_host_override"]))
        channel = grpc.secure_channel(target, creds, options=chopts)
    else:
        channel = grpc.insecure_channel(target, options=chopts)
    failed = 0
    with channel as ch:
        stubs = Stubs(ch)
        for name, fn in todo:
            try:
                fn(stubs)
                if len(todo) > 1:
                    print("PASS %s" % name, flush=True)
            except Fail as e:
                sys.stderr.write("FAIL %s: %s\n" % (name, e))
                failed += 1
            except Exception as e:  # a bug in the case itself: still a FAIL
                sys.stderr.write("FAIL %s: %s: %s\n" % (name, type(e).__name__, e))
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    # Every call has a deadline, yet a run once outlived the script's case
    # timeout with nothing to show for it: if this process is still here
    # after INTEROP_PY_STACKS_AFTER seconds, print every thread's stack to
    # stderr (run_interop.sh shows it under the FAIL line).
    stacks_after = float(os.environ.get("INTEROP_PY_STACKS_AFTER", "0") or 0)
    if stacks_after > 0:
        faulthandler.dump_traceback_later(stacks_after, exit=False)
    sys.exit(main(sys.argv))
