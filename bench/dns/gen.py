#!/usr/bin/env python3
"""Writes the DNS benchmark's inputs (Python 3 standard library only).

    gen.py OUT_DIR [--namespaces 100] [--services 100] [--headless 1000]
                   [--headless-endpoints 5] [--cluster-ip-endpoints 0]
                   [--zone-file] [--queries 100000] [--seed 1]

Writes into OUT_DIR:

- catalog/ns-NNNN.json  one `kind: List` per namespace: the namespace's
  ClusterIP services `svc-NNN` (NAMESPACES x SERVICES in all), its share of
  the HEADLESS headless services `db-NNNNN` (spread round-robin over the
  namespaces) with one EndpointSlice of HEADLESS_ENDPOINTS ready endpoints
  each, and, with --cluster-ip-endpoints K, one EndpointSlice of K endpoints
  per ClusterIP service (served by no DNS record, but loaded and translated
  like a real cluster's). Every service has two named TCP ports, `http` (80)
  and `grpc` (9090), so SRV records exist for all of them;
- with --zone-file: cluster.local.zone (TTL 30, what signpost's `kubernetes`
  plugin serves for this catalog, record for record: SOA, NS, dns-version TXT,
  service A records, headless endpoint names, SRV with CoreDNS's weights) and
  cluster.local.ttl3600.zone (the same records with TTL and SOA MINIMUM 3600,
  for the cache scenario, so nothing expires while it is measured);
- queries-a.txt    dnsperf input, mix (a): 100 % existing A names (ClusterIP
  and headless service names in their catalog proportion);
- queries-mix.txt  dnsperf input, mix (b): 70 % A, 10 % SRV (`_http._tcp`),
  10 % AAAA on A-only names (NODATA), 10 % names that do not exist (NXDOMAIN);
- check.txt  a few questions of every kind, for comparing answers between servers.

Addresses: ClusterIPs from 10.96.0.0/12, headless endpoints from 10.32.0.0/12,
ClusterIP endpoints from 10.64.0.0/12, each numbered in order.
"""

import argparse
import ipaddress
import json
import os
import random

ZONE = "cluster.local"
TTL = 30
PORTS = [("http", 80), ("grpc", 9090)]
CLUSTER_IP_BASE = int(ipaddress.IPv4Address("10.96.0.0"))
HEADLESS_BASE = int(ipaddress.IPv4Address("10.32.0.0"))
ENDPOINT_BASE = int(ipaddress.IPv4Address("10.64.0.0"))


def address(base: int, index: int) -> str:
    return str(ipaddress.IPv4Address(base + index + 1))


def dashed(addr: str) -> str:
    return addr.replace(".", "-")


def spec_ports() -> list:
    return [{"name": name, "port": port, "protocol": "TCP"} for name, port in PORTS]


class Cluster:
    """The generated cluster; every list is in a stable order."""

    def __init__(self, args):
        self.namespaces = [f"ns-{n:04d}" for n in range(args.namespaces)]
        # (namespace, name, cluster_ip, [endpoint addresses])
        self.cluster_ip = []
        for n, namespace in enumerate(self.namespaces):
            for s in range(args.services):
                index = n * args.services + s
                endpoints = [
                    address(ENDPOINT_BASE, index * args.cluster_ip_endpoints + e)
                    for e in range(args.cluster_ip_endpoints)
                ]
                self.cluster_ip.append((namespace, f"svc-{s:03d}", address(CLUSTER_IP_BASE, index), endpoints))
        # (namespace, name, [endpoint addresses])
        self.headless = []
        for h in range(args.headless):
            namespace = self.namespaces[h % len(self.namespaces)]
            endpoints = [address(HEADLESS_BASE, h * args.headless_endpoints + e) for e in range(args.headless_endpoints)]
            self.headless.append((namespace, f"db-{h:05d}", endpoints))


def service(namespace: str, name: str, cluster_ip: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": spec_ports()},
    }


def endpoint_slice(namespace: str, name: str, addresses: list) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-1",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": spec_ports(),
    }


def write_catalog(out: str, cluster: Cluster) -> None:
    directory = os.path.join(out, "catalog")
    os.makedirs(directory, exist_ok=True)
    items = {namespace: [] for namespace in cluster.namespaces}
    for namespace, name, cluster_ip, endpoints in cluster.cluster_ip:
        items[namespace].append(service(namespace, name, cluster_ip))
        if endpoints:
            items[namespace].append(endpoint_slice(namespace, name, endpoints))
    for namespace, name, endpoints in cluster.headless:
        items[namespace].append(service(namespace, name, "None"))
        items[namespace].append(endpoint_slice(namespace, name, endpoints))
    for namespace, objects in items.items():
        path = os.path.join(directory, f"{namespace}.json")
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": objects}, f, separators=(",", ":"))


def write_zone(path: str, cluster: Cluster, ttl: int) -> None:
    """The records signpost's `kubernetes` plugin compiles from the catalog."""
    lines = [
        f"$ORIGIN {ZONE}.",
        f"$TTL {ttl}",
        f"@ SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 {ttl}",
        f"@ NS ns.dns.{ZONE}.",
        'dns-version TXT "1.1.0"',
    ]
    for namespace, name, cluster_ip, _ in cluster.cluster_ip:
        owner = f"{name}.{namespace}.svc"
        lines.append(f"{owner} A {cluster_ip}")
        for port_name, port in PORTS:
            lines.append(f"_{port_name}._tcp.{owner} SRV 0 100 {port} {owner}.{ZONE}.")
    for namespace, name, endpoints in cluster.headless:
        owner = f"{name}.{namespace}.svc"
        weight = max(1, 100 // max(1, len(endpoints)))
        for a in endpoints:
            lines.append(f"{owner} A {a}")
            lines.append(f"{dashed(a)}.{owner} A {a}")
        for port_name, port in PORTS:
            for a in endpoints:
                lines.append(f"_{port_name}._tcp.{owner} SRV 0 {weight} {port} {dashed(a)}.{owner}.{ZONE}.")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def a_names(cluster: Cluster) -> list:
    return [f"{name}.{namespace}.svc.{ZONE}" for namespace, name, _, _ in cluster.cluster_ip] + [
        f"{name}.{namespace}.svc.{ZONE}" for namespace, name, _ in cluster.headless
    ]


def write_queries(out: str, cluster: Cluster, count: int, seed: int) -> None:
    rng = random.Random(seed)
    names = a_names(cluster)
    cluster_ip_names = names[: len(cluster.cluster_ip)]
    namespaces = cluster.namespaces

    def pick_a() -> str:
        return f"{rng.choice(names)} A"

    mix_a = [pick_a() for _ in range(count)]
    mix_b = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.70:
            mix_b.append(pick_a())
        elif roll < 0.80:
            mix_b.append(f"_http._tcp.{rng.choice(names)} SRV")
        elif roll < 0.90:
            mix_b.append(f"{rng.choice(cluster_ip_names)} AAAA")
        else:
            mix_b.append(f"missing-{rng.randrange(1_000_000)}.{rng.choice(namespaces)}.svc.{ZONE} A")
    for label, lines in (("a", mix_a), ("mix", mix_b)):
        with open(os.path.join(out, f"queries-{label}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    check = [
        f"{names[0]} A",
        f"{names[-1]} A",
        f"_http._tcp.{names[0]} SRV",
        f"_grpc._tcp.{names[-1]} SRV",
        f"{names[1]} AAAA",
        f"missing.{namespaces[0]}.svc.{ZONE} A",
        f"{namespaces[0]}.svc.{ZONE} A",
        f"dns-version.{ZONE} TXT",
        f"{ZONE} SOA",
    ]
    if cluster.headless:
        namespace, name, endpoints = cluster.headless[0]
        check.append(f"{dashed(endpoints[0])}.{name}.{namespace}.svc.{ZONE} A")
    with open(os.path.join(out, "check.txt"), "w") as f:
        f.write("\n".join(check) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--services", type=int, default=100, help="ClusterIP services per namespace")
    parser.add_argument("--headless", type=int, default=1000)
    parser.add_argument("--headless-endpoints", type=int, default=5)
    parser.add_argument("--cluster-ip-endpoints", type=int, default=0)
    parser.add_argument("--zone-file", action="store_true")
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.namespaces * args.services + args.headless > 1_000_000:
        parser.error("at most 1,000,000 services (addresses come from one /12 each)")

    cluster = Cluster(args)
    os.makedirs(args.out, exist_ok=True)
    write_catalog(args.out, cluster)
    if args.zone_file:
        write_zone(os.path.join(args.out, f"{ZONE}.zone"), cluster, TTL)
        write_zone(os.path.join(args.out, f"{ZONE}.ttl3600.zone"), cluster, 3600)
    write_queries(args.out, cluster, args.queries, args.seed)
    endpoints = sum(len(e) for _, _, _, e in cluster.cluster_ip) + sum(len(e) for _, _, e in cluster.headless)
    print(f"services={len(cluster.cluster_ip) + len(cluster.headless)} endpoints={endpoints} "
          f"namespaces={len(cluster.namespaces)}")


if __name__ == "__main__":
    main()
