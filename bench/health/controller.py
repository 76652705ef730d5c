#!/usr/bin/env python3
"""The measuring side of bench/health/controller (Python 3 standard library only).

    controller.py measure --work DIR --api URL --replicas P1,P2,P3 --controller-metrics URL
                          --nginx-pid PID --services N --fail-services F --fail-per-service K
                          --deadline SECONDS
    controller.py report  --work DIR [--docs docs/performance.md] --command CMD

`measure` makes F x K endpoints fail (nginx answers 503 for their addresses:
WORK/nginx/fail.map, then SIGHUP), waits until the controller has published all of
them and every replica leaves them out of its answers, then makes them pass again
and waits until they are back. Meanwhile three threads sample:

- the verdict ConfigMap (GET every 10 ms): each new set and when it was first seen;
- each replica's answers for the F failing services (UDP, EDNS 4096, every 20 ms);

and writes WORK/apply.json: for every published set and replica, the time from the
set's first sighting in the API server to the replica's answers matching it (or a
later set of the same phase). Sampling bounds the resolution (10 ms + 20 ms).

`report` reads the env files the shell script wrote and apply.json, prints the
markdown section, and replaces the section between the markers in --docs.
"""

import argparse
import datetime
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.request

NAMESPACE = "bench"
CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/signpost-health-verdicts"
PUBLISHED_AT = "dns.aikernel.io/verdicts-published-at"
BEGIN = "<!-- bench/health/controller: begin (generated; edit notes below the end marker) -->"
END = "<!-- bench/health/controller: end -->"
REFERENCE = "interval 10s, timeout 3s, 3 failures, 1 success, removal delay 30s"


# === DNS ===


def query(name: str, qid: int) -> bytes:
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    opt = b"\0" + struct.pack("!HHIH", 41, 4096, 0, 0)  # EDNS(0), 4096-byte payload (RFC 6891)
    return header + qname + struct.pack("!HH", 1, 1) + opt


def skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:  # compression pointer (RFC 1035 4.1.4)
            return offset + 2
        offset += 1 + length


def truncated(data: bytes) -> bool:
    return bool(struct.unpack("!H", data[2:4])[0] & 0x0200)


def tcp_query(port: int, message: bytes):
    """One query over TCP (RFC 7766), for answers too large for UDP."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
        conn.sendall(struct.pack("!H", len(message)) + message)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = conn.recv(65535)
            if not chunk:
                return None
            data += chunk
        return data[2:]


def a_records(data: bytes) -> set:
    _, _, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
    offset = 12
    for _ in range(qd):
        offset = skip_name(data, offset) + 4
    out = set()
    for _ in range(an):
        offset = skip_name(data, offset)
        rtype, _, _, rdlength = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        if rtype == 1 and rdlength == 4:
            out.add(socket.inet_ntoa(data[offset : offset + 4]))
        offset += rdlength
    return out


class Replica:
    def __init__(self, port: int, names: list):
        self.port = port
        self.names = names
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.settimeout(1.0)
        self.qid = 0

    def answers(self):
        """Every A record of the watched names, or None when a query went unanswered."""
        seen = set()
        for name in self.names:
            self.qid = (self.qid + 1) & 0xFFFF
            self.socket.sendto(query(name, self.qid), ("127.0.0.1", self.port))
            try:
                while True:
                    data = self.socket.recv(65535)
                    if struct.unpack("!H", data[:2])[0] == self.qid:
                        break
            except socket.timeout:
                return None
            if truncated(data):  # over the server's UDP payload: ask again over TCP
                try:
                    data = tcp_query(self.port, query(name, self.qid))
                except OSError:
                    return None
                if data is None:
                    return None
            seen |= a_records(data)
        return seen


# === the verdict ConfigMap ===


def published(api: str):
    """(set of addresses, bytes of data.unhealthy, published-at in Unix seconds or None) or None."""
    try:
        with urllib.request.urlopen(api + CONFIGMAP, timeout=2) as response:
            body = json.load(response)
    except Exception:  # noqa: BLE001 - unreadable for now: no sample
        return None
    text = (body.get("data") or {}).get("unhealthy", "")
    stamp = ((body.get("metadata") or {}).get("annotations") or {}).get(PUBLISHED_AT)
    at = None
    if stamp:
        at = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
        at = at.replace(tzinfo=datetime.timezone.utc).timestamp()
    addresses = frozenset(line.rsplit("/", 1)[-1] for line in text.splitlines() if line)
    return addresses, len(text.encode()), at


def measure(args) -> None:
    fail_services = range(args.fail_services)
    names = [f"hc-{s:03d}.{NAMESPACE}.svc.cluster.local." for s in fail_services]
    all_watched = {f"127.1.{s}.{e + 1}" for s in fail_services for e in range(args.endpoints)}
    failing = frozenset(f"127.1.{s}.{e + 1}" for s in fail_services for e in range(args.fail_per_service))
    replicas = [Replica(int(p), names) for p in args.replicas.split(",")]
    for replica in replicas:
        got = replica.answers()
        if got != all_watched:
            sys.exit(f"replica on port {replica.port} does not answer every endpoint before the run")

    running = True
    sets = []  # (seen_at, frozenset, bytes)
    answers = [[] for _ in replicas]  # per replica: (seen_at, absent frozenset)

    def watch_configmap():
        while running:
            at = time.time()
            got = published(args.api)
            if got is not None and (not sets or sets[-1][1] != got[0]):
                # From the leader's decision (its published-at stamp, same clock) when it has one.
                sets.append((got[2] or at, got[0], got[1]))
            time.sleep(0.01)

    cycles = [[0, 0.0] for _ in replicas]  # per replica: samples, seconds spent sampling

    def watch_replica(index):
        replica = replicas[index]
        while running:
            at = time.time()
            got = replica.answers()
            cycles[index][0] += 1
            cycles[index][1] += time.time() - at
            if got is not None:
                absent = frozenset(all_watched - got)
                if not answers[index] or answers[index][-1][1] != absent:
                    answers[index].append((at, absent))
            time.sleep(0.02)

    started = time.time()
    threads = [threading.Thread(target=watch_configmap, daemon=True)]
    threads += [threading.Thread(target=watch_replica, args=(i,), daemon=True) for i in range(len(replicas))]
    for thread in threads:
        thread.start()

    fail_map = os.path.join(args.work, "nginx", "fail.map")

    def set_failing(addresses):
        with open(fail_map + ".new", "w") as f:
            f.writelines(f"{a} 1;\n" for a in sorted(addresses))
        os.replace(fail_map + ".new", fail_map)
        os.kill(args.nginx_pid, signal.SIGHUP)

    def wait(what, check):
        deadline = time.time() + args.deadline
        while not check():
            if time.time() > deadline:
                sys.exit(f"{what}: not within {args.deadline} s")
            time.sleep(0.05)

    def all_replicas(absent):
        return all(a and a[-1][1] == absent for a in answers)

    wait("every replica sampled", lambda: all(answers))
    failed_at = time.time()
    set_failing(failing)
    print(f"  {len(failing)} endpoints answer 503 from now", file=sys.stderr)
    wait("the failing endpoints published", lambda: sets and sets[-1][1] == failing)
    wait("the failing endpoints out of every replica", lambda: all_replicas(failing))
    removed_after = time.time() - failed_at
    recovered_at = time.time()
    set_failing(())
    print(f"  all removed after {removed_after:.1f} s; endpoints pass again", file=sys.stderr)
    wait("the empty set published", lambda: sets and not sets[-1][1])
    wait("the endpoints back in every replica", lambda: all_replicas(frozenset()))
    returned_after = time.time() - recovered_at
    time.sleep(0.1)
    running = False
    for thread in threads:
        thread.join()

    with open(os.path.join(args.work, "timeline.json"), "w") as f:
        json.dump(
            {
                "sets": [(at, sorted(v)) for at, v, _ in sets],
                "answers": [[(at, sorted(a)) for at, a in t] for t in answers],
            },
            f,
        )

    # For each published set and replica: the leader's published-at stamp (else the set's first
    # sighting in the API server) -> the replica's answers equal it or a later set of the same phase.
    boundary = next((i for i, (at, _, _) in enumerate(sets) if at >= recovered_at), len(sets))
    apply = []
    for index, timeline in enumerate(answers):
        for k, (at, verdicts, _) in enumerate(sets):
            if at < started:
                continue  # published before the run: not a change to apply
            end = boundary if k < boundary else len(sets)
            later = [s for _, s, _ in sets[k:end]]
            before = [a for t, a in timeline if t <= at]
            if before and before[-1] in later:
                apply.append(0.0)
                continue
            took = next((t - at for t, a in timeline if t >= at and a in later), None)
            if took is None:
                sys.exit(f"replica {index} never answered published set {k} ({len(verdicts)} entries)")
            apply.append(took)
    apply.sort()

    def pct(p):
        return apply[min(len(apply) - 1, max(0, int(len(apply) * p + 0.999999) - 1))]

    result = {
        "failing": len(failing),
        "published_sets": sum(1 for at, _, _ in sets if at >= started),
        "max_publish_bytes": max(b for _, _, b in sets),
        "samples": len(apply),
        "apply_p50_ms": pct(0.50) * 1000,
        "apply_p99_ms": pct(0.99) * 1000,
        "apply_max_ms": apply[-1] * 1000,
        "removed_after_s": removed_after,
        "sample_ms": 1000 * sum(c[1] for c in cycles) / max(1, sum(c[0] for c in cycles)) + 20,
        "returned_after_s": returned_after,
    }
    with open(os.path.join(args.work, "apply.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result), file=sys.stderr)


# === report ===


def env(path: str) -> dict:
    out = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                key, value = line.strip().split("=", 1)
                out[key] = value
    return out


def args_fail_services(run: dict) -> str:
    return run.get("fail_services", "?")


def report(args) -> None:
    run = env(os.path.join(args.work, "run.env"))
    apply = json.load(open(os.path.join(args.work, "apply.json")))
    ticks = float(run["ticks"])

    def cpu(prefix):
        return 100.0 * float(run[f"{prefix}_ticks"]) / ticks / float(run[f"{prefix}_wall"])

    def mib(kib):
        return float(kib) / 1024.0

    lines = [
        BEGIN,
        "",
        "## Health controller at scale",
        "",
        f"`{args.command}` on {run['date']} ({run['cpus']} CPUs, {run['cpu_model']}; a machine shared with other",
        "engineers' builds and tests, so CPU shares are upper bounds). One `signpost health` (release build) checks",
        f"{int(run['endpoints']):,} endpoints ({run['services']} headless Services, targets from a catalog; one nginx answers",
        f"every 127.1.X.Y address) with {'the reference timings' if run['timings'] == REFERENCE else 'the timings'} ({run['timings']}), elected by a Lease and publishing to",
        "the verdict ConfigMap in the fake API server (`signpost-fake-apiserver`, plain HTTP); three `signpost dns`",
        "replicas follow it with `healthcheck { verdicts kubernetes }`.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| controller CPU, steady state ({run['idle_wall']} s window, all healthy) | {cpu('idle'):.1f} % of one CPU ({float(run['idle_checks']) / float(run['idle_wall']):.0f} checks/s) |",
        f"| controller CPU, while {apply['failing']:,} endpoints fail and recover ({float(run['churn_wall']):.0f} s) | {cpu('churn'):.1f} % of one CPU |",
        f"| controller RSS: steady / peak | {mib(run['rss_kib_idle']):.1f} MiB / {mib(run['hwm_kib_end']):.1f} MiB |",
        f"| replica RSS (each, steady; {int(run['endpoints']):,} endpoints in its zone) | {run['replica_rss_mib']} MiB |",
        f"| publish size at {apply['failing']:,} unhealthy endpoints | {apply['max_publish_bytes']:,} bytes of `data.unhealthy` "
        f"({apply['max_publish_bytes'] / apply['failing']:.0f} bytes each; the 1 MiB limit is about "
        f"{(1 << 20) // max(1, apply['max_publish_bytes'] // apply['failing']):,} such entries) |",
        f"| replica apply time (the leader's `published-at` stamp -> the replica's answers), "
        f"{apply['samples']} samples ({apply['published_sets']} sets x 3 replicas) | p50 {apply['apply_p50_ms']:.0f} ms, "
        f"p99 {apply['apply_p99_ms']:.0f} ms, max {apply['apply_max_ms']:.0f} ms |",
        f"| controller publish latency (verdict change -> ConfigMap write acknowledged), mean of {run.get('publish_count', '?')} | {run.get('publish_mean_ms', '?')} ms |",
        f"| replica read latency (leader's write -> replica's read, `signpost_health_verdict_propagation_seconds`), mean of {run.get('propagation_count', '?')} | {run.get('propagation_mean_ms', '?')} ms |",
        f"| all {apply['failing']:,} failing endpoints out of every replica / back after recovery | "
        f"{apply['removed_after_s']:.1f} s / {apply['returned_after_s']:.1f} s |",
        "",
        "Apply times run from the moment the leader stamped a set (before its write to the API server) to the first",
        f"sample of a replica's answers that matches it or a later set. One sample asks a replica for all {args_fail_services(run)}",
        f"failing Services (UDP, again over TCP when truncated) and took {apply['sample_ms']:.0f} ms per replica on average including a",
        "20 ms pause, so a figure can be up to that much above the true one; sets replaced within the ConfigMap's 10 ms",
        "sampling are not counted. The removal time is the removal delay plus up to two intervals (the failure threshold",
        "is reached at the third failed check), as configured.",
        "",
        END,
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.docs:
        with open(args.docs) as f:
            text = f.read()
        if BEGIN in text and END in text:
            start = text.index(BEGIN)
            stop = text.index(END) + len(END) + 1
            text = text[:start] + section + text[stop:]
        else:
            text = text.rstrip("\n") + "\n\n" + section
        with open(args.docs, "w") as f:
            f.write(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--work", required=True)
    m.add_argument("--api", required=True)
    m.add_argument("--replicas", required=True)
    m.add_argument("--nginx-pid", type=int, required=True)
    m.add_argument("--endpoints", type=int, default=100)
    m.add_argument("--fail-services", type=int, default=20)
    m.add_argument("--fail-per-service", type=int, default=50)
    m.add_argument("--deadline", type=float, default=120)
    r = sub.add_parser("report")
    r.add_argument("--work", required=True)
    r.add_argument("--docs")
    r.add_argument("--command", required=True)
    args = parser.parse_args()
    if args.mode == "measure":
        measure(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
