#!/usr/bin/env python3
"""Scale benchmark of the kubernetes plugin against the fake API server.

Starts signpost-fake-apiserver seeded with SERVICES services (ENDPOINTS ready
endpoints each, 10 % headless), then `signpost dns` watching it; reports the
time from start to /ready, RSS at ready, and for CHANGES endpoint changes
(one address of a headless service replaced through the API) the time from
the API accepting the change to the new answer, and signpost's CPU per
change; then CHURN more endpoint changes (default 0) patched back to back,
the last one waited for, and RSS after all of them (issue 18: RSS after
1,000 changes). RELIST=1 then changes one endpoint, compacts the
history and drops every watch (those behind the change resume with 410
Gone and list again), and reports that change's time to answer, the
watches that expired and signpost's CPU until idle. KEEP_LOG=PATH copies signpost's log (RUST_LOG=info) there.
WATCH_LIST=0 starts the fake with the WatchList feature gate off (kube-apiserver
1.33's default): signpost's streaming list is refused and it lists in pages of
500, so that start can be measured too.
API_LATENCY_MS=N makes the fake wait N ms before it handles each API request
(its /fake/latency control), standing in for the round trip to a remote API
server and its storage read: a paged list pays it once per page.
Everything on loopback; every wait has a deadline.
"""

import json
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query_a(port, name, timeout=1.0):
    """A records of `name` as a sorted list of strings (None when no reply)."""
    qid = random.randrange(65536)
    question = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            return None
    count = struct.unpack(">H", data[6:8])[0]
    at = 12 + len(question) + 4
    out = []
    for _ in range(count):
        while data[at] != 0 and data[at] < 0xC0:
            at += data[at] + 1
        at += 2 if data[at] >= 0xC0 else 1
        rtype, _, _, length = struct.unpack(">HHIH", data[at : at + 10])
        at += 10
        if rtype == 1:
            out.append(".".join(str(b) for b in data[at : at + length]))
        at += length
    return sorted(out)


def main():
    services = int(os.environ.get("SERVICES", "100000"))
    endpoints = int(os.environ.get("ENDPOINTS", "10"))
    changes = int(os.environ.get("CHANGES", "100"))
    churn = int(os.environ.get("CHURN", "0"))
    api_latency_ms = int(os.environ.get("API_LATENCY_MS", "0"))
    fake_bin, signpost_bin = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="signpost-k8s-scale.")
    fake_log = open(os.path.join(work, "fake.log"), "w")
    started = time.monotonic()
    fake = subprocess.Popen(
        [fake_bin, "--dir", work, "--seed-services", str(services), "--seed-endpoints", str(endpoints)]
        + (["--control"] if os.environ.get("RELIST") or api_latency_ms else [])
        + (["--feature-gates", "WatchList=false"] if os.environ.get("WATCH_LIST") == "0" else []),
        stdout=subprocess.PIPE, stderr=fake_log, text=True,
    )
    try:
        url = fake.stdout.readline().split()[1]
        kubeconfig = fake.stdout.readline().split()[1]
        seeded = time.monotonic() - started
        if api_latency_ms:
            request = urllib.request.Request(
                f"{url}/fake/latency", data=json.dumps({"millis": api_latency_ms}).encode(), method="POST",
                headers={"Content-Type": "application/json"})
            tls = ssl.create_default_context(cafile=os.path.join(work, "ca.crt"))
            with urllib.request.urlopen(request, context=tls, timeout=10) as r:
                assert r.status == 200, r.status
        dns_port, admin_port = free_port(), free_port()
        corefile = os.path.join(work, "Corefile")
        with open(corefile, "w") as f:
            f.write(
                f"cluster.local:{dns_port} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n"
                f"        kubeconfig {kubeconfig}\n    }}\n    ready 127.0.0.1:{admin_port}\n}}\n"
            )
        log = open(os.path.join(work, "signpost.log"), "w")
        fake_cpu_before = cpu_seconds(fake.pid)
        t0 = time.monotonic()
        server = subprocess.Popen(
            [signpost_bin, "dns", "--conf", corefile, "--workers", "1"],
            stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"},
        )
        try:
            deadline = t0 + 600
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=2) as r:
                        if r.status == 200:
                            break
                except Exception:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("signpost did not become ready (see " + work + ")")
                time.sleep(0.05)
            ready = time.monotonic() - t0
            cpu_ready = cpu_seconds(server.pid)
            # The fake shares the machine: its CPU while signpost lists is part of the wall time.
            fake_cpu_ready = cpu_seconds(fake.pid) - fake_cpu_before
            # The first build's leftovers are freed after the compiler's idle tick.
            time.sleep(1)
            rss_ready, hwm_ready = rss_kib(server.pid), rss_kib(server.pid, "VmHWM")

            context = ssl.create_default_context(cafile=os.path.join(work, "ca.crt"))
            cpu_before = cpu_seconds(server.pid)
            latencies = []
            headless = [i for i in range(services) if i % 10 == 0]
            random.seed(7)
            for change in range(changes):
                index = random.choice(headless)
                ns, name = f"ns-{index // 100}", f"svc-{index % 100}"
                address = f"10.200.{change // 250}.{change % 250 + 1}"
                patch = {"endpoints": [{"addresses": [address], "conditions": {"ready": True}}]}
                request = urllib.request.Request(
                    f"{url}/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}-1",
                    data=json.dumps(patch).encode(), method="PATCH",
                    headers={"Content-Type": "application/merge-patch+json"},
                )
                with urllib.request.urlopen(request, context=context, timeout=10) as r:
                    assert r.status == 200, r.status
                accepted = time.monotonic()
                fqdn = f"{name}.{ns}.svc.cluster.local"
                while query_a(dns_port, fqdn) != [address]:
                    if time.monotonic() - accepted > 60:
                        raise SystemExit(f"change {change} never reached answers")
                    time.sleep(0.001)
                latencies.append(time.monotonic() - accepted)
            cpu_per_change = (cpu_seconds(server.pid) - cpu_before) / changes
            rss_after = rss_kib(server.pid)
            # Churn: more changes back to back; the last one is waited for.
            last = None
            for change in range(churn):
                index = headless[change % len(headless)]
                ns, name = f"ns-{index // 100}", f"svc-{index % 100}"
                address = f"10.201.{change // 250}.{change % 250 + 1}"
                patch = {"endpoints": [{"addresses": [address], "conditions": {"ready": True}}]}
                request = urllib.request.Request(
                    f"{url}/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}-1",
                    data=json.dumps(patch).encode(), method="PATCH",
                    headers={"Content-Type": "application/merge-patch+json"},
                )
                with urllib.request.urlopen(request, context=context, timeout=10) as r:
                    assert r.status == 200, r.status
                last = (f"{name}.{ns}.svc.cluster.local", address)
            if last:
                accepted = time.monotonic()
                while query_a(dns_port, last[0]) != [last[1]]:
                    if time.monotonic() - accepted > 120:
                        raise SystemExit("the last churn change never reached answers")
                    time.sleep(0.01)
                time.sleep(1)
            rss_churn, hwm_churn = rss_kib(server.pid), rss_kib(server.pid, "VmHWM")
            relist = None
            if os.environ.get("RELIST"):
                # One endpoint changed, then the history compacted and every
                # watch dropped: a watch whose last resourceVersion (event or
                # bookmark) is older than the change resumes with 410 Gone
                # and lists its resource again (as after an API server
                # upgrade). Timed from the change's 200 to the new answer;
                # signpost's CPU until it is idle again.
                cpu_before_relist = cpu_seconds(server.pid)
                index = headless[0]
                ns, name = f"ns-{index // 100}", f"svc-{index % 100}"
                address = "10.202.0.1"
                patch = {"endpoints": [{"addresses": [address], "conditions": {"ready": True}}]}
                request = urllib.request.Request(
                    f"{url}/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}-1",
                    data=json.dumps(patch).encode(), method="PATCH",
                    headers={"Content-Type": "application/merge-patch+json"},
                )
                with urllib.request.urlopen(request, context=context, timeout=10) as r:
                    assert r.status == 200, r.status
                accepted = time.monotonic()
                for action in ("compact", "drop-watches"):
                    request = urllib.request.Request(f"{url}/fake/{action}", data=b"{}", method="POST",
                                                     headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, context=context, timeout=10) as r:
                        assert r.status == 200, r.status
                fqdn = f"{name}.{ns}.svc.cluster.local"
                while query_a(dns_port, fqdn) != [address]:
                    if time.monotonic() - accepted > 120:
                        raise SystemExit("the change made before the relist never reached answers")
                    time.sleep(0.001)
                seen = time.monotonic() - accepted
                # Idle again: no CPU used over half a second.
                deadline = time.monotonic() + 120
                last = cpu_seconds(server.pid)
                while time.monotonic() < deadline:
                    time.sleep(0.5)
                    now = cpu_seconds(server.pid)
                    if now - last < 0.02:
                        break
                    last = now
                log.flush()
                with open(os.path.join(work, "signpost.log")) as f:
                    expired = f.read().count("watch expired (410 Gone)")
                relist = {"change_to_answer_ms": round(seen * 1000, 1), "watches_expired": expired,
                          "signpost_cpu_ms": round((cpu_seconds(server.pid) - cpu_before_relist) * 1000, 1)}
            with open("/proc/loadavg") as f:
                load = f.read().split()[:3]
            slowest = max(range(len(latencies)), key=latencies.__getitem__) if latencies else 0
            latencies.sort()
            p = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000
            print(json.dumps({
                "services": services, "endpoints": services * endpoints,
                "watch_list": os.environ.get("WATCH_LIST") != "0",
                "api_latency_ms": api_latency_ms,
                "fake_seed_seconds": round(seeded, 2),
                "start_to_ready_seconds": round(ready, 2),
                "rss_at_ready_mib": round(rss_ready / 1024, 1),
                "peak_rss_at_ready_mib": round(hwm_ready / 1024, 1),
                "changes": changes,
                "change_to_answer_ms": {"p50": round(p(0.5), 1), "p99": round(p(0.99), 1), "max": round(latencies[-1] * 1000, 1),
                                        "slowest_change": slowest},
                "signpost_cpu_per_change_ms": round(cpu_per_change * 1000, 1),
                "rss_after_changes_mib": round(rss_after / 1024, 1),
                "cpu_to_ready_s": round(cpu_ready, 2),
                "fake_cpu_to_ready_s": round(fake_cpu_ready, 2),
                "endpoint_changes_total": changes + churn,
                "rss_after_all_changes_mib": round(rss_churn / 1024, 1),
                "hwm_after_all_changes_mib": round(hwm_churn / 1024, 1),
                "rss_growth_pct": round(100 * (rss_churn - rss_ready) / rss_ready, 1),
                "relist": relist,
                "loadavg": load,
            }, indent=2))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.wait(timeout=60)
        if os.environ.get("KEEP_LOG"):
            shutil.copy(os.path.join(work, "signpost.log"), os.environ["KEEP_LOG"])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
