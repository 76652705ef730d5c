#!/usr/bin/env python3
"""Compares two servers' answers to the questions of check.txt (standard library only).

    compare.py A.txt B.txt      # exit 0 when both answer alike, 1 with the differences
    compare.py --self-test      # checks this comparison on made-up answers

Each file is what `bench/dns/run` (check_answers) captured from one server: for
every question a line `== NAME TYPE`, the records dig printed (`+nocomments
+noquestion`: answer, authority and additional records), the `status: RCODE`
and the `MSG SIZE` line. Two answers are alike when every question has the same
RCODE and the same records, in any order, after leaving out what may honestly
differ between a server and its peer: TTLs (a cache ages them), the SOA serial
(signpost's is the time of its snapshot), the message size (name compression
differs) and the letter case of owner names (RFC 4343 §3). Anything else that differs is a wrong answer, and a
benchmark that compares speed must not go on with one.
"""

import sys


def normalize(line):
    """A record line with its owner in lower case (names compare without
    case, RFC 4343 §3) and without TTL and SOA serial; other lines as they are."""
    fields = line.split()
    if len(fields) >= 4 and not line.startswith(("==", "status:")):
        fields[0] = fields[0].lower()
        fields[1] = "TTL"
        if fields[3] == "SOA" and len(fields) >= 7:
            fields[6] = "SERIAL"
    return " ".join(fields)


def answers(text):
    """{question: sorted normalized lines} of one capture."""
    result, question = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";") or line.startswith("MSG SIZE"):
            continue
        if line.startswith("== "):
            question = line[3:]
            result[question] = []
            continue
        if question is None:
            raise ValueError(f"a line before the first question: {line!r}")
        result[question].append(normalize(line))
    return {q: sorted(lines) for q, lines in result.items()}


def differences(first, second, names=("A", "B")):
    """Human-readable differences between two captures; empty when alike."""
    a, b = answers(first), answers(second)
    out = []
    for question in sorted(set(a) | set(b)):
        if question not in a or question not in b:
            missing = names[0] if question not in a else names[1]
            out.append(f"{question}: not asked of {missing}")
            continue
        if a[question] != b[question]:
            only_a = [l for l in a[question] if l not in b[question]]
            only_b = [l for l in b[question] if l not in a[question]]
            out.append(f"{question}: only {names[0]}: {only_a}; only {names[1]}: {only_b}")
    return out


def self_test():
    base = """== web.default.svc.cluster.local A
web.default.svc.cluster.local. 30 IN A 10.96.0.5
status: NOERROR
MSG SIZE  rcvd: 88
== db.default.svc.cluster.local A
db.default.svc.cluster.local. 30 IN A 10.1.0.1
db.default.svc.cluster.local. 30 IN A 10.1.0.2
status: NOERROR
MSG SIZE  rcvd: 120
== nothing.cluster.local A
cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 30
status: NXDOMAIN
MSG SIZE  rcvd: 140
"""
    alike = {
        "identical": base,
        "other TTLs": base.replace(". 30 IN A 10.96", ". 7 IN A 10.96"),
        "another SOA serial": base.replace("1700000000", "1"),
        "records in another order": base.replace(
            "db.default.svc.cluster.local. 30 IN A 10.1.0.1\ndb.default.svc.cluster.local. 30 IN A 10.1.0.2",
            "db.default.svc.cluster.local. 30 IN A 10.1.0.2\ndb.default.svc.cluster.local. 30 IN A 10.1.0.1"),
        "another message size (compression)": base.replace("rcvd: 88", "rcvd: 97"),
        "tabs instead of spaces": base.replace(" IN A 10.96.0.5", "\tIN\tA\t10.96.0.5"),
        "an owner in other letter case": base.replace("web.default.svc.cluster.local. 30", "WEB.default.svc.cluster.local. 30"),
    }
    different = {
        "another address": base.replace("10.96.0.5", "10.96.0.6"),
        "a record missing": base.replace("db.default.svc.cluster.local. 30 IN A 10.1.0.2\n", ""),
        "a record too many": base.replace("status: NOERROR\nMSG SIZE  rcvd: 88",
                                          "status: NOERROR\nMSG SIZE  rcvd: 88".replace(
                                              "status", "web.default.svc.cluster.local. 30 IN A 10.96.0.9\nstatus", 1)),
        "another RCODE": base.replace("status: NXDOMAIN", "status: SERVFAIL"),
        "no SOA in the negative answer": base.replace(
            "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 30\n", ""),
        "another SOA field than the serial": base.replace(" 7200 1800", " 7200 1801"),
        "another owner": base.replace("web.default.svc.cluster.local. 30", "www.default.svc.cluster.local. 30"),
        "a question not asked": base.split("== nothing")[0],
    }
    failed = []
    for case, text in alike.items():
        if differences(base, text):
            failed.append(f"should be alike: {case}: {differences(base, text)}")
    for case, text in different.items():
        if not differences(base, text):
            failed.append(f"should differ: {case}")
    for problem in failed:
        print(problem, file=sys.stderr)
    print(f"compare.py self-test: {len(alike) + len(different) - len(failed)} of "
          f"{len(alike) + len(different)} cases right")
    return 1 if failed else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as a, open(argv[2], encoding="utf-8") as b:
        found = differences(a.read(), b.read(), (argv[1], argv[2]))
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
