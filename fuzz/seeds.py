#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target (standard library only).

    python3 fuzz/seeds.py          # (re)writes fuzz/corpus/*/ *.seed

The datagram targets (`answer`, `parse_query`) get the queries below; the
file and document targets get the repository's own examples and fixtures
(FILE_SEEDS: the example Corefile, the kubeadm and k3s Corefiles, the e2e
zone files, the example catalog and the catalog test data, the health
controller ConfigMap) and literal provider answers and registry values
(TEXT_SEEDS), shaped as the providers' documentation shows them.

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


ROOT = os.path.dirname(HERE)

# target -> repository files (relative to the repository root) used as seeds.
FILE_SEEDS = {
    "corefile": [
        "examples/Corefile",
        "crates/signpost/tests/e2e/data/corefiles/k3s.Corefile",
        "crates/signpost/tests/e2e/data/corefiles/kubeadm.Corefile",
    ],
    "zonefile": [
        "crates/signpost/tests/e2e/data/zones/example.test.zone",
        "crates/signpost/tests/e2e/data/zones/reverse.zone",
    ],
    "catalog": [
        "examples/catalog/default.yaml",
        "examples/catalog/shop.yaml",
        "crates/discovery/tests/data/kubectl-list.yaml",
        "crates/discovery/tests/data/multi.yaml",
        "crates/discovery/tests/data/cluster.json",
        "crates/discovery/tests/data/tree/sub/20-slices.yml",
        "crates/discovery/tests/data/errors/bad-ips.yaml",
        "crates/discovery/tests/data/errors/syntax.yaml",
    ],
    "controller": [
        "crates/signpost/tests/data/dns-health-controller-config.yaml",
    ],
}

ZONE_AT_EXAMPLE_COM = b"""$ORIGIN example.com.
$TTL 3600
@ IN SOA ns1 hostmaster ( 2024010101 7200 3600 1209600 300 )
  IN NS ns1
  IN MX 10 mail
ns1 IN A 192.0.2.1
mail IN AAAA 2001:db8::25
www 300 IN CNAME @
*.wild IN TXT "hello" "world\032!"
_sip._tcp IN SRV 10 60 5060 sip
sub IN NS ns.sub
ns.sub IN A 192.0.2.53
"""

BARE_CONTROLLER = b"""healthCheck:
  interval: 10s
  timeout: 3s
  failureThreshold: 3
  successThreshold: 1
  jitter: 0s
  maxConcurrent: 256
endpoints:
  healthCheckPath: /health
  removeUnhealthyDelay: 30s
leaderElection:
  leaseDuration: 15s
  renewDeadline: 10s
  retryPeriod: 2s
"""


def axfr_message():
    header = struct.pack(">HHHHHH", 1, 0x8400, 1, 6, 0, 0)
    question = name("example.com") + struct.pack(">HH", 252, 1)

    def rr(owner, rtype, rdata, ttl=300):
        return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata

    apex = b"\xc0\x0c"
    soa = name("ns1.example.com") + name("hostmaster.example.com") + struct.pack(">IIIII", 1, 2, 3, 4, 5)
    return (header + question + rr(apex, SOA, soa)
            + rr(name("www.example.com"), A, bytes([192, 0, 2, 1]))
            + rr(name("a-www.example.com"), TXT, b"\x2a" + b"heritage=external-dns,external-dns/owner=x")
            + rr(name("mx.example.com"), MX, struct.pack(">H", 10) + apex)
            + rr(name("_s._tcp.example.com"), SRV, struct.pack(">HHH", 1, 2, 3) + apex)
            + rr(apex, SOA, soa))


PDNS_ZONE = (b'{"id":"example.com.","name":"example.com.","kind":"Native","serial":1,"rrsets":['
             b'{"name":"www.example.com.","type":"A","ttl":300,"records":[{"content":"192.0.2.1","disabled":false}]},'
             b'{"name":"a-www.example.com.","type":"TXT","ttl":300,"records":[{"content":"\\"heritage=external-dns,external-dns/owner=default\\"","disabled":false}]},'
             b'{"name":"off.example.com.","type":"A","ttl":60,"records":[{"content":"192.0.2.9","disabled":true}]}]}')

ROUTE53_PAGE = (b'<?xml version="1.0"?>\n<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
                b'<ResourceRecordSets>'
                b'<ResourceRecordSet><Name>\\052.example.com.</Name><Type>A</Type><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>192.0.2.1</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>'
                b'<ResourceRecordSet><Name>lb.example.com.</Name><Type>AAAA</Type><AliasTarget><HostedZoneId>Z35SXDOTRQ7X7K</HostedZoneId><DNSName>x.us-east-1.elb.amazonaws.com.</DNSName><EvaluateTargetHealth>false</EvaluateTargetHealth></AliasTarget></ResourceRecordSet>'
                b'<ResourceRecordSet><Name>geo.example.com.</Name><Type>A</Type><SetIdentifier>eu</SetIdentifier><Region>eu-west-1</Region><TTL>30</TTL><ResourceRecords><ResourceRecord><Value>192.0.2.9</Value></ResourceRecord></ResourceRecords><HealthCheckId>hc-1</HealthCheckId></ResourceRecordSet>'
                b'</ResourceRecordSets><IsTruncated>true</IsTruncated><NextRecordName>z.example.com.</NextRecordName><NextRecordType>A</NextRecordType><MaxItems>300</MaxItems>'
                b'</ListResourceRecordSetsResponse>')

ROUTE53_ERROR = (b'<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
                 b'<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>'
                 b'<RequestId>1</RequestId></ErrorResponse>')

CLOUDFLARE_RECORDS = (b'{"success":true,"errors":[],"messages":[],"result":['
                      b'{"id":"372e67954025e0ba6aaa6d586b9e0b59","zone_id":"023e105f4ecef8ad9ca31a8372d0c353","name":"www.example.com","type":"A","content":"198.51.100.4","proxied":true,"ttl":1},'
                      b'{"id":"2","name":"example.com","type":"MX","content":"mail.example.com","priority":10,"ttl":300}],'
                      b'"result_info":{"page":1,"per_page":100,"count":2,"total_count":3,"total_pages":2}}')

CLOUDFLARE_ZONES = (b'{"success":true,"errors":[],"result":[{"id":"023e105f4ecef8ad9ca31a8372d0c353","name":"example.com","status":"active"}],'
                    b'"result_info":{"page":1,"per_page":50,"total_pages":1}}')

GOOGLE_RRSETS = (b'{"kind":"dns#resourceRecordSetsListResponse","rrsets":['
                 b'{"kind":"dns#resourceRecordSet","name":"www.example.com.","type":"A","ttl":300,"rrdatas":["192.0.2.1","192.0.2.2"]},'
                 b'{"name":"example.com.","type":"SOA","ttl":21600,"rrdatas":["ns-cloud-a1.googledomains.com. cloud-dns-hostmaster.google.com. 1 21600 3600 259200 300"]},'
                 b'{"name":"a-www.example.com.","type":"TXT","ttl":300,"rrdatas":["\\"heritage=external-dns,external-dns/owner=default\\""]}],'
                 b'"nextPageToken":"CkE"}')

AZURE_RECORDSETS = (b'{"value":['
                    b'{"id":"/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/dnszones/example.com/A/www","name":"www","type":"Microsoft.Network/dnszones/A","etag":"x","properties":{"TTL":300,"fqdn":"www.example.com.","ARecords":[{"ipv4Address":"192.0.2.1"}]}},'
                    b'{"name":"@","type":"Microsoft.Network/dnszones/MX","properties":{"TTL":3600,"MXRecords":[{"preference":10,"exchange":"mail.example.com"}]}},'
                    b'{"name":"a-www","type":"Microsoft.Network/dnszones/TXT","properties":{"TTL":300,"TXTRecords":[{"value":["heritage=external-dns,external-dns/owner=default"]}]}},'
                    b'{"name":"alias","type":"Microsoft.Network/dnszones/CNAME","properties":{"TTL":300,"CNAMERecord":{"cname":"www.example.com"}}}],'
                    b'"nextLink":"https://management.azure.com/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/dnsZones/example.com/recordsets?api-version=2018-05-01&$skipToken=x"}')

# target -> {seed name: bytes}. provider_responses: the first byte picks the
# reader (fuzz_targets/provider_responses.rs).
TEXT_SEEDS = {
    "zonefile": {"example-com": ZONE_AT_EXAMPLE_COM},
    "controller": {"bare": BARE_CONTROLLER, "flow": b"healthCheck: {interval: 5s, timeout: 1s}\n"},
    "skydns": {
        "a-record": b'/skydns/test/skydns/x1\0{"host":"10.0.0.1","port":8080,"ttl":60}',
        "srv-name": b'/skydns/test/skydns/region1/prod/x2\0{"host":"dev.server1","port":8080,"priority":10,"weight":20}',
        "aaaa": b'/skydns/test/skydns/x3\0{"host":"::1"}',
        "txt": b'/skydns/test/skydns/x4\0{"text":"hello","ttl":30}',
        "mail": b'/skydns/test/skydns/mail/x5\0{"host":"mx.skydns.test","mail":true,"priority":10}',
        "group": b'/skydns/test/skydns/g/x6\0{"host":"10.0.0.6","group":"g1","targetstrip":1}',
    },
    "txt_registry": {
        "labels": b'"heritage=external-dns,external-dns/owner=default,external-dns/resource=service/default/web"',
        "labels-bare": b"heritage=external-dns,external-dns/owner=cluster-a",
        "name-typed": b"cname-www.example.com",
        "name-prefixed": b"a-txt.www.example.com",
        # External-dns's documented layout: nonce 01..0c, key
        # "passphrasewhichneedstobe32bytes!" (the key the target uses).
        "encrypted": b"AQIDBAUGBwgJCgsM+UupjtEDBd9ydJ3g8OWSHVQG2HwdY1QwzWZof+ALZnAW0mSM//qiEjjxvlII5wM6gjl4/4XHo+lRRijSVGa2A/yaFps2bpfeQpQ1643pmLR2WcIg9q3/Qwb13VgITKXhg/Ld1A==",
    },
    "provider_responses": {
        "axfr": b"\x00" + axfr_message(),
        "pdns-zone": b"\x01" + PDNS_ZONE,
        "route53-page": b"\x02" + ROUTE53_PAGE,
        "route53-error": b"\x02" + ROUTE53_ERROR,
        "cloudflare-records": b"\x03" + CLOUDFLARE_RECORDS,
        "cloudflare-zones": b"\x04" + CLOUDFLARE_ZONES,
        "google-rrsets": b"\x05" + GOOGLE_RRSETS,
        "azure-recordsets": b"\x06" + AZURE_RECORDSETS,
    },
}


def write(target, seed, data):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, seed + ".seed"), "wb") as out:
        out.write(data)


def main():
    for target in ("answer", "parse_query"):
        for seed, packet in SEEDS.items():
            write(target, seed, packet)
    for target, paths in FILE_SEEDS.items():
        for path in paths:
            with open(os.path.join(ROOT, path), "rb") as source:
                write(target, os.path.basename(path).replace(".", "-"), source.read())
    for target, seeds in TEXT_SEEDS.items():
        for seed, data in seeds.items():
            write(target, seed, data)


if __name__ == "__main__":
    main()
