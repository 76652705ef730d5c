#!/usr/bin/env python3
"""Soak of `signpost dns` (issue 19): SOAK_MINUTES (30) at RATE q/s with
endpoint churn (one namespace's EndpointSlices rewritten every
CHURN_SECONDS, 2) and a Corefile change picked up by `reload` every
RELOAD_SECONDS (60); RSS and open file descriptors sampled every 10 s, their
slope reported (least squares over the second half, after warm-up), error and
warning log lines counted, and a 100 q/s prober's answered share and longest
gap. Prints one Markdown table row (docs/reliability.md).

    soak.py SIGNPOST_BIN
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import (ROOT, Load, Prober, free_port, loadavg, log, open_fds, pct, row, rss_kib, signpost_dns,
                    wait_answer, wait_ready)

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
RATE = int(os.environ.get("RATE", "50000"))
CHURN_SECONDS = float(os.environ.get("CHURN_SECONDS", "2"))
RELOAD_SECONDS = float(os.environ.get("RELOAD_SECONDS", "60"))
SAMPLE_SECONDS = 10


def slope(points):
    """Least-squares slope of (t, v) points, per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="signpost-soak.")
    try:
        cluster = os.path.join(work, "cluster")
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "dns", "gen.py"), cluster,
                        "--namespaces", "10", "--services", "100", "--headless", "100", "--queries", "20000"],
                       check=True, stdout=subprocess.DEVNULL)
        catalog = os.path.join(cluster, "catalog")
        port, admin = free_port(), free_port()
        conf = os.path.join(work, "Corefile")
        variant = lambda ttl: (f"cluster.local:{port} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n"
                               f"        catalog {catalog}\n        ttl {ttl}\n    }}\n    reload 2s\n"
                               f"    prometheus 127.0.0.1:{admin}\n    ready 127.0.0.1:{admin}\n}}\n")
        write_atomic(conf, variant(30))
        logfile = os.path.join(work, "signpost.log")
        server = signpost_dns(binary, conf, logfile, workers=2)
        wait_ready(admin, server)
        names = [f"svc-{i:03d}.ns-0000.svc.cluster.local" for i in range(20)]
        wait_answer(port, names[0])
        churned = os.path.join(catalog, "ns-0009.json")
        base = json.load(open(churned))
        seconds = int(MINUTES * 60)
        load = Load(port, os.path.join(cluster, "queries-a.txt"), RATE, seconds, os.path.join(work, "dnsperf.txt"))
        probe = Prober(port, names).start()
        t0 = time.monotonic()
        samples, churns, reloads = [], 0, 0
        next_sample = next_churn = t0
        next_reload = t0 + RELOAD_SECONDS
        while time.monotonic() < t0 + seconds and server.alive():
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - t0, rss_kib(server.pid), open_fds(server.pid)))
                next_sample += SAMPLE_SECONDS
            if now >= next_churn:
                churns += 1
                doc = json.loads(json.dumps(base))
                for item in doc.get("items", []):
                    if item.get("kind") == "EndpointSlice":
                        for k, endpoint in enumerate(item.get("endpoints", [])):
                            endpoint["addresses"] = [f"10.250.{churns % 250}.{(k % 250) + 1}"]
                write_atomic(churned, json.dumps(doc))
                next_churn += CHURN_SECONDS
            if now >= next_reload:
                reloads += 1
                write_atomic(conf, variant(30 + reloads % 2))
                next_reload += RELOAD_SECONDS
            time.sleep(0.2)
        stats = probe.stop()
        result = load.result(limit=120)
        alive = server.alive()
        samples.append((time.monotonic() - t0, rss_kib(server.pid), open_fds(server.pid)))
        server.kill()
        text = open(logfile, encoding="utf-8", errors="replace").read().splitlines()
        errors = [l for l in text if " ERROR " in l]
        warnings = [l for l in text if " WARN " in l]
        half = [s for s in samples if s[0] >= samples[-1][0] / 2]
        rss_slope = slope([(t, r / 1024) for t, r, _ in half])
        fd_slope = slope([(t, f) for t, _, f in half])
        rss = [r for _, r, _ in samples]
        fds = [f for _, _, f in samples]
        with open(os.path.join(work, "samples.tsv"), "w") as f:
            f.write("".join(f"{t:.0f}\t{r}\t{d}\n" for t, r, d in samples))
        log(f"samples (s, RSS KiB, fds): {samples}")
        for line in (errors + warnings)[:10]:
            log(f"log: {line}")
        # Flat: under 0.5 MiB/min of RSS growth (15 MiB over 30 minutes) and
        # no fd growth, after the first half's warm-up.
        ok = (alive and not errors and stats["ok"] / max(1, stats["sent"]) >= 0.999 and rss_slope < 0.5
              and fd_slope < 0.1)
        row(f"soak, {MINUTES:g} minutes",
            f"{RATE:,} q/s dnsperf ({pct(result['completed'], result['sent'])} answered); uptime {loadavg()}",
            f"{churns} endpoint changes (every {CHURN_SECONDS:g} s), {reloads} Corefile reloads (every {RELOAD_SECONDS:g} s)",
            "RSS and fds flat (second-half slope < 0.5 MiB/min, < 0.1 fd/min); no error lines; ≥ 99.9 % answered",
            f"probe {stats['ok']}/{stats['sent']} ({pct(stats['ok'], stats['sent'])}), longest gap {stats['gap_ms']} ms; "
            f"RSS {rss[0] // 1024} → {rss[-1] // 1024} MiB (max {max(rss) // 1024}), slope {rss_slope:+.3f} MiB/min; "
            f"fds {fds[0]} → {fds[-1]}, slope {fd_slope:+.3f}/min; {len(errors)} error, {len(warnings)} warning lines",
            ok, f"SOAK_MINUTES={MINUTES:g} bench/reliability/run soak")
        if not ok:
            sys.exit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
