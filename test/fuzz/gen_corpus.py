#!/usr/bin/env python3
"""Regenerate the seed corpus in corpus/<target>/ (small files, in tree).

    python3 gen_corpus.py [dir]

Frames and HPACK literal-without-indexing header blocks are built by hand,
mirroring what a gRPC peer sends.  Deterministic output.
"""
import os
import struct
import sys
import zlib
import gzip

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 1, 4, 1


def frame(t, flags, sid, payload=b""):
    n = len(payload)
    return bytes([n >> 16 & 255, n >> 8 & 255, n & 255, t, flags]) + struct.pack(">I", sid) + payload


def hpint(first, bits, v):
    mx = (1 << bits) - 1
    if v < mx:
        return bytes([first | v])
    out = [first | mx]
    v -= mx
    while v >= 128:
        out.append(0x80 | (v & 127))
        v >>= 7
    out.append(v)
    return bytes(out)


def lit(name, value, pattern=0x00):
    if isinstance(name, str):
        name = name.encode()
    if isinstance(value, str):
        value = value.encode()
    return bytes([pattern]) + hpint(0, 7, len(name)) + name + hpint(0, 7, len(value)) + value


def block(pairs):
    return b"".join(lit(k, v) for k, v in pairs)


def req(path, extra=()):
    return block([(":method", "POST"), (":scheme", "http"), (":path", path),
                  (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
                  ("te", "trailers")] + list(extra))


def msg(data, compressed=False):
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(data)) + data


def settings(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", i, v) for i, v in pairs))


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main(root):
    # ---- server: flag byte, then what a client sends ----
    d = os.path.join(root, "fuzz_server_conn")
    unary = frame(HEADERS, END_HEADERS, 1, req("/f.Svc/Unary")) + frame(DATA, END_STREAM, 1, msg(b"hello"))
    write(d, "unary", b"\x01" + unary)
    write(d, "unary_full_preface", b"\x00" + PREFACE + settings([(4, 1 << 20), (6, 16384)]) + frame(SETTINGS, ACK, 0) + unary)
    bidi = frame(HEADERS, END_HEADERS, 1, req("/f.Svc/Bidi", [("grpc-timeout", "2S"), ("x-md", "v"), ("x-md-bin", "AAEC")]))
    bidi += frame(DATA, 0, 1, msg(b"a") + msg(b"bb")) + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20))
    bidi += frame(DATA, END_STREAM, 1, msg(b"ccc"))
    write(d, "bidi", b"\x01" + bidi)
    gz = gzip.compress(b"x" * 200, mtime=0)
    comp = frame(HEADERS, END_HEADERS, 1, req("/f.Svc/Unary", [("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip,deflate")]))
    comp += frame(DATA, END_STREAM, 1, msg(gz, True))
    write(d, "gzip", b"\x01" + comp)
    stream = frame(HEADERS, END_HEADERS, 1, req("/f.Svc/Stream", [("grpc-accept-encoding", "gzip")])) + frame(DATA, END_STREAM, 1, msg(b""))
    write(d, "server_stream", b"\x01" + stream)
    fail = frame(HEADERS, END_HEADERS | END_STREAM, 1, req("/f.Svc/Fail"))
    fail += frame(HEADERS, END_HEADERS | END_STREAM, 3, req("/no.Such/Method"))
    fail += frame(HEADERS, END_HEADERS | END_STREAM, 5, req("/f.Svc/Unary", [("tri-service-group", "g1"), ("tri-service-version", "1.0")]))
    write(d, "fail_unknown_versioned", b"\x01" + fail)
    hb = req("/f.Svc/Bidi", [("grpc-timeout", "100m")])
    cont = frame(HEADERS, 0, 1, hb[:20]) + frame(CONTINUATION, 0, 1, hb[20:40]) + frame(CONTINUATION, END_HEADERS, 1, hb[40:])
    cont += frame(PING, 0, 0, b"12345678") + frame(DATA, 0, 1, msg(b"z")) + frame(RST, 0, 1, struct.pack(">I", 8))
    cont += frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0))
    write(d, "continuation_ping_rst_goaway", b"\x01" + cont)
    idx = frame(HEADERS, END_HEADERS, 1, b"\x83\x86" + lit(":path", "/f.Svc/Unary", 0x40) + lit(":authority", "a") + lit("content-type", "application/grpc", 0x40))
    idx += frame(DATA, END_STREAM, 1, msg(b"q"))
    idx += frame(HEADERS, END_HEADERS, 3, b"\x83\x86\xbf\xbe" + lit(":authority", "a")) + frame(DATA, END_STREAM, 3, msg(b"r"))
    write(d, "hpack_indexed", b"\x01" + idx)
    write(d, "bad_timeout_ctype", b"\x01" + frame(HEADERS, END_HEADERS | END_STREAM, 1, req("/f.Svc/Unary", [("grpc-timeout", "999999999S")]))
          + frame(HEADERS, END_HEADERS | END_STREAM, 3, block([(":method", "POST"), (":scheme", "http"), (":path", "/f.Svc/Unary"), (":authority", "a"), ("content-type", "text/plain")])))

    # ---- client: flag byte, then what a server sends on stream 1 ----
    d = os.path.join(root, "fuzz_client_conn")
    resp_h = block([(":status", "200"), ("content-type", "application/grpc"), ("x-h", "1")])
    trl = block([("grpc-status", "0"), ("grpc-message", "ok%20done"), ("x-t-bin", "AQID")])
    ok = frame(HEADERS, END_HEADERS, 1, resp_h) + frame(DATA, 0, 1, msg(b"resp1") + msg(b"resp2")) + frame(HEADERS, END_HEADERS | END_STREAM, 1, trl)
    write(d, "ok", b"\x01" + ok)
    write(d, "ok_own_settings", b"\x00" + settings([(3, 100), (4, 65535)]) + frame(SETTINGS, ACK, 0) + ok)
    to = frame(HEADERS, END_HEADERS | END_STREAM, 1, block([(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "5"), ("grpc-message", "not %E2%9C%93 found")]))
    write(d, "trailers_only", b"\x01" + to)
    gzr = frame(HEADERS, END_HEADERS, 1, block([(":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", "gzip")]))
    gzr += frame(DATA, 0, 1, msg(gzip.compress(b"y" * 300, mtime=0), True)) + frame(HEADERS, END_HEADERS | END_STREAM, 1, block([("grpc-status", "0")]))
    write(d, "gzip", b"\x01" + gzr)
    write(d, "http503", b"\x01" + frame(HEADERS, END_HEADERS | END_STREAM, 1, block([(":status", "503")])))
    write(d, "continue_then_ok", b"\x01" + frame(HEADERS, END_HEADERS, 1, block([(":status", "100")])) + ok)
    write(d, "goaway_rst", b"\x01" + frame(PING, 0, 0, b"abcdefgh") + frame(RST, 0, 1, struct.pack(">I", 7)) + frame(GOAWAY, 0, 0, struct.pack(">II", 0, 11) + b"too_many_pings"))
    write(d, "truncated_message", b"\x01" + frame(HEADERS, END_HEADERS, 1, resp_h) + frame(DATA, END_STREAM, 1, msg(b"abcdef")[:7]))

    # ---- deframer: [limit sel][chunk/enc sel] stream ----
    d = os.path.join(root, "fuzz_deframer")
    write(d, "plain", b"\x02\x05" + msg(b"hello") + msg(b"") + msg(b"world" * 10))
    write(d, "gzip", b"\x03\x01" + msg(gzip.compress(b"abc" * 100, mtime=0), True))
    co = zlib.compressobj(wbits=15)
    write(d, "deflate", b"\x03\x41" + msg(co.compress(b"def" * 100) + co.flush(), True))
    write(d, "too_long", b"\x01\x00" + msg(b"x" * 100))
    write(d, "bad_flags", b"\x02\x02" + b"\x02\x00\x00\x00\x01x")
    write(d, "raw_gzip_bomb", b"\x80\x00" + gzip.compress(b"\0" * 400000, mtime=0))

    # ---- headers: [selector] value ----
    d = os.path.join(root, "fuzz_headers")
    for i, v in enumerate([b"1S", b"99999999H", b"100m", b"5n", b"1x", b"123456789S"]):
        write(d, "timeout%d" % i, b"\x00" + v)
    write(d, "message", b"\x01" + b"a%20b%zz%E2%9C%93%")
    write(d, "md", b"\x02" + b"x-key\0value")
    write(d, "md_bin", b"\x03" + b"x-key\0AAEC,AQ==,!!")
    write(d, "b64", b"\x04" + b"SGVsbG8=")
    write(d, "status", b"\x05" + b"17")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"))
