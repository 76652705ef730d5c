#!/usr/bin/env python3
"""Scale benchmark of the catalog source (issue 18), standard library only.

    bench/scale/catalog.py SIGNPOST_BIN [--services 100000] [--endpoints 10]
                           [--timed 100] [--churn 900] [--gap 0.3]

Generates the catalog of bench/dns/gen.py (1,000 namespace files; 90 % ClusterIP
services with one EndpointSlice of ENDPOINTS endpoints, 10 % headless with
ENDPOINTS endpoints each), starts `signpost dns --workers 1` on it and reports
JSON: start to /ready, RSS at ready (VmRSS, VmHWM), then TIMED endpoint
changes (bench/dns/change.py: one address of `db-00000` replaced, the file
renamed into place, the answer polled every millisecond; GAP to GAP + 0.5 s
apart) with p50/p99 from the write to the new answer and signpost's CPU per
change (polls between changes included), then CHURN more endpoint
changes (one address of a headless service in another namespace file each,
written back to back, the last one waited for), and RSS after all of them.
KEEP_LOG=PATH copies signpost's log there (SIGNPOST_LOG_LEVEL, default
`info`, is its RUST_LOG). Everything on loopback; every wait has a deadline.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DNS = os.path.join(HERE, "..", "dns")


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("signpost")
    parser.add_argument("--services", type=int, default=100000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--timed", type=int, default=100)
    parser.add_argument("--churn", type=int, default=900)
    parser.add_argument("--gap", type=float, default=0.3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="signpost-scale.")
    server = None
    try:
        namespaces = max(1, args.services // 100)
        headless = args.services // 10
        subprocess.run(
            [sys.executable, os.path.join(DNS, "gen.py"), work, "--namespaces", str(namespaces),
             "--services", str((args.services - headless) // namespaces), "--headless", str(headless),
             "--headless-endpoints", str(args.endpoints), "--cluster-ip-endpoints", str(args.endpoints),
             "--queries", "10"],
            check=True, stdout=subprocess.DEVNULL, timeout=600,
        )
        catalog = os.path.join(work, "catalog")
        dns_port, admin_port = free_port(), free_port()
        corefile = os.path.join(work, "Corefile")
        with open(corefile, "w") as f:
            f.write(f"cluster.local:{dns_port} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n"
                    f"        catalog {catalog}\n    }}\n    ready 127.0.0.1:{admin_port}\n}}\n")
        os.sync()
        log = open(os.path.join(work, "signpost.log"), "w")
        started = time.monotonic()
        server = subprocess.Popen([args.signpost, "dns", "--conf", corefile, "--workers", "1"],
                                  stdout=log, stderr=log, env={**os.environ, "RUST_LOG": os.environ.get("SIGNPOST_LOG_LEVEL", "info"),
                                                                     "NO_COLOR": "1"})
        deadline = started + 600
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"signpost did not become ready (see {work})")
            time.sleep(0.02)
        ready = time.monotonic() - started
        cpu_ready = cpu_seconds(server.pid)
        time.sleep(1)  # the first build's leftovers are freed by the compiler's idle tick
        rss_ready, hwm_ready = status_kib(server.pid, "VmRSS"), status_kib(server.pid, "VmHWM")
        cpu_before_changes = cpu_seconds(server.pid)
        out = subprocess.run(
            [sys.executable, os.path.join(DNS, "change.py"), "--catalog", catalog, "--port", str(dns_port),
             "--changes", str(args.timed), "--gap", str(args.gap)],
            check=True, capture_output=True, text=True, timeout=1200,
        ).stdout
        cpu_per_change = (cpu_seconds(server.pid) - cpu_before_changes) / max(1, args.timed)
        latencies, writes = [], []
        for line in out.splitlines():
            fields = dict(item.split("=") for item in line.split())
            latencies.append(float(fields["t_seen"]) - float(fields["t_write"]))
            writes.append(float(fields["t_write"]))
        slowest = max(range(len(latencies)), key=latencies.__getitem__) if latencies else 0
        latencies.sort()
        pick = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000
        # Churn: one endpoint address replaced in other headless services' files, back to back.
        churned = 0
        last = None
        files = sorted(n for n in os.listdir(catalog) if n.endswith(".json") and n != "ns-0000.json")
        for i in range(args.churn):
            name = files[i % len(files)]
            path = os.path.join(catalog, name)
            document = json.load(open(path))
            slices = [item for item in document["items"] if item["kind"] == "EndpointSlice"
                      and item["metadata"]["name"].startswith("db-")]
            if not slices:
                continue
            address = f"10.251.{i // 250}.{i % 250 + 1}"
            slices[0]["endpoints"][0]["addresses"] = [address]
            staging = os.path.join(work, ".churn.json")
            with open(staging, "w") as f:
                json.dump(document, f, separators=(",", ":"))
            os.replace(staging, path)
            churned += 1
            last = (slices[0]["metadata"]["labels"]["kubernetes.io/service-name"],
                    slices[0]["metadata"]["namespace"], address)
        if last:
            service, namespace, address = last
            wanted = socket.inet_aton(address)
            deadline = time.monotonic() + 120
            qname = b"".join(bytes([len(l)]) + l.encode() for l in f"{service}.{namespace}.svc.cluster.local".split(".")) + b"\0"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.5)
                while True:
                    s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + qname + b"\x00\x01\x00\x01",
                             ("127.0.0.1", dns_port))
                    try:
                        if wanted in s.recv(65535)[12:]:
                            break
                    except socket.timeout:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("the last churn change never reached answers")
                    time.sleep(0.01)
        time.sleep(1)
        rss_end, hwm_end = status_kib(server.pid, "VmRSS"), status_kib(server.pid, "VmHWM")
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        print(json.dumps({
            "services": args.services, "endpoints": args.services * args.endpoints,
            "catalog_mib": round(sum(os.path.getsize(os.path.join(catalog, n)) for n in os.listdir(catalog)) / 2**20, 1),
            "start_to_ready_s": round(ready, 2), "cpu_to_ready_s": round(cpu_ready, 2),
            "rss_ready_mib": round(rss_ready / 1024, 1), "hwm_ready_mib": round(hwm_ready / 1024, 1),
            "timed_changes": len(latencies),
            "change_to_answer_ms": {"p50": round(pick(0.5), 1), "p99": round(pick(0.99), 1),
                                    "max": round(latencies[-1] * 1000, 1), "slowest_change": slowest,
                                    "slowest_written_unix": round(writes[slowest], 3) if writes else None},
            "signpost_cpu_per_change_ms": round(cpu_per_change * 1000, 1),
            "endpoint_changes_total": len(latencies) + churned,
            "rss_after_mib": round(rss_end / 1024, 1), "hwm_after_mib": round(hwm_end / 1024, 1),
            "rss_growth_pct": round(100 * (rss_end - rss_ready) / rss_ready, 1),
            "loadavg": load,
        }, indent=2))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if os.environ.get("KEEP_LOG") and os.path.exists(os.path.join(work, "signpost.log")):
            shutil.copy(os.path.join(work, "signpost.log"), os.environ["KEEP_LOG"])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
