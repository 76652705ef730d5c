#!/usr/bin/env python3
"""Readiness gates at scale (issue 20, point 3): N gated Pods whose endpoints all start
failing at once; measures how long `signpost health` takes to patch every Pod's
dns.aikernel.io/healthy condition to False after the verdicts publish them, and the
patch rate, against the configured rate limit.

Run through bench/health/gates (which builds the binaries); by hand:

    bench/health/gates.py --signpost target/release/signpost \
        --fake target/release/signpost-fake-apiserver [--pods 1000] [--qps 50] [--burst 100]

Everything runs on loopback: the fake Kubernetes API server (crates/fakes, plain HTTP,
with its EndpointSlice controller: Pod Ready <=> every gate True, endpoint ready <=> Pod
Ready), one Python HTTP server on 0.0.0.0:PORT answering /health for every 127.1.X.Y
address (200, or 503 once the run fails them), and one `signpost health` with the
reference timings (10 s interval, 3 s timeout, 3 failures, 1 success, 30 s removal
delay). Every wait has a deadline; the processes are stopped at exit.
"""

import argparse
import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

NAMESPACE = "gates-bench"
GATE = "dns.aikernel.io/healthy"
PER_SLICE = 100


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def request(api, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as reply:
        return json.load(reply)


def address(i):
    return f"127.1.{i // 250}.{1 + i % 250}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Probed:
    """One listener on 0.0.0.0:port; /health answers 200, or 503 once `failing`."""

    def __init__(self):
        self.failing = False
        self.port = None
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        if not ready.wait(10):
            raise SystemExit("the probed HTTP server did not start")

    def _run(self, ready):
        loop = asyncio.new_event_loop()

        async def handle(reader, writer):
            try:
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                status = "503 Service Unavailable" if self.failing else "200 OK"
                writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
                await writer.drain()
            except Exception:
                pass
            finally:
                writer.close()

        async def main():
            server = await asyncio.start_server(handle, "0.0.0.0", 0, backlog=1024)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await server.serve_forever()

        loop.run_until_complete(main())


class Watch(threading.Thread):
    """Records when each object of a watch first shows what `seen(object)` returns."""

    def __init__(self, api, path, seen):
        super().__init__(daemon=True)
        self.host, self.port = api.removeprefix("http://").split(":")
        self.path, self.seen = path, seen
        self.first = {}
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                conn = http.client.HTTPConnection(self.host, int(self.port), timeout=60)
                conn.request("GET", self.path)
                reply = conn.getresponse()
                for line in reply:
                    now = time.monotonic()
                    if self.stop:
                        return
                    event = json.loads(line)
                    for key in self.seen(event.get("object") or {}):
                        self.first.setdefault(key, now)
            except Exception as error:  # a dropped watch is read again
                log(f"watch {self.path}: {error}; again")
                time.sleep(0.2)


def wait(what, limit, check, every=0.2):
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {limit} s")
        time.sleep(every)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--signpost", required=True)
    parser.add_argument("--fake", required=True)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--qps", type=float, default=50.0)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--interval", default="10s")
    parser.add_argument("--timeout", default="3s")
    parser.add_argument("--delay", default="30s")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="signpost-gates-bench.")
    processes = []

    def stop(*_):
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
        if not os.environ.get("KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work directory: {work}")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        run(args, work, processes)
    finally:
        stop()


def run(args, work, processes):
    probed = Probed()
    fake_out = open(os.path.join(work, "fake.out"), "w")
    processes.append(subprocess.Popen(
        [args.fake, "--plain-http", "--endpoint-slice-controller", "--dir", os.path.join(work, "fake")],
        stdout=fake_out, stderr=open(os.path.join(work, "fake.log"), "w")))
    api = None

    def listening():
        nonlocal api
        for line in open(os.path.join(work, "fake.out")):
            if line.startswith("listening "):
                api = line.split()[1]
        return api is not None

    wait("the fake API server listens", 30, listening, 0.1)
    log(f"fake API server at {api}; probed listener on port {probed.port}")

    started = time.monotonic()
    request(api, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": NAMESPACE}})
    request(api, "POST", f"/api/v1/namespaces/{NAMESPACE}/services", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "annotations": {
            "dns.aikernel.io/health-check-enabled": "true",
            "dns.aikernel.io/health-check-port": str(probed.port)}},
        "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
    for i in range(args.pods):
        request(api, "POST", f"/api/v1/namespaces/{NAMESPACE}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"web-{i}"},
            "spec": {"readinessGates": [{"conditionType": GATE}],
                     "containers": [{"name": "web", "image": "registry.example/web:1"}]}})
    for first in range(0, args.pods, PER_SLICE):
        endpoints = [{"addresses": [address(i)], "conditions": {"ready": True},
                      "targetRef": {"kind": "Pod", "namespace": NAMESPACE, "name": f"web-{i}"}}
                     for i in range(first, min(first + PER_SLICE, args.pods))]
        request(api, "POST", f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"web-{first // PER_SLICE}",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "port": probed.port, "protocol": "TCP"}]})
    request(api, "POST", "/api/v1/namespaces/kube-system/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "signpost-health-verdicts"}})
    request(api, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "signpost-health"}, "spec": {}})
    log(f"{args.pods} gated Pods and their EndpointSlices created in {time.monotonic() - started:.1f} s")

    config = os.path.join(work, "health.yaml")
    with open(config, "w") as f:
        f.write(f"healthCheck:\n  interval: {args.interval}\n  timeout: {args.timeout}\n"
                f"  failureThreshold: 3\n  successThreshold: 1\n"
                f"endpoints:\n  healthCheckPath: /health\n  removeUnhealthyDelay: {args.delay}\n")
    metrics_port = free_port()
    processes.append(subprocess.Popen(
        [args.signpost, "health", "--config", config, "--api-server", api, "--namespace", "kube-system",
         "--identity", "bench-gates", "--listen", f"127.0.0.1:{metrics_port}",
         "--pod-status-qps", str(args.qps), "--pod-status-burst", str(args.burst)],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "health.log"), "w"),
        env={**os.environ, "RUST_LOG": "warn"}))

    def metrics():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""

    def metric(name):
        for line in metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def conditions():
        pods = request(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
        return [next((c["status"] for c in p.get("status", {}).get("conditions", []) if c["type"] == GATE), None)
                for p in pods]

    wait("signpost health leads", 60, lambda: metric("signpost_health_leader") == 1.0)
    healthy_at = time.monotonic()
    wait("every gated Pod gets True", 120, lambda: all(s == "True" for s in conditions()), 0.5)
    log(f"every gated Pod True {time.monotonic() - healthy_at:.1f} s after the controller led")
    rv = request(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["metadata"]["resourceVersion"]
    cm_rv = request(api, "GET", "/api/v1/namespaces/kube-system/configmaps")["metadata"]["resourceVersion"]

    def false_pods(pod):
        conds = pod.get("status", {}).get("conditions", [])
        if any(c["type"] == GATE and c["status"] == "False" for c in conds):
            yield pod["metadata"]["name"]

    def published(cm):
        if cm.get("metadata", {}).get("name") != "signpost-health-verdicts":
            return
        for line in (cm.get("data") or {}).get("unhealthy", "").splitlines():
            yield line.rsplit("/", 1)[-1]

    pods_watch = Watch(api, f"/api/v1/namespaces/{NAMESPACE}/pods?watch=1&resourceVersion={rv}"
                       "&timeoutSeconds=600", false_pods)
    cm_watch = Watch(api, f"/api/v1/namespaces/kube-system/configmaps?watch=1&resourceVersion={cm_rv}"
                     "&timeoutSeconds=600", published)
    pods_watch.start()
    cm_watch.start()

    log("every endpoint fails from now on")
    failed_at = time.monotonic()
    probed.failing = True
    delay = float(args.delay.rstrip("s"))
    interval = float(args.interval.rstrip("s"))
    limit = delay + 2 * interval + args.pods / args.qps + 60
    wait("every Pod False", limit, lambda: len(pods_watch.first) >= args.pods, 0.2)
    pods_watch.stop = cm_watch.stop = True

    published_at = {a: t for a, t in cm_watch.first.items()}
    false_at = {int(name.rsplit("-", 1)[1]): t for name, t in pods_watch.first.items()}
    lags = sorted(false_at[i] - published_at[address(i)] for i in false_at if address(i) in published_at)
    first_published = min(published_at.values())
    all_published = max(published_at.values())
    first_false, last_false = min(false_at.values()), max(false_at.values())
    text = metrics()
    written = sum(float(l.split()[1]) for l in text.splitlines()
                  if l.startswith('signpost_health_pod_gate_patches_total{result="written",status="False"}'))
    failed = sum(float(l.split()[1]) for l in text.splitlines()
                 if l.startswith('signpost_health_pod_gate_patches_total{result="failed"}'))
    results = {
        "pods": args.pods, "qps": args.qps, "burst": args.burst,
        "interval_s": interval, "delay_s": delay,
        "first_removal_after_failure_s": round(first_published - failed_at, 2),
        "removals_spread_s": round(all_published - first_published, 2),
        "all_false_after_first_removal_s": round(last_false - first_published, 2),
        "all_false_after_last_removal_s": round(last_false - all_published, 2),
        "patch_span_s": round(last_false - first_false, 2),
        "patch_rate_per_s": round((len(false_at) - 1) / max(last_false - first_false, 1e-9), 1),
        "expected_span_s": round(max(args.pods - args.burst, 0) / args.qps, 2),
        "lag_p50_s": round(lags[len(lags) // 2], 2),
        "lag_max_s": round(lags[-1], 2),
        "patches_false": written,
        "patches_failed": failed,
        "within_removal_window": lags[-1] < delay,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)
    if not results["within_removal_window"]:
        raise SystemExit(f"a Pod was patched {lags[-1]:.1f} s after its removal, beyond the {delay} s removal delay")
    if written != args.pods:
        raise SystemExit(f"{written} False patches for {args.pods} Pods")


if __name__ == "__main__":
    main()
