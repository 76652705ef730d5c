#!/usr/bin/env python3
"""Turns bench/health/run's raw measurements into a table (Python 3 standard library only).

Reads WORK/{without,with}-idle.env, -round-N.env and -dnsperf-N.txt; prints the
table; with --docs, writes it into the "Health checks at scale" section of that
file, between the begin and end markers, leaving the rest of the file (other
sections, and notes written under this section after the end marker) as it is.
"""

import argparse
import datetime
import os
import platform
import re
import statistics

HEADING = "## Health checks at scale"
BEGIN = "<!-- bench/health/run: begin (generated; edit notes below the end marker) -->"
END = "<!-- bench/health/run: end -->"


def read_env(path: str) -> dict:
    values = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key:
                values[key] = float(value)
    return values


def read_dnsperf(path: str) -> dict:
    text = open(path).read()

    def number(pattern: str) -> float:
        match = re.search(pattern, text)
        if not match:
            raise SystemExit(f"{path}: no match for {pattern!r}")
        return float(match.group(1))

    codes = re.search(r"Response codes:\s+(.*)", text)
    return {
        "sent": number(r"Queries sent:\s+(\d+)"),
        "completed": number(r"Queries completed:\s+(\d+)"),
        "lost": number(r"Queries lost:\s+(\d+)"),
        "qps": number(r"Queries per second:\s+([\d.]+)"),
        "latency": number(r"Average Latency \(s\):\s+([\d.]+)"),
        "codes": codes.group(1).strip() if codes else "?",
    }


def scenario(work: str, label: str, rounds: int, ticks: float) -> dict:
    idle = read_env(os.path.join(work, f"{label}-idle.env"))
    runs = []
    for r in range(1, rounds + 1):
        env = read_env(os.path.join(work, f"{label}-round-{r}.env"))
        perf = read_dnsperf(os.path.join(work, f"{label}-dnsperf-{r}.txt"))
        cpu = env["cpu_ticks"] / ticks
        runs.append({
            **perf,
            "cpu_us_per_query": cpu / perf["completed"] * 1e6 if perf["completed"] else float("nan"),
            "cpu_util": cpu / env["wall"],
            "checks_per_s": env["checks"] / env["wall"],
            "rss_kib": env["rss_kib"],
            # CPUs 0-1 task time not spent by signpost, dnsperf or nginx: other processes.
            "other_util": max(0.0, env["stat_task_ticks"] - env["cpu_ticks"] - env["dnsperf_ticks"]
                              - env["nginx_ticks"]) / ticks / env["wall"],
            "irq_util": env["stat_irq_ticks"] / ticks / env["wall"],
            "nginx_util": env["nginx_ticks"] / ticks / env["wall"],
        })
    median = lambda key: statistics.median(run[key] for run in runs)  # noqa: E731
    return {
        "runs": runs,
        "qps": median("qps"),
        "latency_ms": median("latency") * 1e3,
        "lost_pct": 100 * sum(r["lost"] for r in runs) / max(1, sum(r["sent"] for r in runs)),
        "cpu_us_per_query": median("cpu_us_per_query"),
        "cpu_util": median("cpu_util"),
        "load_checks_per_s": median("checks_per_s"),
        "other_util": median("other_util"),
        "irq_util": median("irq_util"),
        "nginx_util": median("nginx_util"),
        "rss_after_api_mib": idle.get("rss_kib_after_api", float("nan")) / 1024,
        "idle_cpu": idle["idle_cpu_ticks"] / ticks / idle["idle_wall"],
        "idle_nginx_cpu": idle["idle_nginx_ticks"] / ticks / idle["idle_wall"],
        "idle_checks_per_s": idle["idle_checks"] / idle["idle_wall"],
        "rss_idle_mib": idle["rss_kib_idle"] / 1024,
        "rss_load_mib": median("rss_kib") / 1024,
        "hwm_mib": idle["hwm_kib_end"] / 1024,
        "codes": sorted({r["codes"] for r in runs}),
    }


def thread_cpu(work: str, label: str, ticks: float, wall: float) -> list:
    """Per-thread CPU % over the idle window, summed by thread name, busiest first."""

    def load(path: str) -> dict:
        by_name = {}
        with open(path) as f:
            for line in f:
                name, value = line.split()
                by_name.setdefault(name, []).append(int(value))
        return by_name

    before = load(os.path.join(work, f"{label}-threads-0.txt"))
    after = load(os.path.join(work, f"{label}-threads-1.txt"))
    rows = []
    for name, values in after.items():
        start = before.get(name, [0] * len(values))
        delta = sum(values) - sum(start[: len(values)])
        rows.append((name, 100 * delta / ticks / wall))
    return sorted(rows, key=lambda row: -row[1])


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs (`nproc`), {model}, Linux {platform.release()}"


def ratio(b: float, a: float) -> str:
    return f"{b / a:.3f}" if a else "n/a"


def render(args, a: dict, b: dict, threads: list) -> str:
    probe_cpu = b["idle_cpu"] - a["idle_cpu"]
    checks = b["idle_checks_per_s"]
    us_per_check = probe_cpu / checks * 1e6 if checks else float("nan")
    within = b["qps"] >= 0.9 * a["qps"]
    rows = [
        ("Queries/s (median of rounds)", f"{a['qps']:,.0f}", f"{b['qps']:,.0f}", ratio(b["qps"], a["qps"])),
        ("Average latency, ms (median)", f"{a['latency_ms']:.3f}", f"{b['latency_ms']:.3f}",
         ratio(b["latency_ms"], a["latency_ms"])),
        ("Queries lost, % of sent", f"{a['lost_pct']:.3f}", f"{b['lost_pct']:.3f}", ""),
        ("signpost CPU per answered query, µs", f"{a['cpu_us_per_query']:.2f}", f"{b['cpu_us_per_query']:.2f}",
         ratio(b["cpu_us_per_query"], a["cpu_us_per_query"])),
        ("signpost CPU under load, % of one CPU", f"{100 * a['cpu_util']:.1f}", f"{100 * b['cpu_util']:.1f}",
         ratio(b["cpu_util"], a["cpu_util"])),
        ("softirq + irq on CPUs 0-1 under load, % of one CPU", f"{100 * a['irq_util']:.1f}",
         f"{100 * b['irq_util']:.1f}", ""),
        ("Other processes on CPUs 0-1 under load, % of one CPU (noise)", f"{100 * a['other_util']:.1f}",
         f"{100 * b['other_util']:.1f}", ""),
        ("nginx (probed side) CPU under load, % of one CPU", f"{100 * a['nginx_util']:.1f}",
         f"{100 * b['nginx_util']:.1f}", ""),
        ("Checks/s under load", f"{a['load_checks_per_s']:.0f}", f"{b['load_checks_per_s']:.0f}", ""),
        ("Checks/s, idle window", f"{a['idle_checks_per_s']:.0f}", f"{checks:.0f}", ""),
        ("signpost CPU idle, % of one CPU", f"{100 * a['idle_cpu']:.2f}", f"{100 * b['idle_cpu']:.2f}",
         f"+{100 * probe_cpu:.2f} points"),
        ("nginx (probed side) CPU idle, % of one CPU", f"{100 * a['idle_nginx_cpu']:.2f}",
         f"{100 * b['idle_nginx_cpu']:.2f}", ""),
        ("RSS idle, MiB", f"{a['rss_idle_mib']:.1f}", f"{b['rss_idle_mib']:.1f}", ratio(b["rss_idle_mib"], a["rss_idle_mib"])),
        ("RSS under load, MiB (median)", f"{a['rss_load_mib']:.1f}", f"{b['rss_load_mib']:.1f}",
         ratio(b["rss_load_mib"], a["rss_load_mib"])),
        ("RSS after one GET /api/v1/endpoints, MiB", "n/a", f"{b['rss_after_api_mib']:.1f}", ""),
        ("Peak RSS (VmHWM), MiB", f"{a['hwm_mib']:.1f}", f"{b['hwm_mib']:.1f}", ratio(b["hwm_mib"], a["hwm_mib"])),
    ]
    lines = [
        "| measure | without checks | with checks | with / without |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {x} | {y} | {z} |" for name, x, y, z in rows),
    ]
    rounds = lambda s: ", ".join(  # noqa: E731
        f"{r['qps']:,.0f} ({100 * r['other_util']:.0f} %)" for r in s["runs"])
    busiest = ", ".join(f"`{name}` {pct:.2f} %" for name, pct in threads[:4] if pct > 0)
    summary = [
        f"Probing {args.endpoints:,} endpoints every 10 s costs **{100 * probe_cpu:.2f} % of one CPU** "
        f"({checks:.0f} checks/s, **{us_per_check:.0f} µs of signpost CPU per check**) and "
        f"**{b['rss_idle_mib'] - a['rss_idle_mib']:+.1f} MiB RSS**.",
        f"Query throughput with probing is **{100 * b['qps'] / a['qps']:.1f} %** of without: "
        + ("within" if within else "**not** within") + " the 10 % budget.",
        "",
        f"Rounds, queries/s (other processes' CPU): without {rounds(a)}; with {rounds(b)}. "
        f"Response codes: without {'; '.join(a['codes'])}; with {'; '.join(b['codes'])}.",
        f"signpost threads by idle CPU with checks: {busiest or 'none measurable'}.",
    ]
    today = datetime.date.today().isoformat()
    return "\n".join([
        BEGIN,
        f"Measured {today} on {machine()}, with",
        "",
        "```sh",
        args.command,
        "```",
        "",
        f"Setup: {args.endpoints:,} checked endpoints (100 headless services x 100 endpoints at 127.1.X.Y, "
        f"HTTP `GET /health` on port {args.check_port}, answered by one nginx worker) plus 100 ClusterIP services; "
        "`healthcheck { interval 10s timeout 3s }` in the \"with\" run. signpost release build, "
        "`taskset -c 0 signpost dns --workers 1` (one UDP worker plus the 2-thread control runtime that runs "
        "the checker and its probes, all on CPU 0); nginx and "
        f"`taskset -c 1 dnsperf -l {args.duration} -c {args.clients} -e` (queries/s limit: {args.qps}) on CPU 1; "
        "all three at `nice -20` so builds sharing the machine disturb them less (what other processes still "
        "took is the \"noise\" row). Queries alternate headless service names (100 A records each, EDNS) and "
        f"ClusterIP names (1 A record). {args.rounds} rounds per scenario, medians shown. The \"with\" run "
        "measures only after every endpoint's first check (interval + timeout, `dns_health_checks_total`); "
        "afterwards `/api/v1/endpoints` confirms all were checked and healthy. Idle figures come from a window "
        "without queries; probe CPU is signpost's idle CPU with checks minus without. CPU is utime+stime from "
        "`/proc/PID/stat`, memory VmRSS/VmHWM from `/proc/PID/status`, checks from `dns_health_checks_total`.",
        "",
        *lines,
        "",
        *summary,
        END,
    ])


def write_docs(path: str, block: str) -> None:
    text = open(path).read() if os.path.exists(path) else (
        "# Performance\n\nMeasured figures, each section with its machine, command and date.\n"
    )
    if HEADING in text:
        if BEGIN in text and END in text:
            start = text.index(BEGIN)
            end = text.index(END) + len(END)
            text = text[:start] + block + text[end:]
        else:
            start = text.index(HEADING) + len(HEADING)
            text = text[:start] + "\n\n" + block + "\n" + text[start:]
    else:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{block}\n"
    with open(path, "w") as f:
        f.write(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--ticks", type=float, required=True)
    parser.add_argument("--endpoints", type=int, required=True)
    parser.add_argument("--duration", required=True)
    parser.add_argument("--clients", required=True)
    parser.add_argument("--qps", required=True)
    parser.add_argument("--command", required=True)
    parser.add_argument("--check-port", required=True)
    parser.add_argument("--docs")
    args = parser.parse_args()

    a = scenario(args.work, "without", args.rounds, args.ticks)
    b = scenario(args.work, "with", args.rounds, args.ticks)
    wall = read_env(os.path.join(args.work, "with-idle.env"))["idle_wall"]
    threads = thread_cpu(args.work, "with", args.ticks, wall)
    block = render(args, a, b, threads)
    print(block)
    with open(os.path.join(args.work, "report.md"), "w") as f:
        f.write(block + "\n")
    if args.docs:
        write_docs(args.docs, block)
        print(f"\nwrote {args.docs}")


if __name__ == "__main__":
    main()
