"""How much it costs this machine to touch memory for the first time, against memory touched
again: the price every big array of a large audit pays once per allocation.

On a virtual machine whose host backs guest memory lazily and takes freed pages back (virtio
balloon free page reporting), a page the guest has not used for a few seconds must be backed
by the host again on its next touch. Run:

    .venv/bin/python benchmarks/fresh_memory.py [--gib 4] [--rest 0,3,10,30]

It fills an array of --gib GiB three ways: the first fill of a new array (fresh pages), a
second fill of the same array (pages already backed), and a new array made again after the
process has rested --rest seconds with the old one freed.
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


if __name__ == "__main__":
    main()
