#!/usr/bin/env python3
"""Open N TCP connections to HOST:PORT that never start TLS; hold them
until stdin closes. Usage: stalled_handshakes.py HOST PORT N (docs/server.md)"""
import resource, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, n + 100))
held, failed = [], 0
for _ in range(n):
    try:
        held.append(socket.create_connection((host, port), timeout=5))
    except OSError:
        failed += 1
print("held", len(held), "failed", failed, flush=True)
sys.stdin.read()
