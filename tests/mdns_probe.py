"""Send one legacy unicast mDNS query and say whether anything answered.

For tests/test_discovery.py: it asks HOST:5353 (from an ephemeral port, which makes a
responder answer by unicast) for PTR records of _meshedge._udp.local. and prints
{"reply": true|false} as one JSON line. It waits one second at most.

    python tests/mdns_probe.py HOST
"""

from __future__ import annotations

import json
import socket
import struct
import sys


def ptr_query(name: str) -> bytes:
    header = struct.pack("!6H", 0x1234, 0, 1, 0, 0, 0)  # id, flags, 1 question
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.rstrip(".").split("."))
    return header + labels + b"\x00" + struct.pack("!2H", 12, 1)  # PTR, IN


def main(host: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        sock.sendto(ptr_query("_meshedge._udp.local."), (host, 5353))
        try:
            sock.recvfrom(9000)
        except TimeoutError:
            print(json.dumps({"reply": False}), flush=True)
        else:
            print(json.dumps({"reply": True}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
