#!/usr/bin/env python3
"""Abuse of `signpost dns` (issue 19): hostile traffic while a real client
queries. Prints one Markdown table row per scenario (docs/reliability.md).

    abuse.py SIGNPOST_BIN [SCENARIO...]

Scenarios:
  datagrams  random and crafted datagrams (garbage, truncated headers, counts
             that lie, compression loops and forward pointers, labels over 63
             octets, names over 255 octets, 65,507-byte messages, responses,
             unknown opcodes, EDNS oddities) at FLOOD_RATE/s for SECONDS;
  any        an ANY flood at RATE q/s (dnsperf) for SECONDS;
  tcp        SLOW_CLIENTS (5,000) TCP clients that connect and stall (half
             silent, half mid-message) while TCP and UDP queries go on.
Pass: the prober's share of good answers ≥ 99 %, the server alive.
Environment: RATE (50000), FLOOD_RATE (50000), SECONDS (20), SLOW_CLIENTS (5000).
"""

import os
import random
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from common import (ROOT, Load, Prober, encode_query, free_port, loadavg, log, open_fds, pct, row, rss_kib,
                    signpost_dns, wait_answer, wait_ready)

RATE = int(os.environ.get("RATE", "50000"))
FLOOD_RATE = int(os.environ.get("FLOOD_RATE", "50000"))
SECONDS = int(os.environ.get("SECONDS_PER_SCENARIO", os.environ.get("SECONDS", "20")))
SLOW_CLIENTS = int(os.environ.get("SLOW_CLIENTS", "5000"))
EVICT_IDLE = 1.0  # crates/dns/src/tcp.rs EVICT_IDLE
COMMAND = "bench/reliability/run abuse"


def name_wire(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"


def crafted(rng):
    """One hostile datagram."""
    qid = rng.randrange(65536)
    header = lambda flags=0x0100, qd=1, an=0, ns=0, ar=0: struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)
    kind = rng.randrange(14)
    if kind == 0:  # random bytes
        return os.urandom(rng.randrange(1, 600))
    if kind == 1:  # truncated header
        return os.urandom(rng.randrange(1, 12))
    if kind == 2:  # counts that lie
        return header(qd=rng.choice([0, 2, 65535]), an=65535, ar=65535) + name_wire("svc-001.ns-0000.svc.cluster.local") + b"\0\1\0\1"
    if kind == 3:  # compression loop: the name points at itself
        return header() + b"\xc0\x0c" + b"\0\1\0\1"
    if kind == 4:  # two pointers pointing at each other
        return header() + b"\x01a\xc0\x0e" + b"\xc0\x0c" + b"\0\1\0\1"
    if kind == 5:  # forward pointer past the end
        return header() + b"\xc3\xff" + b"\0\1\0\1"
    if kind == 6:  # a label over 63 octets (length byte 0x7f is not a pointer, not a label)
        return header() + b"\x7f" + b"a" * 127 + b"\0\0\1\0\1"
    if kind == 7:  # a name over 255 octets
        return header() + b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\0\0\1\0\1"
    if kind == 8:  # a 65,507-byte message
        return header() + name_wire("svc-001.ns-0000.svc.cluster.local") + b"\0\1\0\1" + os.urandom(65507 - 60)
    if kind == 9:  # a response (QR set): must never be answered (no reflection loops)
        return header(flags=0x8180) + name_wire("svc-001.ns-0000.svc.cluster.local") + b"\0\1\0\1"
    if kind == 10:  # unknown opcodes
        return header(flags=(rng.randrange(3, 16) << 11)) + name_wire("x.cluster.local") + b"\0\1\0\1"
    if kind == 11:  # EDNS: two OPT records, absurd sizes, unknown version, truncated option
        opt = b"\0\0\x29" + struct.pack(">H", rng.choice([0, 1, 512, 65535])) + bytes([0, rng.choice([0, 1, 255]), 0x80, 0])
        option = rng.choice([b"\0\0", b"\0\x04\0\x10abc", b"\0\x0a\0\x08" + os.urandom(8)])
        rdata = struct.pack(">H", len(option)) + option
        return header(ar=2) + name_wire("svc-001.ns-0000.svc.cluster.local") + b"\0\1\0\1" + opt + rdata + opt + rdata
    if kind == 12:  # a valid long name (253 octets) that does not exist
        labels = ["a" * 61] * 3 + ["cluster", "local"]
        name = ".".join(labels)[-253:].lstrip(".")
        return header() + name_wire(name) + b"\0\1\0\1"
    # random mutation of a good query
    good = bytearray(encode_query("svc-002.ns-0000.svc.cluster.local", rng.choice([1, 28, 33, 255, 65535])))
    for _ in range(rng.randrange(1, 6)):
        good[rng.randrange(len(good))] = rng.randrange(256)
    return bytes(good)


def flood(port, seconds, rate, stop, counter):
    rng = random.Random(19)
    pool = [crafted(rng) for _ in range(4096)]
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    for s in socks:
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    end = time.monotonic() + seconds
    start = time.monotonic()
    sent = 0
    while time.monotonic() < end and not stop.is_set():
        for _ in range(500):
            try:
                socks[sent % 8].sendto(pool[sent % 4096], ("127.0.0.1", port))
            except OSError:
                pass
            sent += 1
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
        # Drain replies so our own buffers never block.
        for s in socks:
            try:
                while True:
                    s.recv(65535)
            except OSError:
                pass
    counter.append(sent)


class Server:
    def __init__(self, binary, work, cluster_catalog):
        self.port, self.admin = free_port(), free_port()
        self.conf = os.path.join(work, "Corefile")
        with open(self.conf, "w") as f:
            f.write(f"cluster.local:{self.port} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n"
                    f"        catalog {cluster_catalog}\n    }}\n    prometheus 127.0.0.1:{self.admin}\n"
                    f"    ready 127.0.0.1:{self.admin}\n}}\n")
        self.proc = signpost_dns(binary, self.conf, os.path.join(work, "signpost.log"), workers=2)
        wait_ready(self.admin, self.proc)
        wait_answer(self.port, "svc-001.ns-0000.svc.cluster.local")


def datagrams(server, names, queries):
    stop, counter = threading.Event(), []
    rss0 = rss_kib(server.proc.pid)
    probe = Prober(server.port, names).start()
    thread = threading.Thread(target=flood, args=(server.port, SECONDS, FLOOD_RATE, stop, counter))
    t0 = time.monotonic()
    thread.start()
    thread.join()
    elapsed = time.monotonic() - t0
    stats = probe.stop()
    alive = server.proc.alive()
    rss1 = rss_kib(server.proc.pid) if alive else 0
    achieved = counter[0] / elapsed if counter else 0
    ok = alive and stats["ok"] / max(1, stats["sent"]) >= 0.99
    return row("random and crafted datagrams", f"{achieved:,.0f} datagrams/s for {SECONDS} s (14 kinds); uptime {loadavg()}",
               "garbage, lying counts, compression loops, labels > 63, names > 255, 65,507-byte messages, responses, "
               "unknown opcodes, EDNS oddities, mutated queries",
               "a real client's share answered ≥ 99 %; no crash",
               f"probe {stats['ok']}/{stats['sent']} good ({pct(stats['ok'], stats['sent'])}), longest gap "
               f"{stats['gap_ms']} ms; RSS {rss0 // 1024} → {rss1 // 1024} MiB", ok, COMMAND + " datagrams")


def any_flood(server, names, work):
    queries = os.path.join(work, "any.txt")
    with open(queries, "w") as f:
        f.write("".join(f"svc-{i:03d}.ns-{n:04d}.svc.cluster.local ANY\n" for n in range(10) for i in range(100)))
        f.write("cluster.local ANY\n" * 100)
    load = Load(server.port, queries, RATE, SECONDS, os.path.join(work, "dnsperf-any.txt"))
    probe = Prober(server.port, names).start()
    result = load.result()
    stats = probe.stop()
    alive = server.proc.alive()
    ok = alive and stats["ok"] / max(1, stats["sent"]) >= 0.99
    return row("ANY flood", f"{RATE:,} q/s of ANY (dnsperf: {pct(result['completed'], result['sent'])} answered), "
               f"{SECONDS} s; uptime {loadavg()}",
               "ANY for every service name and the apex",
               "a real client's share answered ≥ 99 %; no crash",
               f"probe {stats['ok']}/{stats['sent']} good ({pct(stats['ok'], stats['sent'])}), longest gap {stats['gap_ms']} ms",
               ok, COMMAND + " any")


def tcp_query(port, name):
    """True for a good answer over a fresh TCP connection; False when the
    server closes the connection (shed at its connection limit) or fails."""
    message = encode_query(name)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(struct.pack(">H", len(message)) + message)
            head = s.recv(2, socket.MSG_WAITALL)
            if len(head) < 2:
                return False
            data = s.recv(struct.unpack(">H", head)[0], socket.MSG_WAITALL)
    except OSError:
        return False
    return len(data) >= 12 and (data[3] & 0x0F) == 0 and struct.unpack(">H", data[6:8])[0] > 0


def slow_tcp(server, names):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = SLOW_CLIENTS + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
    fds0, rss0 = open_fds(server.proc.pid), rss_kib(server.proc.pid)
    clients, refused = [], 0
    probe = Prober(server.port, names).start()
    t0 = time.monotonic()
    for i in range(SLOW_CLIENTS):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", server.port))
        except BlockingIOError:
            pass
        except OSError:
            refused += 1
            s.close()
            continue
        clients.append(s)
    # Half send part of a length prefix and a partial message, then stall.
    for i, s in enumerate(clients):
        if i % 2:
            try:
                s.send(b"\x00\x40" + b"\x12\x34\x01")
            except OSError:
                pass
    # TCP and UDP queries while the slow clients hold their connections.
    # The server gives a new connection the slot of one idle for 1 s
    # (crates/dns tcp::EVICT_IDLE); queries from then on must be answered.
    good = total = late_good = late_total = 0
    first_good = None
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        total += 1
        late = time.monotonic() - t0 >= EVICT_IDLE + 0.5
        answered = tcp_query(server.port, names[total % len(names)])
        good += answered
        if late:
            late_total += 1
            late_good += answered
        if answered and first_good is None:
            first_good = time.monotonic() - t0
        time.sleep(0.05)
    fds1, rss1 = open_fds(server.proc.pid), rss_kib(server.proc.pid)
    stats = probe.stop()
    for s in clients:
        s.close()
    alive = server.proc.alive()
    ok = alive and stats["ok"] / max(1, stats["sent"]) >= 0.99 and late_good / max(1, late_total) >= 0.99
    since = "never" if first_good is None else f"{first_good:.1f} s"
    return row(f"{SLOW_CLIENTS:,} slow TCP clients",
               f"{len(clients):,} connections held {SECONDS} s (half silent, half mid-message); uptime {loadavg()}",
               "slowloris on the DNS TCP port",
               "UDP answered ≥ 99 %; fresh TCP queries answered ≥ 99 % once the slow clients have been idle "
               "1.5 s (the server evicts connections idle 1 s); no crash",
               f"TCP {late_good}/{late_total} ({pct(late_good, late_total)}) from 1.5 s on, {good}/{total} in all, first good TCP answer {since} after the clients connected; UDP probe {pct(stats['ok'], stats['sent'])}, "
               f"gap {stats['gap_ms']} ms; server fds {fds0} → {fds1}, RSS {rss0 // 1024} → {rss1 // 1024} MiB",
               ok, COMMAND + " tcp")


def main():
    binary = sys.argv[1]
    wanted = sys.argv[2:] or ["datagrams", "any", "tcp"]
    work = tempfile.mkdtemp(prefix="signpost-abuse.")
    failed = []
    try:
        cluster = os.path.join(work, "cluster")
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "dns", "gen.py"), cluster,
                        "--namespaces", "10", "--services", "100", "--headless", "100", "--queries", "1000"],
                       check=True, stdout=subprocess.DEVNULL)
        names = [f"svc-{i:03d}.ns-0000.svc.cluster.local" for i in range(20)]
        for name in wanted:
            log(f"scenario {name}")
            server = Server(binary, os.path.join(work), os.path.join(cluster, "catalog"))
            try:
                if name == "datagrams":
                    ok = datagrams(server, names, None)
                elif name == "any":
                    ok = any_flood(server, names, work)
                else:
                    ok = slow_tcp(server, names)
            except Exception as error:
                ok = row(name, "", "", "", f"error: {error}"[:300], False, COMMAND + " " + name)
            finally:
                server.proc.kill()
            if not ok:
                failed.append(name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        sys.exit(f"failed: {' '.join(failed)}")


if __name__ == "__main__":
    main()
