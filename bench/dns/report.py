#!/usr/bin/env python3
"""Turns bench/dns/run's raw measurements into tables (Python 3 standard library only).

    report.py latency DNSPERF_VERBOSE_OUTPUT     # latency percentiles as KEY=VALUE lines
    report.py report --work DIR ... [--docs docs/performance.md]

`report` reads WORK/results: per run PREFIX.txt (dnsperf's summary), PREFIX.env
(CPU ticks, wall time) and PREFIX.latency (percentiles of a `dnsperf -v` run);
scale.env, scale-changes.txt and scale.log; criterion/*/*/new/estimates.json.
It prints the report and, with --docs, writes each section ("Authoritative
answers", "Cached forwarding", "Scale", "Micro-benchmarks") between its begin
and end markers, leaving the rest of the file (other sections, and notes written
below an end marker) as it is.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import statistics

MIXES = {
    "a": "(a) 100 % A",
    "mix": "(b) 70 % A, 10 % SRV, 10 % AAAA NODATA, 10 % NXDOMAIN",
}
# How the tables name the mixes (the query files are queries-a.txt and queries-mix.txt).
SHORT = {"a": "a", "mix": "b"}


# === dnsperf output ===


def read_env(path: str) -> dict:
    values = {}
    if not os.path.exists(path):
        return values
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key:
                try:
                    values[key] = float(value)
                except ValueError:
                    values[key] = value
    return values


def read_dnsperf(path: str) -> dict:
    text = open(path).read()

    def number(pattern: str) -> float:
        match = re.search(pattern, text)
        if not match:
            raise SystemExit(f"{path}: no match for {pattern!r}")
        return float(match.group(1))

    codes = re.search(r"Response codes:\s+(.*)", text)
    size = re.search(r"Average packet size:\s+request (\d+), response (\d+)", text)
    return {
        "sent": number(r"Queries sent:\s+(\d+)"),
        "completed": number(r"Queries completed:\s+(\d+)"),
        "lost": number(r"Queries lost:\s+(\d+)"),
        "qps": number(r"Queries per second:\s+([\d.]+)"),
        "latency": number(r"Average Latency \(s\):\s+([\d.]+)"),
        "codes": codes.group(1).strip() if codes else "?",
        "response_bytes": float(size.group(2)) if size else float("nan"),
    }


def latency(path: str) -> None:
    """Percentiles of the per-query latencies `dnsperf -v` prints (`> RCODE NAME TYPE SECONDS`)."""
    values = []
    with open(path) as f:
        for line in f:
            if line.startswith("> "):
                parts = line.split()
                try:
                    values.append(float(parts[-1]))
                except ValueError:
                    pass
    if not values:
        raise SystemExit(f"{path}: no per-query lines")
    values.sort()

    def pct(p: float) -> float:
        return values[min(len(values) - 1, int(p / 100 * len(values)))]

    for key, value in (("count", len(values)), ("avg", statistics.fmean(values)), ("p50", pct(50)),
                       ("p99", pct(99)), ("p999", pct(99.9)), ("max", values[-1])):
        print(f"{key}={value}")


# === the throughput scenarios ===


def run_set(work: str, label: str, mix: str, rounds: int, ticks: float) -> dict | None:
    runs = []
    for r in range(1, rounds + 1):
        prefix = os.path.join(work, "results", f"{label}-{mix}-r{r}")
        if not os.path.exists(prefix + ".txt"):
            return None
        perf = read_dnsperf(prefix + ".txt")
        env = read_env(prefix + ".env")
        cpu = env["server_ticks"] / ticks
        runs.append({
            **perf,
            "cpu_us": cpu / perf["completed"] * 1e6 if perf["completed"] else float("nan"),
            "cpu_util": cpu / env["wall"],
            "dnsperf_util": env["dnsperf_ticks"] / ticks / env["wall"],
            "irq_util": env["stat_irq_ticks"] / ticks / env["wall"],
            "noise": max(0.0, env["stat_task_ticks"] - env["server_ticks"] - env["dnsperf_ticks"]) / ticks / env["wall"],
        })
    median = lambda key: statistics.median(run[key] for run in runs)  # noqa: E731
    result = {
        "runs": runs,
        "qps": median("qps"),
        "latency_ms": median("latency") * 1e3,
        "lost_pct": 100 * sum(r["lost"] for r in runs) / max(1, sum(r["sent"] for r in runs)),
        "cpu_us": median("cpu_us"),
        "cpu_util": median("cpu_util"),
        "dnsperf_util": median("dnsperf_util"),
        "irq_util": median("irq_util"),
        "noise": median("noise"),
        "response_bytes": median("response_bytes"),
        "codes": runs[len(runs) // 2]["codes"],
    }
    prefix = os.path.join(work, "results", f"{label}-{mix}-latency")
    if os.path.exists(prefix + ".latency"):
        lat = read_env(prefix + ".latency")
        perf = read_dnsperf(prefix + ".txt")
        result["half"] = {**lat, "qps": perf["qps"], "lost_pct": 100 * perf["lost"] / max(1, perf["sent"])}
    return result


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def scenario_table(work: str, scenario: str, other: str, other_name: str, placement: str,
                   rounds: int, ticks: float) -> tuple[list, dict]:
    """Rows for one scenario and placement; returns (lines, {mix: (signpost, other)})."""
    lines = [
        "| mix | server | queries/s | lost % | avg latency at max, ms | rate of latency run | "
        "p50 / p99 there, ms | server CPU per answer, µs | server CPU, % of one | dnsperf CPU, % of one | "
        "answer bytes (avg) | other processes, % of one |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    found = {}
    for mix in MIXES:
        pair = []
        for name, server in (("signpost", "signpost"), (other_name, other)):
            result = run_set(work, f"{scenario}-{server}-{placement}", mix, rounds, ticks)
            pair.append(result)
            if result is None:
                continue
            half = result.get("half")
            lines.append(
                f"| {SHORT[mix]} | {name} | {result['qps']:,.0f} | {result['lost_pct']:.3f} | {result['latency_ms']:.3f} | "
                + (f"{half['qps']:,.0f} | {half['p50'] * 1e3:.3f} / {half['p99'] * 1e3:.3f} | " if half else "– | – | ")
                + f"{result['cpu_us']:.2f} | {100 * result['cpu_util']:.0f} | {100 * result['dnsperf_util']:.0f} | "
                f"{result['response_bytes']:.0f} | {100 * result['noise']:.0f} |"
            )
        if all(pair):
            s, o = pair
            lines.append(
                f"| {SHORT[mix]} | **signpost / {other_name}** | **{ratio(s['qps'], o['qps'])}** | | "
                f"{ratio(s['latency_ms'], o['latency_ms'])} | | "
                + (f"{ratio(s['half']['p99'], o['half']['p99'])} (p99) | " if 'half' in s and 'half' in o else "| ")
                + f"{ratio(s['cpu_us'], o['cpu_us'])} | | | | |"
            )
            found[mix] = (s, o)
    return lines, found


def rounds_line(found: dict, other_name: str) -> str:
    parts = []
    for mix, (s, o) in found.items():
        parts.append(
            f"mix {SHORT[mix]}: signpost " + ", ".join(f"{r['qps']:,.0f}" for r in s["runs"])
            + f"; {other_name} " + ", ".join(f"{r['qps']:,.0f}" for r in o["runs"])
        )
    return "Rounds, queries/s: " + "; ".join(parts) + "."


def codes_line(found: dict, other_name: str) -> str:
    parts = []
    for mix, (s, o) in found.items():
        parts.append(f"mix {SHORT[mix]}: signpost {s['codes']}; {other_name} {o['codes']}")
    return "Response codes (middle round): " + "; ".join(parts) + "."


# === scale ===


def log_times(path: str, message: str) -> list:
    times = []
    with open(path) as f:
        for line in f:
            if message in line:
                stamp = line.split()[0]
                times.append(datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    return times


def scale_section(work: str, ticks: float) -> list:
    env = read_env(os.path.join(work, "results", "scale.env"))
    log_path = os.path.join(work, "results", "scale.log")
    if not env or not os.path.exists(log_path):
        return ["Not run (SCALE=0)."]
    loaded = log_times(log_path, "catalog loaded")
    serving = log_times(log_path, "snapshot serving")
    started = env["started"]
    load_s = loaded[0] - started
    build_s = serving[0] - loaded[0]
    changes = []
    poll_gaps = []
    for line in open(os.path.join(work, "results", "scale-changes.txt")):
        fields = dict(part.split("=") for part in line.split())
        t_write, t_seen = float(fields["t_write"]), float(fields["t_seen"])
        t_loaded = next(t for t in loaded if t > t_write)
        t_serving = next(t for t in serving if t >= t_loaded)
        # The poll that sees the change starts a full catalog load: its first
        # file open (inotify, change.py).
        detected = float(fields["t_detect"])
        poll_gaps.append(float(fields["poll_gap"]))
        changes.append({
            "total": t_seen - t_write,
            "watch": detected - t_write,
            "pipeline": t_seen - detected,
            "load": t_loaded - detected,
            "to_loaded": t_loaded - t_write,
            "build": t_serving - t_loaded,
            "visible": t_seen - t_serving,
        })
    med = lambda key: statistics.median(c[key] for c in changes)  # noqa: E731
    span = lambda key: f"{min(c[key] for c in changes):.2f}–{max(c[key] for c in changes):.2f}"  # noqa: E731
    summary = open(os.path.join(work, "scale", "summary.txt")).read().strip()
    counts = dict(part.split("=") for part in summary.split())
    names = re.search(r"snapshot serving.*names=(\d+).*records=(\d+)", open(log_path).read())
    rows = [
        ("Services / endpoints in the catalog",
         f"{int(counts['services']):,} / {int(counts['endpoints']):,} in {int(counts['namespaces']):,} files"),
        ("Catalog size on disk", f"{env['catalog_bytes'] / 2**20:.0f} MiB of JSON"),
        ("Snapshot names / records", f"{int(names.group(1)):,} / {int(names.group(2)):,}" if names else "?"),
        ("Start to /ready", f"{env['ready'] - started:.2f} s"),
        ("  catalog load (read, parse, validate: start to \"catalog loaded\")", f"{load_s:.2f} s"),
        ("  snapshot build (translate, compile, render, swap: to \"snapshot serving\")", f"{build_s:.2f} s"),
        ("CPU from start to ready", f"{env['cpu_ticks_startup'] / ticks:.2f} s"),
        ("RSS when ready / peak (VmHWM)", f"{env['rss_kib_ready'] / 1024:,.0f} MiB / {env['hwm_kib_ready'] / 1024:,.0f} MiB"),
        ("RSS after the changes / peak", f"{env['rss_kib_end'] / 1024:,.0f} MiB / {env['hwm_kib_end'] / 1024:,.0f} MiB"),
        (f"One endpoint change, write to new answer (median of {len(changes)}, range)",
         f"{med('total'):.2f} s ({span('total')})"),
        ("  file-watch delay: write to the poll that sees it (250 ms poll)", f"{med('watch'):.3f} s ({span('watch')})"),
        ("  longest time between two polls in the second before a write (median; 0.25 s when on time)",
         f"{statistics.median(poll_gaps):.3f} s"),
        ("  pipeline: that poll to the new answer", f"{med('pipeline'):.2f} s ({span('pipeline')})"),
        ("    catalog load (first file open to \"catalog loaded\")", f"{med('load'):.2f} s ({span('load')})"),
        ("    translate, compile, render, swap (\"catalog loaded\" to \"snapshot serving\")",
         f"{med('build'):.2f} s ({span('build')})"),
        ("    \"snapshot serving\" to the new answer seen", f"{1e3 * med('visible'):.1f} ms"),
    ]
    return ["| measure | value |", "|---|---:|", *(f"| {name} | {value} |" for name, value in rows)]


# === micro-benchmarks ===


def micro_section(work: str) -> list:
    estimates = sorted(glob.glob(os.path.join(work, "results", "criterion", "*", "*", "new", "estimates.json")))
    if not estimates:
        return ["Not run (MICRO=0)."]
    rows = []
    for path in estimates:
        parts = path.split(os.sep)
        group, bench = parts[-4], parts[-3]
        data = json.load(open(path))
        median = data["median"]["point_estimate"]
        low, high = data["median"]["confidence_interval"]["lower_bound"], data["median"]["confidence_interval"]["upper_bound"]
        rows.append((group, bench, median, low, high))
    order = {"parse": 0, "lookup": 1, "encode": 2, "answer": 3, "build": 4}
    rows.sort(key=lambda r: (order.get(r[0], 9), r[1]))

    def fmt(ns: float) -> str:
        return f"{ns / 1e6:,.1f} ms" if ns >= 1e6 else f"{ns:,.1f} ns"

    return [
        "| group | benchmark | median | 95 % interval |",
        "|---|---|---:|---:|",
        *(f"| {g} | {b} | {fmt(m)} | {fmt(lo)} – {fmt(hi)} |" for g, b, m, lo, hi in rows),
    ]


# === rendering ===


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs (`nproc`), {model}, Linux {platform.release()}"


def header(args) -> list:
    today = datetime.date.today().isoformat()
    return [f"Measured {today} on {machine()}, with", "", "```sh", args.command, "```", ""]


def targets(auth: dict, cache: dict) -> list:
    lines = ["| target | measured | met |", "|---|---:|---|"]
    for mix, (s, o) in auth.items():
        value = s["qps"] / o["qps"]
        lines.append(f"| authoritative mix {SHORT[mix]}: signpost ≥ 1.0 × Knot queries/s | {value:.2f} × | "
                     f"{'yes' if value >= 1.0 else '**no**'} |")
        lines.append(f"| authoritative mix {SHORT[mix]}: loss < 0.1 % | {s['lost_pct']:.3f} % | "
                     f"{'yes' if s['lost_pct'] < 0.1 else '**no**'} |")
        if "half" in s:
            p99 = s["half"]["p99"] * 1e3
            lines.append(f"| authoritative mix {SHORT[mix]}: p99 < 1 ms at half of signpost's maximum rate | {p99:.3f} ms | "
                         f"{'yes' if p99 < 1 else '**no**'} |")
    for mix, (s, o) in cache.items():
        value = s["qps"] / o["qps"]
        lines.append(f"| cached forwarding mix {SHORT[mix]}: signpost ≥ 1.5 × Unbound queries/s | {value:.2f} × | "
                     f"{'yes' if value >= 1.5 else '**no**'} |")
        if "half" in s:
            p99 = s["half"]["p99"] * 1e3
            lines.append(f"| cached forwarding mix {SHORT[mix]}: p99 < 1 ms at half of signpost's maximum rate | {p99:.3f} ms | "
                         f"{'yes' if p99 < 1 else '**no**'} |")
    return lines


# === the forwarding modes ===

FWD_MODES = [
    ("hits", "hits", "every query a cache hit; caches larger than the working set", "cpu", 1.5),
    ("new", "new", "90 % cache hits, 10 % names never asked before", "cpu", 1.5),
    ("miss", "miss", "every name never asked before (cache on)", "cpu", 1.0),
    ("capacity", "capacity", "`success 9984; denial 9984` (Unbound sized to the same number of answers), "
     "uniform queries over 30,000 names", "qps", 1.0),
]


def fwd_rounds(work: str, label: str, rounds: int) -> list:
    return [read_env(os.path.join(work, "results", f"{label}-x-r{r}.env")) for r in range(1, rounds + 1)]


def forwarding_section(work: str, rounds: int, ticks: float) -> list:
    lines = [
        "| mode | server | queries/s | lost % | server CPU per answer, µs | server CPU, % of one | cache hit rate | "
        "answers cached at the end | load (1 min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    target_rows = []
    for mode, short, _, measure, goal in FWD_MODES:
        found = {}
        for server in ("signpost", "unbound"):
            result = run_set(work, f"fwd-{mode}-{server}", "x", rounds, ticks)
            if result is None:
                continue
            envs = fwd_rounds(work, f"fwd-{mode}-{server}", rounds)
            hits = sum(e.get("cache_hits", 0) for e in envs)
            requests = sum(e.get("cache_requests", 0) for e in envs)
            result["hit_rate"] = hits / requests if requests else float("nan")
            result["entries"] = envs[-1].get("cache_entries", float("nan"))
            result["load"] = str(envs[len(envs) // 2].get("load", "?")).split()[0]
            found[server] = result
        if len(found) < 2:
            continue
        s, u = found["signpost"], found["unbound"]
        for name, r in (("signpost", s), ("Unbound", u)):
            # Unbound reports its cached answers with extended-statistics, on in the capacity mode only.
            entries = "–" if name == "Unbound" and mode != "capacity" else f"{r['entries']:,.0f}"
            lines.append(
                f"| {short} | {name} | {r['qps']:,.0f} | {r['lost_pct']:.3f} | {r['cpu_us']:.2f} | "
                f"{100 * r['cpu_util']:.0f} | {100 * r['hit_rate']:.1f} % | {entries} | {r['load']} |"
            )
        cpu_ratio = u["cpu_us"] / s["cpu_us"] if s["cpu_us"] else float("nan")
        qps_ratio = s["qps"] / u["qps"] if u["qps"] else float("nan")
        lines.append(
            f"| {short} | **signpost / Unbound** | **{qps_ratio:.2f}** | | **{cpu_ratio:.2f}** (Unbound's CPU per "
            f"answer / signpost's) | | | | |"
        )
        floor = run_set(work, f"fwd-{mode}-floor", "x", rounds, ticks) if mode == "hits" else None
        if floor is not None:
            envs = fwd_rounds(work, f"fwd-{mode}-floor", rounds)
            load = str(envs[len(envs) // 2].get("load", "?")).split()[0]
            lines.append(
                f"| {short} | floor (`bench/dns/floor.c`) | {floor['qps']:,.0f} | {floor['lost_pct']:.3f} | "
                f"{floor['cpu_us']:.2f} | {100 * floor['cpu_util']:.0f} | – | – | {load} |"
            )
            ceiling = u["cpu_us"] / floor["cpu_us"] if floor["cpu_us"] else float("nan")
            lines.append(
                f"| {short} | **Unbound / floor** | | | **{ceiling:.2f}** (Unbound's CPU per answer / the floor's: about "
                f"the best a UDP server could reach) | | | | |"
            )
        measured = cpu_ratio if measure == "cpu" else qps_ratio
        what = "CPU per answer, Unbound / signpost" if measure == "cpu" else "queries/s, signpost / Unbound"
        target_rows.append(
            f"| {short}: {what} ≥ {goal} | {measured:.2f} × | {'yes' if measured >= goal else '**no**'} |"
        )
    if not target_rows:
        return ["No forwarding-mode results in this run."]
    calibration = read_env(os.path.join(work, "results", "fwd-unbound-calibration.env"))
    uptime_path = os.path.join(work, "results", "fwd-uptime.txt")
    uptime = open(uptime_path).read().strip() if os.path.exists(uptime_path) else "?"
    notes = []
    if calibration:
        notes.append(
            f"Unbound's cache in the capacity mode: {calibration['msg_bytes']:.0f} bytes per cached message and "
            f"{calibration['rrset_bytes']:.0f} per RRset on this workload (measured from `mem.cache.message` and "
            f"`mem.cache.rrset` while caching {calibration['msg_added']:,.0f} answers), so `msg-cache-size` = "
            f"9984 × {calibration['msg_bytes']:.0f} and `rrset-cache-size` = 9984 × {calibration['rrset_bytes']:.0f} "
            f"bytes, one slab each; \"answers cached at the end\" is its `msg.cache.count`."
        )
    notes.append(f"`uptime` at the end of the scenario: {uptime}.")
    return [
        *lines,
        "",
        *notes,
        "",
        "| target | measured | met |",
        "|---|---:|---|",
        *target_rows,
    ]


def render(args) -> dict:
    setup = (
        f"Cluster: 10,000 ClusterIP services in 100 namespaces plus 1,000 headless services with 5 endpoints each, "
        f"every service with two named TCP ports (`http`, `grpc`: SRV records), as catalog manifests for signpost and "
        f"the equivalent zone file for Knot (`bench/dns/gen.py`; the script compares both servers' answers to a few "
        f"questions of every kind). Query mixes: {MIXES['a']}; {MIXES['mix']} (100,000 questions each, seeded). "
        f"dnsperf {args.dnsperf_version} `-l {args.duration} -c {args.clients} -q {args.outstanding} -e` (EDNS), "
        f"{args.rounds} rounds per server and mix, medians shown; loss summed over the rounds. "
        f"\"Pinned\": the server with one worker thread on CPU 0, dnsperf on CPU 1, both at `nice -20`. "
        f"\"Unpinned\": two workers each, nothing pinned (`-l {args.unpinned_duration}`). "
        f"p50/p99 come from a separate `dnsperf -v -Q RATE -l {args.latency_duration}` run (per-query latencies) at half "
        f"of signpost's median maximum rate for that mix, the same rate for the server compared with. "
        f"\"Other processes\" is the CPU time on CPUs 0-1 that neither the server nor dnsperf used (other work on "
        f"the machine; a round above 15 % is repeated, up to 3 times). "
        f"Server CPU is utime+stime of all its threads from `/proc/PID/stat` divided by completed queries: with "
        f"dnsperf near one CPU of its own it is the fairer comparison where dnsperf, not the server, limits the rate."
    )
    sections = {}
    auth_pinned, auth = scenario_table(args.work, "auth", "knot", "Knot", "pinned", args.rounds, args.ticks)
    auth_free, auth_u = scenario_table(args.work, "auth", "knot", "Knot", "unpinned", args.rounds, args.ticks)
    cache_pinned, cache = scenario_table(args.work, "cache", "unbound", "Unbound", "pinned", args.rounds, args.ticks)
    cache_free, cache_u = scenario_table(args.work, "cache", "unbound", "Unbound", "unpinned", args.rounds, args.ticks)
    sections["Authoritative answers"] = [
        *header(args),
        setup + f" Knot: {args.knot_version}, `udp-workers` = signpost's `--workers`.",
        "",
        "Pinned, one worker each:",
        "",
        *auth_pinned,
        "",
        "Unpinned, two workers each:",
        "",
        *auth_free,
        "",
        rounds_line(auth, "Knot") + " " + codes_line(auth, "Knot"),
        "",
        "Targets (pinned):",
        "",
        *targets(auth, {}),
    ]
    sections["Cached forwarding"] = [
        *header(args),
        "signpost (`forward . KNOT` + `cache 3600 { success 200000; denial 200000 }`) and Unbound "
        f"{args.unbound_version} (`forward-zone \".\"`, iterator only, 256 MiB message / 512 MiB RRset cache, "
        "`num-threads` = signpost's `--workers`) both forward to one Knot serving the same records with TTL 3600 "
        "(SOA MINIMUM 3600, so NXDOMAIN and NODATA are cached too), pinned to CPU 1. Each cache is warmed with one "
        "pass over both query files, so the measured queries are hits. Placement, mixes, rounds and latency method "
        "as for the authoritative answers.",
        "",
        "Pinned, one worker each:",
        "",
        *cache_pinned,
        "",
        "Unpinned, two workers each:",
        "",
        *cache_free,
        "",
        rounds_line(cache, "Unbound") + " " + codes_line(cache, "Unbound"),
        "",
        "Targets (pinned):",
        "",
        *targets({}, cache),
    ]
    sections["Cached forwarding: hits, misses and capacity"] = [
        *header(args),
        "signpost (`--workers 1`) and Unbound (`num-threads 1`), each pinned to CPU 0 with every thread it has, "
        "forward to the Knot of the cached-forwarding runs (TTL 3600; a wildcard answers every never-seen name "
        "under `new.cluster.local`); dnsperf on CPU 1 as there. Modes: "
        + "; ".join(f"**{short}**: {text}" for _, short, text, _, _ in FWD_MODES)
        + ". hits, new and miss give both caches more room than the run fills (signpost 1,000,000 entries per "
        "kind, Unbound 1 GiB message + 1 GiB RRset cache). Caches are warmed with one pass over the query file "
        "first (except miss); generated query files are run through once (`dnsperf -n 1`), so no never-seen name "
        f"repeats. {args.rounds} rounds of `-l {args.duration}` per server and mode, medians; CPU per answer is "
        "utime+stime of every thread of the server over completed queries; hit rates are the servers' own counters "
        "over the measured rounds. In hits, the floor (`bench/dns/floor.c`: `recvmmsg`, a header flip, one A "
        "record, `sendmmsg`, nothing else) is measured the same way, pinned like the servers.",
        "",
        *forwarding_section(args.work, args.rounds, args.ticks),
    ]
    sections["Scale"] = [
        *header(args),
        "Catalog: 100,000 services in 1,000 namespace files: 90,000 ClusterIP services with one EndpointSlice of 10 "
        "endpoints each (loaded and translated, served by no record, as in a real cluster) and 10,000 headless "
        "services with 10 endpoints each (each endpoint an A record under the service, a name of its own and two SRV "
        "targets): 1,000,000 endpoints. signpost release build, `--workers 1`, not pinned, "
        "`RUST_LOG=info,signpost_discovery=debug` for the timestamps of \"catalog loaded\" and \"snapshot serving\". "
        "An endpoint change rewrites one namespace file (renamed into place) and polls the answer every "
        "millisecond (`bench/dns/change.py`). signpost reloads the whole catalog on any change; "
        "the poll that sees a change is the first open of a catalog file after the write (an inotify watch on the catalog directory, which also shows each poll as a listing of the directory), so the file-watch delay is the time from the write to that open and the pipeline the time from it to the new answer.",
        "",
        *scale_section(args.work, args.ticks),
    ]
    sections["Micro-benchmarks"] = [
        *header(args),
        "`cargo bench -p signpost-dns --bench hot_path` (criterion, `crates/dns/benches/hot_path.rs`), run by "
        "the script with `--warm-up-time 1 --measurement-time 2`, pinned to CPU 0. Snapshot: the cluster above "
        "(11,000 services) compiled with `cluster::compile`; each benchmark cycles through 1,024 different names. "
        "`parse` = `parse_query`, `lookup` = `Snapshot::lookup`, `encode` = `write_response` of the looked-up "
        "answer, `answer` = `Responder::answer` (parse, zone match, snapshot load, lookup, encode, metrics), "
        "`build` = compiling and building the whole snapshot.",
        "",
        *micro_section(args.work),
    ]
    # Only what this run measured replaces what the file holds.
    ran = {
        "Authoritative answers": bool(auth),
        "Cached forwarding": bool(cache),
        "Cached forwarding: hits, misses and capacity": os.path.exists(
            os.path.join(args.work, "results", "fwd-uptime.txt")),
        "Scale": os.path.exists(os.path.join(args.work, "results", "scale.env")),
        "Micro-benchmarks": os.path.exists(os.path.join(args.work, "results", "micro.txt")),
    }
    return {heading: lines for heading, lines in sections.items() if ran.get(heading, True)}


def marker(heading: str, end: bool) -> str:
    slug = heading.lower().replace(" ", "-")
    return f"<!-- bench/dns/run {slug}: {'end' if end else 'begin (generated; edit notes below the end marker)'} -->"


def write_docs(path: str, sections: dict) -> None:
    text = open(path).read() if os.path.exists(path) else (
        "# Performance\n\nMeasured figures, each section with its machine, command and date.\n"
    )
    for heading, lines in sections.items():
        title = f"## {heading}"
        block = "\n".join([marker(heading, False), *lines, marker(heading, True)])
        begin, end = marker(heading, False), marker(heading, True)
        if begin in text and end in text:
            start = text.index(begin)
            stop = text.index(end) + len(end)
            text = text[:start] + block + text[stop:]
        elif title in text:
            start = text.index(title) + len(title)
            text = text[:start] + "\n\n" + block + "\n" + text[start:]
        else:
            # New sections go before the health-check section, in this order.
            anchor = "## Health checks at scale"
            section = f"{title}\n\n{block}\n\n"
            if anchor in text:
                start = text.index(anchor)
                text = text[:start] + section + text[start:]
            else:
                text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command_name", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("file")
    rep = sub.add_parser("report")
    rep.add_argument("--work", required=True)
    rep.add_argument("--rounds", type=int, required=True)
    rep.add_argument("--ticks", type=float, required=True)
    rep.add_argument("--command", required=True)
    rep.add_argument("--duration", required=True)
    rep.add_argument("--unpinned-duration", required=True)
    rep.add_argument("--latency-duration", required=True)
    rep.add_argument("--clients", required=True)
    rep.add_argument("--outstanding", required=True)
    rep.add_argument("--knot-version", default="?")
    rep.add_argument("--unbound-version", default="?")
    rep.add_argument("--dnsperf-version", default="?")
    rep.add_argument("--docs")
    args = parser.parse_args()
    if args.command_name == "latency":
        latency(args.file)
        return
    sections = render(args)
    text = "\n\n".join(f"## {heading}\n\n" + "\n".join(lines) for heading, lines in sections.items())
    print(text)
    with open(os.path.join(args.work, "report.md"), "w") as f:
        f.write(text + "\n")
    if args.docs:
        write_docs(args.docs, sections)
        print(f"\nwrote {args.docs}")


if __name__ == "__main__":
    main()
