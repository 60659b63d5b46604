"""How much it costs this machine to touch memory for the first time, against memory touched
again: the price every big array of a large audit pays once per allocation.

On a virtual machine whose host backs guest memory lazily and takes freed pages back (virtio
balloon free page reporting), a page the guest has not used for a few seconds must be backed
by the host again on its next touch. Run:

    .venv/bin/python benchmarks/fresh_memory.py [--gib 4] [--rest 0,3,10,30]

It fills an array of --gib GiB three ways: the first fill of a new array (fresh pages), a
second fill of the same array (pages already backed), and a new array made again after the
process has rested --rest seconds with the old one freed.

With --codes N it then counts N random int32 codes (as the audit counts 200M links per target)
with one np.bincount, which first widens all of them into a fresh 64-bit copy, and with
linkjuice.audit._count_codes, a slice at a time, each after 3 s of rest:

    .venv/bin/python benchmarks/fresh_memory.py --gib 4 --rest 0,3 --codes 197000000
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _fill_seconds(array: np.ndarray, value: int) -> float:
    start = time.perf_counter()
    array.fill(value)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=4.0, help="array size in GiB")
    parser.add_argument("--rest", default="0,3,10,30", help="seconds to rest before each new array")
    parser.add_argument("--codes", type=int, default=0, help="also count this many int32 codes (0: no)")
    args = parser.parse_args()
    n = int(args.gib * 2**30) // 8
    print(f"{'rest before':>12} {'first fill':>12} {'second fill':>12}")
    for rest in (float(s) for s in args.rest.split(",")):
        time.sleep(rest)
        array = np.empty(n, np.int64)
        first = _fill_seconds(array, 1)
        second = _fill_seconds(array, 2)
        del array
        print(f"{rest:>10.0f} s {args.gib / first:>8.2f} GiB/s {args.gib / second:>8.2f} GiB/s", flush=True)
    if args.codes:
        from linkjuice.audit import _count_codes

        codes = np.random.default_rng(0).integers(0, args.codes // 20, args.codes, dtype=np.int32)
        m = args.codes // 20 + 1
        for name, count in (("np.bincount", lambda: np.bincount(codes, minlength=m)),
                            ("_count_codes", lambda: _count_codes(codes, m))) * 2:
            time.sleep(3)
            start = time.perf_counter()
            count()
            print(f"{name:>12} of {args.codes:,} codes: {time.perf_counter() - start:.2f} s", flush=True)


if __name__ == "__main__":
    main()
