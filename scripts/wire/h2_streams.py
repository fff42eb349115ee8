#!/usr/bin/env python3
"""Open one TLS connection without a client certificate and send N HEADERS
frames (new streams, never ended) as fast as possible; report what the
server sent back. Usage: h2_streams.py HOST PORT CA_PEM N (docs/server.md, "The gRPC port's limits")"""
import socket, ssl, struct, sys, threading

host, port, ca, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

def lit(index, value):  # literal without indexing, indexed name (index < 15)
    v = value.encode()
    return bytes([index]) + bytes([len(v)]) + v

block = (b"\x83" + b"\x87" + lit(4, "/cm.v1.Roles/List") + lit(1, "localhost")
         + b"\x0f\x10" + bytes([len("application/grpc")]) + b"application/grpc"
         + b"\x00\x02te\x08trailers")

ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["h2"])
raw = socket.create_connection((host, port))
s = ctx.wrap_socket(raw, server_hostname="localhost")
assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()

counts = {}
settings = {}
def reader():
    buf = b""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            buf += data
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                kind = buf[3]
                payload = buf[9:9 + length]
                if kind == 4 and not (buf[4] & 1):
                    for i in range(0, len(payload), 6):
                        k, v = struct.unpack(">HI", payload[i:i + 6])
                        settings[k] = v
                counts[kind] = counts.get(kind, 0) + 1
                buf = buf[9 + length:]
    except OSError:
        pass
t = threading.Thread(target=reader, daemon=True)
t.start()

s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
sent = 0
try:
    batch = []
    for i in range(n):
        batch.append(frame(1, 0x4, 2 * i + 1, block))
        if len(batch) == 500:
            s.sendall(b"".join(batch)); sent += len(batch); batch = []
    if batch:
        s.sendall(b"".join(batch)); sent += len(batch)
except OSError as e:
    print("send stopped:", e)
s.sendall(frame(6, 0, 0, b"\0" * 8))  # PING, to know the server read everything
t.join(timeout=20)
names = {0: "DATA", 1: "HEADERS", 3: "RST_STREAM", 4: "SETTINGS", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE"}
print("streams sent:", sent)
print("server SETTINGS:", {({3: "MAX_CONCURRENT_STREAMS", 6: "MAX_HEADER_LIST_SIZE"}).get(k, k): v for k, v in settings.items()})
print("frames from the server:", {names.get(k, k): v for k, v in sorted(counts.items())})
