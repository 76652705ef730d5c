#!/usr/bin/env python3
"""Changes one endpoint on disk and times until the answer changes (standard library only).

    change.py --catalog DIR --port P [--changes 5]

Each change rewrites the catalog file holding headless service `db-00000` in
namespace `ns-0000` with the address of its first endpoint replaced
(10.250.0.N), written beside the catalog and renamed into place (atomic, as a
ConfigMap update is), then asks signpost for `db-00000.ns-0000.svc.cluster.local A`
over UDP every millisecond until the new address is in the answer. A change
follows the previous answer by GAP to GAP + 0.5 s (random), so it falls at a
random point of the 250 ms poll; the gap (3 s) also leaves the compiler time
to free the snapshot it replaced, which it does before polling again.

The poll that sees a change is observed without touching signpost: an inotify
watch on the catalog directory reports every open in it. The watcher's poll
lists the directory (an open of the directory itself) and a reload opens every
file, so the first file open after the write is the poll that saw it.

Prints one line per change: `change=N t_write=UNIX t_detect=UNIX t_seen=UNIX
poll_gap=SECONDS`, where t_write is taken right after the rename and poll_gap is
the longest time between two directory listings in the second before the write
(250 ms when the watcher polls on time).
"""

import argparse
import ctypes
import json
import os
import random
import socket
import struct
import time

NAMESPACE = "ns-0000"
SERVICE = "db-00000"
QNAME = f"{SERVICE}.{NAMESPACE}.svc.cluster.local"


IN_OPEN = 0x20
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000


class Opens:
    """Opens of the catalog directory and the files in it, from inotify."""

    def __init__(self, directory: str):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, directory.encode(), IN_OPEN) < 0:
            raise SystemExit(f"inotify on {directory} failed: errno {ctypes.get_errno()}")
        self.listings = []  # times the directory itself was opened (a poll)
        self.files = []  # times a file in it was opened (a load)

    def drain(self) -> None:
        now = time.time()
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16: offset + 16 + length].rstrip(b"\0")
                offset += 16 + length
                if mask & IN_ISDIR or not name:
                    self.listings.append(now)
                elif name.endswith(b".json"):
                    self.files.append(now)


def query(qid: int) -> bytes:
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    name = b"".join(bytes([len(label)]) + label.encode() for label in QNAME.split(".")) + b"\0"
    return header + name + struct.pack(">HH", 1, 1)


def answered_with(sock: socket.socket, qid: int, address: bytes) -> bool:
    sock.send(query(qid))
    try:
        reply = sock.recv(4096)
    except socket.timeout:
        return False
    # The A records' RDATA are the last bytes of each record; a byte search is
    # enough here because the new address occurs nowhere else in the answer.
    return reply[:2] == struct.pack(">H", qid) and address in reply[12:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between changes (plus up to 0.5 s)")
    args = parser.parse_args()

    path = os.path.join(args.catalog, f"{NAMESPACE}.json")
    document = json.load(open(path))
    endpoint_slice = next(
        item for item in document["items"]
        if item["kind"] == "EndpointSlice" and item["metadata"]["name"] == f"{SERVICE}-1"
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", args.port))
    sock.settimeout(0.5)
    rng = random.Random(7)
    opens = Opens(args.catalog)
    qid = 0
    for change in range(1, args.changes + 1):
        pause_until = time.time() + args.gap + rng.random() * 0.5
        while time.time() < pause_until:
            opens.drain()
            time.sleep(0.001)
        before = time.time()
        recent = [t for t in opens.listings if t > before - 1.0]
        poll_gap = max((b - a for a, b in zip(recent, recent[1:])), default=float("nan"))
        new_address = f"10.250.0.{change}"
        endpoint_slice["endpoints"][0]["addresses"] = [new_address]
        staging = os.path.join(os.path.dirname(os.path.abspath(args.catalog)), f".{NAMESPACE}.json.new")
        with open(staging, "w") as f:
            json.dump(document, f, separators=(",", ":"))
        os.replace(staging, path)
        t_write = time.time()
        wanted = socket.inet_aton(new_address)
        deadline = t_write + 120
        detected = None
        while True:
            opens.drain()
            if detected is None:
                detected = next((t for t in opens.files if t > t_write), None)
            qid = (qid + 1) & 0xFFFF
            if answered_with(sock, qid, wanted):
                t_seen = time.time()
                break
            if time.time() > deadline:
                raise SystemExit(f"change {change}: {new_address} not served after 120 s")
            time.sleep(0.001)
        opens.drain()
        detected = detected or next((t for t in opens.files if t > t_write), t_seen)
        print(f"change={change} t_write={t_write:.6f} t_detect={detected:.6f} t_seen={t_seen:.6f} "
              f"poll_gap={poll_gap:.3f}", flush=True)


if __name__ == "__main__":
    main()
