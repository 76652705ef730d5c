#!/usr/bin/env python3
"""Writes the seed corpus of both fuzz targets (standard library only).

    python3 fuzz/seeds.py          # (re)writes fuzz/corpus/{answer,parse_query}/

The seeds are the query shapes the targets care about: names of every zone
kind the `answer` target serves (cluster services, headless with truncation
and with an answer between 512 and 1232 bytes,
pods, reverse, ExternalName, a zone file with a wildcard and a delegation,
SkyDNS), EDNS with and without Client Subnet, and one of each malformed or
refused kind (two OPT records, a bad ECS option, EDNS version 1, another
opcode, two questions, a response, class CH, AXFR, a short datagram, a
pointer in the question). Each file is one datagram, named after what it is
(`*.seed`: what libFuzzer adds to these directories is ignored by git).
CI fuzzes each target for 60 s starting from these (scripts/test).
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def name(text):
    out = b""
    for label in text.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def opt(size=1232, version=0, do=False, options=b""):
    flags = 0x8000 if do else 0
    return b"\0" + struct.pack(">HHBBHH", 41, size, 0, version, flags, len(options)) + options


def ecs(family, source, scope, address):
    data = struct.pack(">HBB", family, source, scope) + address
    return struct.pack(">HH", 8, len(data)) + data


def query(qname, qtype, qclass=1, additional=(), flags=0x0100, qdcount=1, ident=0x5eed):
    header = struct.pack(">HHHHHH", ident, flags, qdcount, 0, 0, len(additional))
    return header + name(qname) + struct.pack(">HH", qtype, qclass) + b"".join(additional)


A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, AXFR = 1, 2, 5, 6, 12, 15, 16, 28, 33, 252

SEEDS = {
    "a-cluster-ip": query("kubernetes.default.svc.cluster.local", A),
    "aaaa-edns-do": query("kubernetes.default.svc.cluster.local", AAAA, additional=[opt(1232, do=True)]),
    "srv-headless-edns-4096": query("_postgres._tcp.db.data.svc.cluster.local", SRV, additional=[opt(4096)]),
    "a-headless-truncates": query("db.data.svc.cluster.local", A),
    "a-headless-over-512": query("cache.data.svc.cluster.local", A),
    "a-headless-over-512-edns": query("cache.data.svc.cluster.local", A, additional=[opt(1232)]),
    "a-endpoint-hostname": query("db-3.db.data.svc.cluster.local", A),
    "ptr-reverse": query("1.0.96.10.in-addr.arpa", PTR),
    "a-pod-insecure": query("10-1-2-3.default.pod.cluster.local", A),
    "a-external-name": query("search.default.svc.cluster.local", A),
    "txt-dns-version": query("dns-version.cluster.local", TXT),
    "soa-apex": query("cluster.local", SOA),
    "a-nxdomain-mixed-case": query("Nothing.Default.SVC.cluster.local", A),
    "a-wildcard-file": query("x.wild.example.test", A),
    "a-delegated": query("host.sub.example.test", A),
    "ns-file-apex": query("example.test", NS),
    "srv-skydns": query("prod.region1.skydns.test", SRV),
    "a-skydns-wildcard": query("prod.*.skydns.test", A),
    "mx-skydns": query("mail.region1.skydns.test", MX),
    "a-outside-refused": query("example.com", A),
    "ptr-ip6-fallthrough": query("1.0.0.0.d.f.ip6.arpa", PTR),
    "a-ecs-v4": query("kubernetes.default.svc.cluster.local", A,
                      additional=[opt(options=ecs(1, 24, 0, bytes([192, 0, 2])))]),
    "a-ecs-v6": query("kubernetes.default.svc.cluster.local", AAAA,
                      additional=[opt(options=ecs(2, 48, 0, bytes([0x20, 0x01, 0x0d, 0xb8, 0, 3])))]),
    "formerr-ecs-scope": query("kubernetes.default.svc.cluster.local", A,
                               additional=[opt(options=ecs(1, 24, 8, bytes([192, 0, 2])))]),
    "formerr-two-opt": query("kubernetes.default.svc.cluster.local", A, additional=[opt(), opt()]),
    "badvers-edns-1": query("kubernetes.default.svc.cluster.local", A, additional=[opt(version=1)]),
    "notimp-opcode-2": query("kubernetes.default.svc.cluster.local", A, flags=0x1100),
    "formerr-qdcount-2": query("kubernetes.default.svc.cluster.local", A, qdcount=2),
    "drop-response": query("kubernetes.default.svc.cluster.local", A, flags=0x8100),
    "refused-class-ch": query("version.bind", TXT, qclass=3),
    "refused-axfr": query("cluster.local", AXFR),
    "drop-short": bytes(11),
    "formerr-pointer-in-question": struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\0\x01\0\x01",
}


def main():
    for target in ("answer", "parse_query"):
        directory = os.path.join(HERE, "corpus", target)
        os.makedirs(directory, exist_ok=True)
        for seed, packet in SEEDS.items():
            with open(os.path.join(directory, seed + ".seed"), "wb") as out:
                out.write(packet)


if __name__ == "__main__":
    main()
