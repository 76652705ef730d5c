#!/usr/bin/env python3
"""Faults under load for `signpost dns` (issue 19): one scenario at a time,
dnsperf at RATE q/s in the background and a 100 q/s prober measuring the
answered share and the longest gap between good answers while the fault
happens. Prints one Markdown table row per scenario (docs/reliability.md).

    faults.py SIGNPOST_BIN FAKE_APISERVER_BIN [SCENARIO...]

Scenarios: upstream reload catalog replica querylog kubernetes etcd health provider.
Environment: RATE (dnsperf q/s, 50000), SECONDS (load per scenario, 20),
FAULT_AT (seconds into the load, 5), WORK (a directory to keep).
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from common import (ROOT, Load, Process, Prober, a_records, ask, encode_query, free_port, loadavg, log,
                    metric, pct, row, signpost_dns, wait_answer, wait_ready, wait_until)

RATE = int(os.environ.get("RATE", "50000"))
SECONDS = int(os.environ.get("SECONDS_PER_SCENARIO", os.environ.get("SECONDS", "20")))
FAULT_AT = float(os.environ.get("FAULT_AT", "5"))
COMMAND = "bench/reliability/run faults"


class Cluster:
    """The generated catalog (bench/dns/gen.py: 10 namespaces x 100
    ClusterIP services + 100 headless) and its dnsperf input."""

    def __init__(self, work):
        self.dir = os.path.join(work, "cluster")
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "dns", "gen.py"), self.dir,
                        "--namespaces", "10", "--services", "100", "--headless", "100",
                        "--queries", "20000"], check=True, stdout=subprocess.DEVNULL)
        self.catalog = os.path.join(self.dir, "catalog")
        self.queries = os.path.join(self.dir, "queries-a.txt")
        # ns-0000's services: the catalog scenario breaks that file.
        self.names = [f"svc-{i:03d}.ns-0000.svc.cluster.local" for i in range(20)]
        self.other = [f"svc-{i:03d}.ns-0001.svc.cluster.local" for i in range(20)]


def corefile(path, port, admin, catalog=None, extra_server="", extra_block=""):
    text = f"cluster.local:{port} {{\n    bind 127.0.0.1\n"
    if catalog:
        text += f"    kubernetes cluster.local {{\n        catalog {catalog}\n    }}\n"
    text += f"{extra_block}    prometheus 127.0.0.1:{admin}\n    ready 127.0.0.1:{admin}\n}}\n{extra_server}"
    with open(path, "w") as f:
        f.write(text)
    return path


class Scenario:
    def __init__(self, name, work, binary):
        self.name, self.binary = name, binary
        self.work = os.path.join(work, name)
        os.makedirs(self.work, exist_ok=True)
        self.port, self.admin = free_port(), free_port()
        self.processes = []

    def start(self, args_or_process):
        self.processes.append(args_or_process)
        return args_or_process

    def signpost(self, conf, name="signpost", admin=None, stdout=None):
        p = signpost_dns(self.binary, conf, os.path.join(self.work, f"{name}.log"), stdout=stdout)
        self.processes.append(p)
        wait_ready(admin or self.admin, p)
        return p

    def measure(self, names, queries, fault, recover=None, fault_seconds=5.0):
        """Load + prober; `fault()` at FAULT_AT, `recover()` fault_seconds
        later; returns (prober stats, dnsperf stats, seconds to recover)."""
        load = Load(self.port, queries, RATE, SECONDS, os.path.join(self.work, "dnsperf.txt"))
        probe = Prober(self.port, names).start()
        started = time.monotonic()
        recovered = None
        try:
            time.sleep(FAULT_AT)
            fault()
            time.sleep(fault_seconds)
            if recover:
                recovered = recover()
            remaining = started + SECONDS + 1 - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
        finally:
            stats = probe.stop()
            load_stats = load.result()
        return stats, load_stats, recovered

    def stop(self):
        for p in reversed(self.processes):
            p.kill(signal.SIGTERM)


def describe_load(load):
    return f"{RATE:,} q/s dnsperf ({pct(load['completed'], load['sent'])} answered), {SECONDS} s; uptime {loadavg()}"


def happened(stats, extra=""):
    text = (f"probe {stats['ok']}/{stats['sent']} good ({pct(stats['ok'], stats['sent'])}), "
            f"longest gap {stats['gap_ms']} ms")
    return text + (f"; {extra}" if extra else "")


# === scenarios ===

def upstream(work, binary, cluster):
    """Knot upstream SIGKILLed under load, restarted 5 s later."""
    s = Scenario("upstream", work, binary)
    up = free_port()
    zone = os.path.join(s.work, "up.test.zone")
    with open(zone, "w") as f:
        f.write("$ORIGIN up.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\nns A 127.0.0.1\n")
        f.write("".join(f"h{i} A 192.0.2.{i + 1}\n" for i in range(200)))
    os.makedirs(os.path.join(s.work, "knot"), exist_ok=True)
    conf = os.path.join(s.work, "knot.conf")
    with open(conf, "w") as f:
        f.write(f"server:\n    listen: 127.0.0.1@{up}\n    rundir: {s.work}/knot\n"
                f"database:\n    storage: {s.work}/knot\nlog:\n  - target: stderr\n    any: warning\n"
                f"zone:\n  - domain: up.test.\n    file: {zone}\n")
    knot = lambda: s.start(Process(["knotd", "-c", conf], os.path.join(s.work, "knot.log")))
    kn = knot()
    wait_until(lambda: ask(up, "h1.up.test") is not None, 30, "knotd")
    cf = corefile(os.path.join(s.work, "Corefile"), s.port, s.admin, cluster.catalog,
                  extra_server=f".:{s.port} {{\n    bind 127.0.0.1\n    forward . 127.0.0.1:{up}\n    cache 300\n}}\n")
    s.signpost(cf)
    names = [f"h{i}.up.test" for i in range(20)] + cluster.names[:5]
    for n in names:
        wait_answer(s.port, n)
    state = {}

    def fault():
        kn.kill()

    def recover():
        state["knot"] = knot()
        t0 = time.monotonic()
        # A name never asked before needs the upstream itself.
        wait_answer(s.port, "h150.up.test", limit=60)
        return time.monotonic() - t0

    stats, load, recovered = s.measure(names, cluster.queries, fault, recover)
    s.stop()
    ok = stats["ok"] == stats["sent"] and recovered is not None and recovered < 10
    return row("upstream (Knot) killed, restarted after 5 s", describe_load(load),
               "SIGKILL of the forward upstream; restart 5 s later",
               "cached and cluster names keep answering; a new name resolves soon after the restart",
               happened(stats, f"new name answered {recovered:.2f} s after the restart"), ok, COMMAND + " upstream")


def reload(work, binary, cluster):
    s = Scenario("reload", work, binary)
    cf = corefile(os.path.join(s.work, "Corefile"), s.port, s.admin, cluster.catalog,
                  extra_block="    reload 2s\n")
    good = open(cf).read()
    s.signpost(cf)

    def fault():
        broken = good.replace("    reload 2s\n", "    reload 2s\n    no_such_plugin here\n    kubernetes {\n")
        tmp = cf + ".tmp"
        with open(tmp, "w") as f:
            f.write(broken)
        os.rename(tmp, cf)
        wait_until(lambda: (metric(s.admin, "coredns_reload_failed_total") or 0) >= 1, 30,
                   "the reload failure to be counted")

    failures = {}

    def recover():
        failures["count"] = metric(s.admin, "coredns_reload_failed_total")
        tmp = cf + ".tmp"
        with open(tmp, "w") as f:
            f.write(good)
        os.rename(tmp, cf)

    stats, load, _ = s.measure(cluster.names, cluster.queries, fault, recover)
    s.stop()
    count = failures.get("count")
    ok = stats["ok"] == stats["sent"] and count == 1
    return row("`reload` of a broken Corefile", describe_load(load),
               "Corefile replaced by one that does not parse, for 5 s (2 s reload interval)",
               "old configuration keeps serving; the failure counted once",
               happened(stats, f"coredns_reload_failed_total {count:.0f} after 5 s"), ok, COMMAND + " reload")


def catalog(work, binary, cluster):
    s = Scenario("catalog", work, binary)
    cat = os.path.join(s.work, "catalog")
    shutil.copytree(cluster.catalog, cat)
    cf = corefile(os.path.join(s.work, "Corefile"), s.port, s.admin, cat)
    p = s.signpost(cf)
    target = os.path.join(cat, "ns-0000.json")
    original = open(target, "rb").read()

    def fault():
        tmp = os.path.join(s.work, "garbage.tmp")
        with open(tmp, "wb") as f:
            f.write(os.urandom(4096))
        os.rename(tmp, target)
        wait_until(lambda: "ns-0000.json" in p.text(), 30, "an error naming the file")

    lines = {}

    def recover():
        lines["count"] = sum(1 for l in p.text().splitlines() if "ns-0000.json" in l)
        tmp = os.path.join(s.work, "good.tmp")
        with open(tmp, "wb") as f:
            f.write(original)
        os.rename(tmp, target)

    stats, load, _ = s.measure(cluster.names, cluster.queries, fault, recover)
    s.stop()
    ok = stats["ok"] == stats["sent"] and lines.get("count") == 1
    return row("catalog file replaced by garbage", describe_load(load),
               "ns-0000.json (the probed names' file) replaced by 4 KiB of random bytes for 5 s",
               "old data keeps serving; one error line naming the file",
               happened(stats, f"{lines.get('count')} log line(s) naming the file"), ok, COMMAND + " catalog")


def replica(work, binary, cluster):
    s = Scenario("replica", work, binary)
    second_admin = free_port()
    cf1 = corefile(os.path.join(s.work, "Corefile.1"), s.port, s.admin, cluster.catalog)
    cf2 = corefile(os.path.join(s.work, "Corefile.2"), s.port, second_admin, cluster.catalog)
    first = s.signpost(cf1, "first")
    second = s.signpost(cf2, "second", admin=second_admin)
    def fault():
        first.kill(signal.SIGKILL)

    stats, load, _ = s.measure(cluster.names + cluster.other, cluster.queries, fault)
    survived = second.alive()
    s.stop()
    ok = survived and stats["ok"] / max(1, stats["sent"]) >= 0.99 and load["completed"] / max(1, load["sent"]) >= 0.99
    return row("SIGKILL of one of two replicas on one port", describe_load(load),
               "two `signpost dns` on the same port (SO_REUSEPORT, UDP and TCP); SIGKILL of the first",
               "the survivor carries the load: ≥ 99 % answered",
               happened(stats, "survivor alive" if survived else "survivor died"), ok, COMMAND + " replica")


def querylog(work, binary, cluster):
    s = Scenario("querylog", work, binary)
    mount = os.path.join(s.work, "qlog")
    os.makedirs(mount, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount], check=True)
    try:
        cf = corefile(os.path.join(s.work, "Corefile"), s.port, s.admin, cluster.catalog,
                      extra_block="    log\n")
        p = s.signpost(cf, stdout=os.path.join(mount, "query.log"))

        def fault():
            # The tmpfs fills within a second at this rate; wait for it.
            wait_until(lambda: shutil.disk_usage(mount).free < 8192, 30, "the query log's disk to fill")

        stats, load, _ = s.measure(cluster.names, cluster.queries, fault)
        alive = p.alive()
        free = shutil.disk_usage(mount).free
        s.stop()
    finally:
        subprocess.run(["umount", mount], check=False)
    ok = alive and stats["ok"] == stats["sent"]
    return row("disk full for the query log", describe_load(load),
               "`log` plugin writing to a 1 MiB tmpfs that fills",
               "serving continues; no crash",
               happened(stats, f"{free} bytes free at the end; process {'alive' if alive else 'DEAD'}"), ok,
               COMMAND + " querylog")


def kubernetes(work, binary, fake_binary):
    s = Scenario("kubernetes", work, binary)
    fake_log = open(os.path.join(s.work, "fake.log"), "w")
    fake = subprocess.Popen([fake_binary, "--dir", s.work, "--seed-services", "1000", "--seed-endpoints", "3",
                             "--control", "--history-limit", "100"],
                            stdout=subprocess.PIPE, stderr=fake_log, text=True, start_new_session=True)
    try:
        url = fake.stdout.readline().split()[1]
        kubeconfig = fake.stdout.readline().split()[1]
        context = ssl.create_default_context(cafile=os.path.join(s.work, "ca.crt"))

        def call(method, path, body=None, content="application/json"):
            request = urllib.request.Request(url + path, method=method,
                                             data=json.dumps(body).encode() if body is not None else None,
                                             headers={"Content-Type": content})
            with urllib.request.urlopen(request, context=context, timeout=10) as r:
                return r.status

        cf = os.path.join(s.work, "Corefile")
        with open(cf, "w") as f:
            f.write(f"cluster.local:{s.port} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n"
                    f"        kubeconfig {kubeconfig}\n    }}\n    prometheus 127.0.0.1:{s.admin}\n"
                    f"    ready 127.0.0.1:{s.admin}\n}}\n")
        s.signpost(cf)
        names = [f"svc-{i}.ns-{n}.svc.cluster.local" for n in range(3) for i in range(1, 10)]
        queries = os.path.join(s.work, "queries.txt")
        with open(queries, "w") as f:
            f.write("".join(f"svc-{i % 100}.ns-{i // 100}.svc.cluster.local A\n" for i in range(1000) if i % 10))
        changes = {}

        def change(tag, index):
            # A headless service (every 10th): its endpoint address is its answer.
            ns, name = f"ns-{index // 100}", f"svc-{index % 100}"
            address = f"10.200.{index // 250}.{tag}"
            call("PATCH", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}-1",
                 {"endpoints": [{"addresses": [address], "conditions": {"ready": True}}]},
                 "application/merge-patch+json")
            changes[f"{name}.{ns}.svc.cluster.local"] = address

        def fault():
            call("POST", "/fake/drop-watches")
            change(1, 10)
            call("POST", "/fake/compact")
            call("POST", "/fake/drop-watches")  # the re-watch gets 410 Gone
            change(2, 20)
            call("POST", "/fake/fail", {"verb": "list", "code": 500, "count": 5})
            call("POST", "/fake/fail", {"verb": "watch", "code": 500, "count": 5})
            call("POST", "/fake/drop-watches")
            change(3, 30)
            call("POST", "/fake/fail", {"verb": "list", "code": 429, "count": 3, "retry_after_seconds": 1})
            call("POST", "/fake/drop-watches")
            change(4, 40)

        def recover():
            t0 = time.monotonic()
            from scale import query_a
            for name, address in changes.items():
                wait_until(lambda: query_a(s.port, name) == [address], 60, f"{name} → {address}")
            return time.monotonic() - t0

        stats, load, converged = s.measure(names, queries, fault, recover)
        s.stop()
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.wait(timeout=60)
    ok = stats["ok"] == stats["sent"] and converged is not None
    return row("Kubernetes API: dropped watches, 410, 500, 429", describe_load(load),
               "fake API server drops every watch 4×, compacts (410 Gone on re-watch), fails 5 lists and 5 watches "
               "with 500 and 3 lists with 429; 4 endpoint changes made in between",
               "answers continue; every change is answered afterwards (nothing lost)",
               happened(stats, f"all 4 changes answered, the last {converged:.2f} s after the 5 s fault window"), ok,
               COMMAND + " kubernetes")


def etcd(work, binary):
    s = Scenario("etcd", work, binary)
    peers = [(free_port(), free_port()) for _ in range(3)]
    initial = ",".join(f"m{i}=http://127.0.0.1:{p}" for i, (_, p) in enumerate(peers))
    members = {}

    def start_member(i):
        client, peer = peers[i]
        members[i] = s.start(Process(
            ["etcd", "--name", f"m{i}", "--data-dir", os.path.join(s.work, f"m{i}"),
             "--listen-client-urls", f"http://127.0.0.1:{client}",
             "--advertise-client-urls", f"http://127.0.0.1:{client}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", initial, "--initial-cluster-state", "new",
             "--initial-cluster-token", "signpost-faults"],
            os.path.join(s.work, f"m{i}.log")))

    for i in range(3):
        start_member(i)
    endpoints = ",".join(f"http://127.0.0.1:{c}" for c, _ in peers)

    def etcdctl(*args, endpoint=endpoints):
        return subprocess.run(["etcdctl", f"--endpoints={endpoint}", "--command-timeout=5s", *args],
                              capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})

    wait_until(lambda: etcdctl("endpoint", "health").returncode == 0, 60, "a healthy etcd cluster")
    for i in range(100):
        assert etcdctl("put", f"/skydns/local/skydns/h{i}", json.dumps({"host": f"10.1.0.{i + 1}"})).returncode == 0
    cf = os.path.join(s.work, "Corefile")
    with open(cf, "w") as f:
        f.write(f"skydns.local:{s.port} {{\n    bind 127.0.0.1\n    etcd {{\n        path /skydns\n"
                f"        endpoint {' '.join('http://127.0.0.1:%d' % c for c, _ in peers)}\n    }}\n"
                f"    prometheus 127.0.0.1:{s.admin}\n    ready 127.0.0.1:{s.admin}\n}}\n")
    s.signpost(cf)
    names = [f"h{i}.skydns.local" for i in range(20)]
    for n in names[:3]:
        wait_answer(s.port, n)
    queries = os.path.join(s.work, "queries.txt")
    with open(queries, "w") as f:
        f.write("".join(f"h{i}.skydns.local A\n" for i in range(100)))
    result = {}

    def fault():
        # The first endpoint is the one a client dials first.
        members[0].kill()

    def recover():
        survivor = f"http://127.0.0.1:{peers[1][0]}"
        put = etcdctl("put", "/skydns/local/skydns/new", json.dumps({"host": "10.1.1.1"}), endpoint=survivor)
        result["put"] = put.returncode == 0
        t0 = time.monotonic()
        wait_answer(s.port, "new.skydns.local", limit=60)
        result["seen"] = time.monotonic() - t0
        start_member(0)
        return result["seen"]

    stats, load, seen = s.measure(names, queries, fault, recover)
    s.stop()
    ok = stats["ok"] == stats["sent"] and result.get("put") and seen is not None
    return row("etcd member killed (3-member cluster)", describe_load(load),
               "SIGKILL of the first listed member; a key written through a survivor 5 s later; member restarted",
               "answers continue; the new key is served",
               happened(stats, f"new key answered {seen:.2f} s after the write"), ok, COMMAND + " etcd")


class HttpEndpoints:
    """`count` loopback HTTP servers (127.0.3.1, 127.0.3.2, ...) on one port,
    answering 200 or 503 as `failing` says and counting requests per address:
    the endpoints a health controller probes."""

    def __init__(self, count):
        self.addresses = [f"127.0.3.{i + 1}" for i in range(count)]
        self.failing = [False] * count
        self.probes = [0] * count
        self.stopping = threading.Event()
        while True:
            first = socket.socket()
            first.bind((self.addresses[0], 0))
            self.port = first.getsockname()[1]
            listeners = [first]
            try:
                for address in self.addresses[1:]:
                    s = socket.socket()
                    listeners.append(s)
                    s.bind((address, self.port))
                break
            except OSError:
                for s in listeners:
                    s.close()
        self.threads = []
        for index, listener in enumerate(listeners):
            listener.listen(64)
            listener.settimeout(0.2)
            t = threading.Thread(target=self._serve, args=(index, listener), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, index, listener):
        while not self.stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            self.probes[index] += 1
            status = "503 Service Unavailable" if self.failing[index] else "200 OK"
            try:
                client.settimeout(1)
                client.recv(2048)
                client.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            except OSError:
                pass
            finally:
                client.close()
        listener.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join()


class FakeApiServer:
    """`signpost-fake-apiserver` (every request allowed) and a JSON client."""

    def __init__(self, binary, work):
        self.log = open(os.path.join(work, "fake.log"), "w")
        self.proc = subprocess.Popen([binary, "--dir", work], stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, start_new_session=True)
        self.url = self.proc.stdout.readline().split()[1]
        self.kubeconfig = self.proc.stdout.readline().split()[1]
        self.context = ssl.create_default_context(cafile=os.path.join(work, "ca.crt"))

    def call(self, method, path, body=None):
        request = urllib.request.Request(self.url + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=5) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None

    def create(self, path, body):
        status, _ = self.call("POST", path, body)
        if status not in (200, 201, 409):
            raise RuntimeError(f"creating {path}: HTTP {status}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


HEALTH_CONFIG = """# The reference deployment's keys, with short test timings.
healthCheck:
  interval: 1s
  timeout: 800ms
  failureThreshold: 3
  successThreshold: 1
endpoints:
  healthCheckPath: /health
  removeUnhealthyDelay: 3s
leaderElection:
  leaseDuration: 3s
  renewDeadline: 2s
  retryPeriod: 500ms
"""
HEALTH_LEASE, HEALTH_INTERVAL, HEALTH_FAILURES, HEALTH_DELAY = 3.0, 1.0, 3, 3.0


def health(work, binary, fake_binary):
    """Two `signpost health` controllers (Lease and verdict ConfigMap on the
    fake API server) and one `signpost dns` following the verdicts; the
    leader is SIGKILLed under load and, 3 s later, an endpoint starts failing."""
    s = Scenario("health", work, binary)
    api = FakeApiServer(fake_binary, s.work)
    endpoints = HttpEndpoints(40)
    namespace, services, per = "health-bench", 4, 10
    failing_first, failing_later = endpoints.addresses[0], endpoints.addresses[1]
    try:
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": namespace}})
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": "kube-system"}})
        for n in range(services):
            name = f"hc-{n}"
            api.create(f"/api/v1/namespaces/{namespace}/services", {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": namespace, "annotations": {
                    "dns.aikernel.io/health-check-enabled": "true",
                    "dns.aikernel.io/health-check-port": str(endpoints.port)}},
                "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
            api.create(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-1", "namespace": namespace,
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [a], "conditions": {"ready": True}}
                              for a in endpoints.addresses[n * per:(n + 1) * per]],
                "ports": [{"name": "http", "port": endpoints.port, "protocol": "TCP"}]})
        api.create("/api/v1/namespaces/kube-system/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "signpost-health-verdicts",
                                                                  "namespace": "kube-system"}})
        api.create("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "signpost-health", "namespace": "kube-system"}, "spec": {}})

        def published():
            status, body = api.call("GET", "/api/v1/namespaces/kube-system/configmaps/signpost-health-verdicts")
            if status != 200:
                return None
            text = ((body or {}).get("data") or {}).get("unhealthy") or ""
            return {line.rsplit("/", 1)[-1] for line in text.splitlines() if line}

        def holder():
            status, body = api.call("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/signpost-health")
            return ((body or {}).get("spec") or {}).get("holderIdentity") if status == 200 else None

        cf = os.path.join(s.work, "Corefile")
        with open(cf, "w") as f:
            f.write(f"cluster.local:{s.port} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n"
                    f"        kubeconfig {api.kubeconfig}\n    }}\n    healthcheck {{\n"
                    f"        verdicts kubernetes kube-system/signpost-health-verdicts {{\n"
                    f"            kubeconfig {api.kubeconfig}\n        }}\n    }}\n"
                    f"    prometheus 127.0.0.1:{s.admin}\n    ready 127.0.0.1:{s.admin}\n}}\n")
        s.signpost(cf)
        probed = f"hc-0.{namespace}.svc.cluster.local"
        wait_until(lambda: len(a_records_of(s.port, probed)) == per, 60, "every endpoint answered")

        config = os.path.join(s.work, "health.yaml")
        with open(config, "w") as f:
            f.write(HEALTH_CONFIG)
        controllers = {}

        def controller(identity):
            listen = free_port()
            p = s.start(Process([binary, "health", "--config", config, "--kubeconfig", api.kubeconfig,
                                 "--namespace", "kube-system", "--lease", "signpost-health",
                                 "--verdicts", "signpost-health-verdicts", "--identity", identity,
                                 "--listen", f"127.0.0.1:{listen}"],
                                os.path.join(s.work, f"{identity}.log"), {"RUST_LOG": "info", "NO_COLOR": "1"}))
            controllers[identity] = (p, listen)
            return p

        def leading(identity):
            return metric(controllers[identity][1], "signpost_health_leader")

        endpoints.failing[0] = True
        controller("controller-a")
        wait_until(lambda: leading("controller-a") == 1, 30, "controller-a to lead")
        controller("controller-b")
        wait_until(lambda: leading("controller-b") == 0, 30, "controller-b to stand by")
        # The first failing endpoint out of answers before the load starts.
        wait_until(lambda: failing_first not in a_records_of(s.port, probed), 30, f"{failing_first} withdrawn")
        wait_until(lambda: published() == {failing_first}, 10, "the first verdict published")

        queries = os.path.join(s.work, "queries.txt")
        with open(queries, "w") as f:
            f.write("".join(f"hc-{n}.{namespace}.svc.cluster.local A\n" for n in range(services)))

        # Observers: the verdict ConfigMap and the Lease holder every 50 ms.
        seen = {"bad_probe": 0, "empty_probe": 0, "later_last": None, "later_first": None}
        verdicts, holders, running = [], [], threading.Event()

        def inspect(data, now):
            addresses = a_records(data)
            if not addresses or data[3] & 0x0F:
                seen["empty_probe"] += 1
                return False
            if failing_first in addresses:
                seen["bad_probe"] += 1
                return False
            if failing_later in addresses:
                seen["later_last"] = now
            return True

        def observe():
            while not running.is_set():
                v, h = published(), holder()
                now = time.monotonic()
                if v is not None and (not verdicts or verdicts[-1][1] != v):
                    verdicts.append((now, v))
                if h is not None and (not holders or holders[-1][1] != h):
                    holders.append((now, h))
                time.sleep(0.05)

        observer = threading.Thread(target=observe, daemon=True)
        observer.start()
        probes_before = []
        load = Load(s.port, queries, RATE, SECONDS, os.path.join(s.work, "dnsperf.txt"))
        probe = Prober(s.port, [probed], inspect=inspect).start()
        started = time.monotonic()
        result = {}
        try:
            time.sleep(FAULT_AT)
            probes_before = list(endpoints.probes)
            killed_at = time.monotonic()
            controllers["controller-a"][0].kill()
            # The next fault on schedule, 3 s after the kill (not a synchronisation).
            time.sleep(max(0.0, killed_at + 3 - time.monotonic()))
            endpoints.failing[1] = True
            failed_at = time.monotonic()
            wait_until(lambda: leading("controller-b") == 1, 30, "controller-b to lead")
            result["takeover"] = next((t for t, h in holders if h == "controller-b"), time.monotonic()) - killed_at
            bound = HEALTH_LEASE + HEALTH_INTERVAL * HEALTH_FAILURES + HEALTH_DELAY + 1.0
            wait_until(lambda: failing_later in (published() or set()), bound + 10, f"{failing_later} published")
            wait_until(lambda: seen["later_last"] is not None and time.monotonic() - seen["later_last"] > 1.0
                       and failing_later not in a_records_of(s.port, probed), bound + 10,
                       f"{failing_later} withdrawn from answers")
            result["withdrawn"] = seen["later_last"] - failed_at
            result["bound"] = bound
            remaining = started + SECONDS + 1 - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
        finally:
            stats = probe.stop()
            load_stats = load.result()
            running.set()
            observer.join()
        probed_after = [b - a for a, b in zip(probes_before, endpoints.probes)] if probes_before else []
        # Verdicts lost: an unhealthy endpoint missing from a ConfigMap version
        # after it was first published, or a healthy one published.
        lost, wrong, first = 0, 0, {}
        for t, v in verdicts:
            for address in (failing_first, failing_later):
                if address in v:
                    first.setdefault(address, t)
                elif address in first:
                    lost += 1
            wrong += len(v - {failing_first, failing_later})
        final = published()
        lost += len({failing_first, failing_later} - (final or set()))
        survivor_alive = controllers["controller-b"][0].alive()
        s.stop()
    finally:
        endpoints.stop()
        api.stop()
    takeover, withdrawn, bound = result.get("takeover"), result.get("withdrawn"), result.get("bound")
    ok = (stats["sent"] > 0 and stats["ok"] / stats["sent"] >= 0.999
          and load_stats["completed"] / max(1, load_stats["sent"]) >= 0.999
          and seen["bad_probe"] == 0 and seen["empty_probe"] == 0
          and takeover is not None and takeover <= HEALTH_LEASE + 0.5
          and withdrawn is not None and withdrawn <= bound and lost == 0 and wrong == 0 and survivor_alive)
    quiet = min(probed_after) if probed_after else 0
    return row("health controller leader killed", describe_load(load_stats),
               "two `signpost health` (Lease and verdict ConfigMap on the fake API server; 1 s interval, 800 ms "
               "timeout, 3 failures, 3 s removal delay, 3 s lease), 40 endpoints, one failing from the start; "
               "SIGKILL of the leader, 3 s later a second endpoint fails",
               f"≥ 99.9 % answered, the probe never gets the failing endpoint nor an empty answer; the standby "
               f"leads within the lease (3 s + 0.5 s); the new failure withdrawn within lease + interval × failures "
               f"+ removal delay + 1 s ({bound or 10:.0f} s); verdicts lost 0",
               happened(stats, f"failing endpoint in 0 answers" if not seen["bad_probe"] else
                        f"failing endpoint in {seen['bad_probe']} answers")
               + f", {seen['empty_probe']} empty; takeover {takeover if takeover is None else round(takeover, 2)} s "
                 f"after the SIGKILL; new failure withdrawn {withdrawn if withdrawn is None else round(withdrawn, 2)} s "
                 f"after it began; verdicts lost {lost}, healthy endpoints published unhealthy {wrong}; "
                 f"every endpoint probed ≥ {quiet}× from the kill to the end",
               ok, COMMAND + " health")


def a_records_of(port, name):
    """The A addresses of one UDP query's answer (empty without a reply)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        packet = encode_query(name)
        sock.sendto(packet, ("127.0.0.1", port))
        try:
            data, _ = sock.recvfrom(65535)
        except OSError:
            return []
    return (a_records(data) or []) if data[:2] == packet[:2] else []


class FaultProxy:
    """A loopback HTTP proxy in front of PowerDNS's API (as the sync chaos
    test's): passes requests through, or answers every one with 500 (with
    PowerDNS's JSON error body) or 429 with `Retry-After: 1`, as `mode` says."""

    def __init__(self, upstream):
        import http.client
        import http.server
        proxy = self
        self.mode = "pass"
        self.faulted = {"500": 0, "429": 0}
        self.passed = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                mode = proxy.mode
                if mode != "pass":
                    proxy.faulted[mode] += 1
                    text = b'{"error": "injected by the reliability bench"}'
                    self.send_response(500 if mode == "500" else 429)
                    if mode == "429":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                    return
                proxy.passed += 1
                connection = http.client.HTTPConnection("127.0.0.1", upstream, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                reply = connection.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for k, v in reply.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class PowerDns:
    """pdns_server with pdns-backend-sqlite3 and its HTTP API on loopback."""

    SCHEMA = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"

    def __init__(self, s, zone, key):
        self.dir, self.key = os.path.join(s.work, "pdns"), key
        os.makedirs(self.dir, exist_ok=True)
        database = os.path.join(self.dir, "pdns.db")
        with open(self.SCHEMA) as f:
            subprocess.run(["sqlite3", database], input=f.read(), text=True, check=True)
        self.api_port, self.dns_port = free_port(), free_port()
        with open(os.path.join(self.dir, "pdns.conf"), "w") as f:
            f.write(f"launch=gsqlite3\ngsqlite3-database={database}\nlocal-address=127.0.0.1\n"
                    f"local-port={self.dns_port}\napi=yes\napi-key={key}\nwebserver=yes\n"
                    f"webserver-address=127.0.0.1\nwebserver-port={self.api_port}\n"
                    f"webserver-allow-from=127.0.0.0/8\nsocket-dir={self.dir}\nguardian=no\ndaemon=no\n"
                    f"disable-syslog=yes\nwrite-pid=no\nloglevel=4\n"
                    # Two receivers on one port, so one descheduled thread
                    # does not leave the socket's queue to overflow.
                    f"receiver-threads=2\nreuseport=yes\n")
        self.process = s.start(Process(["pdns_server", f"--config-dir={self.dir}"],
                                       os.path.join(self.dir, "pdns.log")))
        wait_until(lambda: self.api("GET", "/api/v1/servers/localhost")[0] == 200, 30, "the PowerDNS API")
        status, _ = self.api("POST", "/api/v1/servers/localhost/zones",
                             {"name": f"{zone}.", "kind": "Native", "nameservers": [f"ns.{zone}."]})
        if status != 201:
            raise RuntimeError(f"creating {zone}: HTTP {status}")

    def api(self, method, path, body=None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"X-API-Key": self.key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None
        except OSError:
            return None, None

    def rrsets(self, zone):
        """{(name, type): sorted contents} of the zone, read directly."""
        status, body = self.api("GET", f"/api/v1/servers/localhost/zones/{zone}.")
        if status != 200:
            return None
        return {(r["name"].rstrip("."), r["type"]): sorted(x["content"] for x in r["records"])
                for r in body["rrsets"]}

    def put_foreign(self, zone, name, address):
        status, _ = self.api("PATCH", f"/api/v1/servers/localhost/zones/{zone}.", {"rrsets": [
            {"name": f"{name}.", "type": "A", "ttl": 300, "changetype": "REPLACE",
             "records": [{"content": address, "disabled": False}]}]})
        if status != 204:
            raise RuntimeError(f"writing {name}: HTTP {status}")


SYNC_INTERVAL = 2.0
FAULT_500, FAULT_429 = 3.0, 3.0


def provider(work, binary):
    """`signpost sync` against PowerDNS through a proxy answering 500 then
    429 for a window, dnsperf at half of PowerDNS's measured maximum on its
    authoritative port; a Service changes and a foreign record is written
    during the window."""
    s = Scenario("provider", work, binary)
    zone, key, count = "faults.test", "bench-api-key-5e6f7a", 50
    pdns = PowerDns(s, zone, key)
    proxy = FaultProxy(pdns.api_port)
    try:
        pdns.put_foreign(zone, "foreign-before.faults.test", "203.0.113.1")
        catalog = os.path.join(s.work, "catalog")
        os.makedirs(catalog)

        def service(i, address):
            tmp = os.path.join(s.work, f".svc-{i:03d}.yaml.tmp")
            with open(tmp, "w") as f:
                f.write(f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i:03d}\n  namespace: default\n"
                        f"  annotations:\n    external-dns.kubernetes.io/hostname: \"svc-{i:03d}.{zone}\"\n"
                        f"spec:\n  type: LoadBalancer\n  ports:\n  - port: 80\nstatus:\n  loadBalancer:\n"
                        f"    ingress:\n    - ip: {address}\n")
            os.rename(tmp, os.path.join(catalog, f"svc-{i:03d}.yaml"))

        for i in range(count):
            service(i, f"192.0.2.{i + 1}")
        names = [f"svc-{i:03d}.{zone}" for i in range(count)]
        sync = s.start(Process([binary, "sync", "--metrics-address=127.0.0.1:0", f"--catalog={catalog}",
                                "--source=service", "--policy=sync", f"--interval={SYNC_INTERVAL:.0f}s",
                                f"--domain-filter={zone}", "--txt-owner-id=default", "--provider=pdns",
                                f"--pdns-server=http://127.0.0.1:{proxy.port}", f"--pdns-api-key={key}"],
                               os.path.join(s.work, "sync.log"), {"RUST_LOG": "info", "NO_COLOR": "1"}))
        metrics = {}

        def metrics_port():
            for line in sync.text().splitlines():
                if "metrics and health endpoints listening" in line and " http=" in line:
                    metrics["port"] = int(line.split(" http=", 1)[1].split()[0].rsplit(":", 1)[1])
                    return True
            if not sync.alive():
                raise RuntimeError(f"signpost sync exited; log:\n{sync.text()[-2000:]}")
            return False

        wait_until(metrics_port, 60, "sync's metrics address")
        wait_until(lambda: all(a_records_of(pdns.dns_port, n) for n in names), 60, "every name published")
        published = {k: v for k, v in pdns.rrsets(zone).items() if k[0].startswith("svc-")}

        def errors():
            from common import http_get
            _, text = http_get(f"http://127.0.0.1:{metrics['port']}/metrics")
            kinds = {}
            for line in text.splitlines():
                if line.startswith('signpost_sync_provider_errors_total{kind="'):
                    kinds[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
            return kinds

        errors_before = errors()
        queries = os.path.join(s.work, "queries.txt")
        with open(queries, "w") as f:
            f.write("".join(f"{n} A\n" for n in names))
        # PowerDNS's maximum here: dnsperf unthrottled for 5 s.
        peak = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(pdns.dns_port), "-d", queries,
                               "-l", "5", "-c", "16", "-q", "500", "-t", "2"], capture_output=True, text=True)
        qps = next((float(l.split(":", 1)[1].split()[0]) for l in peak.stdout.splitlines()
                    if l.strip().startswith("Queries per second")), 0.0)
        rate = max(1000, int(qps / 2))

        # Records lost: every published and foreign record set, read directly
        # from PowerDNS every 200 ms; each sample missing one counts.
        foreign = {("foreign-before.faults.test", "A"): ["203.0.113.1"]}
        watch = {"lost": 0, "samples": 0, "foreign_changed": 0}
        stop_watch = threading.Event()

        def watcher():
            while not stop_watch.is_set():
                current = pdns.rrsets(zone)
                if current is not None:
                    watch["samples"] += 1
                    watch["lost"] += sum(1 for k in published if k not in current)
                    watch["foreign_changed"] += sum(1 for k, v in list(foreign.items()) if current.get(k) != v)
                time.sleep(0.2)

        watching = threading.Thread(target=watcher, daemon=True)
        watching.start()
        load = Load(pdns.dns_port, queries, rate, SECONDS, os.path.join(s.work, "dnsperf.txt"))
        probe = Prober(pdns.dns_port, names[:20]).start()
        started = time.monotonic()
        window_start = started + FAULT_AT
        result = {}
        try:
            time.sleep(FAULT_AT)
            proxy.mode = "500"
            window_start = time.monotonic()
            service(1, "198.51.100.1")  # the change sync must not lose
            pdns.put_foreign(zone, "foreign-during.faults.test", "203.0.113.2")
            foreign[("foreign-during.faults.test", "A")] = ["203.0.113.2"]
            time.sleep(max(0.0, window_start + FAULT_500 - time.monotonic()))
            proxy.mode = "429"
            time.sleep(max(0.0, window_start + FAULT_500 + FAULT_429 - time.monotonic()))
            result["changed_early"] = a_records_of(pdns.dns_port, names[1]) == ["198.51.100.1"]
            proxy.mode = "pass"
            window_end = time.monotonic()
            wait_until(lambda: a_records_of(pdns.dns_port, names[1]) == ["198.51.100.1"], 60,
                       "the change published")
            result["published_after"] = time.monotonic() - window_end
            remaining = started + SECONDS + 1 - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
        finally:
            proxy.mode = "pass"
            stats = probe.stop()
            # Unanswered probe queries, in seconds from the start of the window
            # (PowerDNS dropping under load, not a missing record: a deleted
            # record would be answered NXDOMAIN and counted as a bad reply).
            lost_at = sorted(round(t - window_start, 1) for t in probe.sent.values())
            log(f"provider: unanswered probe queries at {lost_at} s from the window's start")
            load_stats = load.result()
            stop_watch.set()
            watching.join()
        final = pdns.rrsets(zone) or {}
        lost_end = sum(1 for k in published if k not in final)
        foreign_end = sum(1 for k, v in foreign.items() if final.get(k) != v)
        errors_after = errors()
        by_kind = {k: v - errors_before.get(k, 0) for k, v in errors_after.items() if v > errors_before.get(k, 0)}
        counted = sum(by_kind.values())
        alive = sync.alive()
        s.stop()
    finally:
        proxy.stop()
    after = result.get("published_after")
    faulted = f"{proxy.faulted['500']} × 500, {proxy.faulted['429']} × 429"
    bad = stats["answered"] - stats["ok"]
    # A record sync deleted would be answered NXDOMAIN (a bad reply); a query
    # with no reply at all is PowerDNS dropping under load, so only its share
    # is bounded. When the drops happened is printed.
    when = ", ".join(f"{t:+.1f}" for t in lost_at[:8]) + (" …" if len(lost_at) > 8 else "")
    ok = (bad == 0 and stats["ok"] / max(1, stats["sent"]) >= 0.999 and watch["lost"] == 0 and lost_end == 0 and watch["foreign_changed"] == 0
          and foreign_end == 0 and after is not None and after <= SYNC_INTERVAL + 2.0 and counted > 0 and alive
          and proxy.faulted["500"] > 0 and proxy.faulted["429"] > 0)
    return row("provider answering 500/429 mid-sync",
               f"{rate:,} q/s dnsperf on PowerDNS's port (half of the {qps:,.0f} q/s it answered unthrottled for "
               f"5 s; {pct(load_stats['completed'], load_stats['sent'])} answered), {SECONDS} s; uptime {loadavg()}",
               f"`signpost sync --interval {SYNC_INTERVAL:.0f}s` (PowerDNS 4.7 + sqlite3, {count} Services) through "
               f"a proxy answering every API call with 500 for {FAULT_500:.0f} s, then 429 (Retry-After: 1) for "
               f"{FAULT_429:.0f} s; in the window a Service's address changes and a foreign A record is written "
               "directly",
               "published names answered throughout: no bad reply (nothing deleted on an error), ≥ 99.9 % of the "
               "probe answered; foreign records untouched; the "
               f"change published within one interval + 2 s ({SYNC_INTERVAL + 2:.0f} s) after the window; "
               "errors counted; records lost 0",
               happened(stats, f"{bad} bad replies (NXDOMAIN or empty), {len(lost_at)} unanswered"
                               + (f" (at {when} s from the window's start)" if lost_at else "")
                               + f"; records lost {watch['lost'] + lost_end} (PowerDNS read directly every 200 ms, "
                               f"{watch['samples']} reads), foreign records changed {watch['foreign_changed'] + foreign_end}; "
                               f"change published {after if after is None else round(after, 2)} s after the window"
                               f"{' (already before its end)' if result.get('changed_early') else ''}; {faulted} "
                               f"answered; signpost_sync_provider_errors_total +{counted:.0f} ("
                               + ", ".join(f"{k} {v:.0f}" for k, v in sorted(by_kind.items())) + ")"),
               ok, COMMAND + " provider")


def main():
    binary, fake_binary = sys.argv[1], sys.argv[2]
    wanted = sys.argv[3:] or ["upstream", "reload", "catalog", "replica", "querylog", "kubernetes", "etcd",
                              "health", "provider"]
    work = os.environ.get("WORK") or tempfile.mkdtemp(prefix="signpost-faults.")
    keep = bool(os.environ.get("WORK"))
    cluster = Cluster(work)
    failed = []
    try:
        for name in wanted:
            log(f"scenario {name}")
            try:
                if name in ("kubernetes", "health"):
                    ok = globals()[name](work, binary, fake_binary)
                elif name in ("etcd", "provider"):
                    ok = globals()[name](work, binary)
                else:
                    ok = globals()[name](work, binary, cluster)
            except Exception as error:  # one broken scenario does not stop the others
                ok = row(name, "", "", "", f"error: {error}".replace("\n", " ")[:300], False, COMMAND + " " + name)
            if not ok:
                failed.append(name)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        sys.exit(f"failed: {' '.join(failed)}")


if __name__ == "__main__":
    main()
