#!/usr/bin/env python3
"""Query files for bench/dns/run's forwarding modes (Python 3 standard library only).

    forwarding.py new  A_QUERIES TAG COUNT OUT   # 90 % lines of A_QUERIES (cycled), 10 % never-seen names
    forwarding.py miss TAG COUNT OUT             # COUNT never-seen names
    forwarding.py capacity NAMES COUNT OUT           # COUNT uniform picks among NAMES names (the 30,000-name working set)

Never-seen names are `TAG-N.new.cluster.local A`: the upstream Knot answers
every name under `new.cluster.local` from a wildcard, so each is a cache miss
that the upstream answers NOERROR. TAG differs per server and round, so no
name is ever asked twice in a run. The capacity set is `w-N.new.cluster.local`,
N < NAMES, picked with a fixed seed.
"""

import random
import sys


def main() -> None:
    mode = sys.argv[1]
    if mode == "new":
        base_path, tag, count, out = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        base = [line for line in open(base_path) if line.strip()]
        with open(out, "w") as f:
            for i in range(count):
                if i % 10 == 9:
                    f.write(f"{tag}-{i}.new.cluster.local A\n")
                else:
                    f.write(base[i % len(base)])
    elif mode == "miss":
        tag, count, out = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        with open(out, "w") as f:
            for i in range(count):
                f.write(f"{tag}-{i}.new.cluster.local A\n")
    elif mode == "capacity":
        names, count, out = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        rng = random.Random(1)
        with open(out, "w") as f:
            for _ in range(count):
                f.write(f"w-{rng.randrange(names)}.new.cluster.local A\n")
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
