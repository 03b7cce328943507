"""Shared helpers for the Python interop client and server.

Generates the grpc.testing message classes with `protoc --python_out` into a
temporary directory (no grpc_tools needed) and loads them by file path: the
generated package path "grpc/testing/" would otherwise collide with the
installed `grpc` package.

Both sides run C-core with per-message decompression turned off
("grpc.per_message_decompression" = 0) so the application sees every
message exactly as it came off the wire and can tell whether it carried the
compressed flag.  decode() undoes gzip/deflate itself.  Python gRPC has no
other way to see a message's compressed flag, which the compression interop
cases need on both sides.
"""

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zlib

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))

SERVICE = "grpc.testing.TestService"
UNIMPL_SERVICE = "grpc.testing.UnimplementedService"

# Options for channels and servers: see the module comment.
RAW_OPTIONS = [("grpc.per_message_decompression", 0)]

STATUS_BY_VALUE = {sc.value[0]: sc for sc in grpc.StatusCode}


def _proto_dir():
    d = os.environ.get("INTEROP_PROTO_DIR")
    if d:
        return d
    # srcdir layout: test/interop/ -> tools/proto
    return os.path.normpath(os.path.join(HERE, "..", "..", "tools", "proto"))


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_messages():
    """Return (empty_pb2, messages_pb2)."""
    out = os.environ.get("INTEROP_PB_DIR")
    if not out:
        out = tempfile.mkdtemp(prefix="tri-interop-pb-")
        atexit.register(shutil.rmtree, out, True)
    src = _proto_dir()
    protos = ["grpc/testing/empty.proto", "grpc/testing/messages.proto"]
    gen = os.path.join(out, "grpc", "testing", "messages_pb2.py")
    if not os.path.exists(gen):
        protoc = os.environ.get("PROTOC", "protoc")
        try:
            subprocess.run([protoc, "-I" + src, "--python_out=" + out] + protos,
                           check=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            sys.stderr.write("interop: cannot run protoc on %s: %s\n" % (src, e))
            sys.exit(2)
    base = os.path.join(out, "grpc", "testing")
    empty = _load(os.path.join(base, "empty_pb2.py"), "tri_interop_empty_pb2")
    msgs = _load(os.path.join(base, "messages_pb2.py"),
                 "tri_interop_messages_pb2")
    return empty, msgs


def decompress(raw):
    """Return (bytes, compressed) for a message as received off the wire."""
    b = bytes(raw)
    if len(b) >= 2 and b[0] == 0x1F and b[1] == 0x8B:
        return zlib.decompress(b, 16 + zlib.MAX_WBITS), True
    # zlib-wrapped deflate: CMF 0x78 and a valid FCHECK.  A protobuf message
    # of ours never starts with 0x78 (field 15 is unused).
    if len(b) >= 2 and b[0] == 0x78 and ((b[0] << 8) | b[1]) % 31 == 0:
        try:
            return zlib.decompress(b), True
        except zlib.error:
            pass
    return b, False


def deserializer(cls):
    """Deserializer giving (message, compressed)."""
    def f(raw):
        data, compressed = decompress(raw)
        return cls.FromString(data), compressed
    return f


def serialize(msg):
    return msg.SerializeToString()
