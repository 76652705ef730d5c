#!/usr/bin/env python3
"""Faults under load for `signpost dns` (issue 19): one scenario at a time,
dnsperf at RATE q/s in the background and a 100 q/s prober measuring the
answered share and the longest gap between good answers while the fault
happens. Prints one Markdown table row per scenario (docs/reliability.md).

    faults.py SIGNPOST_BIN FAKE_APISERVER_BIN [SCENARIO...]

Scenarios: upstream reload catalog replica querylog kubernetes etcd.
Environment: RATE (dnsperf q/s, 50000), SECONDS (load per scenario, 20),
FAULT_AT (seconds into the load, 5), WORK (a directory to keep).
"""

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import (ROOT, Load, Process, Prober, ask, free_port, loadavg, log, metric, pct,
                    row, signpost_dns, wait_answer, wait_ready, wait_until)

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


def main():
    binary, fake_binary = sys.argv[1], sys.argv[2]
    wanted = sys.argv[3:] or ["upstream", "reload", "catalog", "replica", "querylog", "kubernetes", "etcd"]
    work = os.environ.get("WORK") or tempfile.mkdtemp(prefix="signpost-faults.")
    keep = bool(os.environ.get("WORK"))
    cluster = Cluster(work)
    failed = []
    try:
        for name in wanted:
            log(f"scenario {name}")
            try:
                if name == "kubernetes":
                    ok = kubernetes(work, binary, fake_binary)
                elif name == "etcd":
                    ok = etcd(work, binary)
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
