"""Shared pieces of the reliability scripts (Python 3 standard library only).

A signpost process and its readiness, a 100 q/s UDP prober that records
every answer (share answered, longest gap between good answers), dnsperf at a
fixed rate as the background load, and one table row per scenario. Every
wait has a deadline; everything is on loopback.
"""

import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "kubernetes"))
from scale import rss_kib  # noqa: E402  (reused: VmRSS of a process)


def free_port():
    """A loopback port free for both UDP and TCP right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def encode_query(name, qtype=1, qid=None):
    qid = random.randrange(65536) if qid is None else qid
    question = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", qtype, 1)


def ask(port, name, qtype=1, timeout=1.0):
    """(rcode, answer count) of one UDP query, or None without a reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        packet = encode_query(name, qtype)
        s.sendto(packet, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(65535)
        except OSError:
            return None
    if len(data) < 12 or data[:2] != packet[:2]:
        return None
    return data[3] & 0x0F, struct.unpack(">H", data[6:8])[0]


def a_records(data):
    """The IPv4 addresses in the answer section of a reply (RFC 1035 4.1)."""
    def skip_name(i):
        while i < len(data):
            length = data[i]
            if length == 0:
                return i + 1
            if length & 0xC0 == 0xC0:  # a compression pointer ends the name (RFC 1035 4.1.4)
                return i + 2
            i += 1 + length
        raise ValueError("truncated name")
    found = []
    try:
        i = 12
        for _ in range(struct.unpack(">H", data[4:6])[0]):
            i = skip_name(i) + 4
        for _ in range(struct.unpack(">H", data[6:8])[0]):
            i = skip_name(i)
            rtype, _, _, length = struct.unpack(">HHIH", data[i:i + 10])
            i += 10
            if rtype == 1 and length == 4:
                found.append(socket.inet_ntoa(data[i:i + 4]))
            i += length
    except (ValueError, struct.error):
        return None
    return found


def wait_until(check, limit, what):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {limit} s waiting for {what}")


def wait_answer(port, name, limit=60, qtype=1):
    return wait_until(lambda: (ask(port, name, qtype) or (None, 0))[0] == 0
                      and (ask(port, name, qtype) or (0, 0))[1] > 0, limit, f"an answer for {name}")


class Process:
    """A child process with its output in a log file; killed on stop."""

    def __init__(self, args, logfile, env=None):
        self.args, self.logfile = args, logfile
        self.out = open(logfile, "ab")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=self.out,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()

    def text(self):
        with open(self.logfile, "rb") as f:
            return f.read().decode("utf-8", "replace")


def signpost_dns(binary, corefile, logfile, workers=1, stdout=None):
    """Starts `signpost dns`; `stdout` (a path) takes its standard output
    (the query log) apart from the log on standard error."""
    env = {**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"}
    args = [binary, "dns", "--conf", corefile, "--workers", str(workers)]
    if stdout is None:
        return Process(args, logfile, env)
    err = open(logfile, "ab")
    out = open(stdout, "ab")
    p = Process.__new__(Process)
    p.args, p.logfile, p.out = args, logfile, err
    p.proc = subprocess.Popen(args, stdout=out, stderr=err, env=env, start_new_session=True)
    p.pid = p.proc.pid
    return p


def http_get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except Exception:
        return None, ""


def wait_ready(admin_port, process, limit=120):
    def ready():
        if not process.alive():
            raise RuntimeError(f"process exited; log:\n{process.text()[-3000:]}")
        return http_get(f"http://127.0.0.1:{admin_port}/ready")[0] == 200
    wait_until(ready, limit, "/ready")


def metric(admin_port, series):
    status, text = http_get(f"http://127.0.0.1:{admin_port}/metrics")
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


class Prober:
    """Sends one A query every 1/rate s (names in turn) from one UDP socket
    and records each reply: `ok` means NOERROR with an answer."""

    def __init__(self, port, names, rate=100, inspect=None):
        """`inspect(reply bytes, time)`, when given, decides `ok` instead."""
        self.port, self.names, self.interval = port, names, 1.0 / rate
        self.inspect = inspect
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sent = {}       # id -> send time
        self.replies = []    # (time, ok)
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._receive, daemon=True)]

    def start(self):
        self.started = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def _send(self):
        qid, index, next_at = 0, 0, time.monotonic()
        while not self.stop_flag.is_set():
            qid = (qid + 1) % 65536
            name = self.names[index % len(self.names)]
            index += 1
            self.sent[qid] = time.monotonic()
            try:
                self.sock.sendto(encode_query(name, 1, qid), ("127.0.0.1", self.port))
            except OSError:
                pass
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()

    def _receive(self):
        while not self.stop_flag.is_set() or time.monotonic() < self.stopped + 1.0:
            ready, _, _ = select.select([self.sock], [], [], 0.1)
            if not ready:
                continue
            data, _ = self.sock.recvfrom(65535)
            if len(data) < 12:
                continue
            qid = struct.unpack(">H", data[:2])[0]
            sent = self.sent.pop(qid, None)
            if sent is None:
                continue
            now = time.monotonic()
            if self.inspect is not None:
                ok = self.inspect(data, now)
            else:
                ok = (data[3] & 0x0F) == 0 and struct.unpack(">H", data[6:8])[0] > 0
            self.replies.append((now, ok, now - sent))

    def stop(self):
        self.stopped = time.monotonic()
        self.stop_flag.set()
        for t in self.threads:
            t.join()
        answered = len(self.replies)
        sent = answered + len(self.sent)
        good = sorted(t for t, ok, _ in self.replies if ok)
        edges = [self.started] + good + [self.stopped]
        gap = max(b - a for a, b in zip(edges, edges[1:]))
        return {"sent": sent, "answered": answered, "ok": len(good), "gap_ms": round(gap * 1000)}


class Load:
    """dnsperf at a fixed rate for `seconds`, in the background."""

    def __init__(self, port, queries, rate, seconds, logfile, clients=16):
        self.logfile = logfile
        self.proc = subprocess.Popen(
            ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", queries, "-Q", str(rate),
             "-l", str(seconds), "-c", str(clients), "-t", "2", "-q", "500"],
            stdout=open(logfile, "w"), stderr=subprocess.STDOUT, start_new_session=True)

    def result(self, limit=120):
        self.proc.wait(timeout=limit)
        with open(self.logfile) as f:
            text = f.read()
        def number(label):
            for line in text.splitlines():
                if line.strip().startswith(label):
                    return int(line.split(":", 1)[1].split()[0])
            return 0
        sent, completed = number("Queries sent"), number("Queries completed")
        return {"sent": sent, "completed": completed,
                "share": completed / sent if sent else 0.0}

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=30)


def pct(a, b):
    return f"{100.0 * a / b:.3f} %" if b else "n/a"


def row(scenario, load, fault, expected, happened, passed, command):
    """One table row on standard output, and the same as JSON on stderr."""
    cells = [scenario, load, fault, expected, happened, "pass" if passed else "**FAIL**", f"`{command}`"]
    print("| " + " | ".join(cells) + " |", flush=True)
    log(json.dumps({"scenario": scenario, "passed": passed, "happened": happened}))
    return passed
