#!/usr/bin/env python3
"""Benchmark inputs for bench/delta.sh.

base:  SIZE bytes, 64 KiB blocks: 60 % random data, 40 % holes (a sparse, image-like file).
new:   a sparse copy of base with 1 % of the blocks rewritten (a quarter of them relocated copies of
       other data blocks, the rest new random data) and APPEND bytes of random data appended.
Deterministic (fixed seed) so every run measures the same change.
"""
import os
import random
import sys

BLOCK = 64 * 1024


def main():
    base_path, new_path, size, append = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(20261126)
    blocks = size // BLOCK
    data_blocks = [i for i in range(blocks) if rng.random() < 0.6]
    with open(base_path, "wb") as f:
        for i in data_blocks:
            f.seek(i * BLOCK)
            f.write(rng.randbytes(BLOCK))
        f.truncate(size)
    os.system(f"cp --sparse=always '{base_path}' '{new_path}'")
    changed = rng.sample(range(blocks), max(1, blocks // 100))
    changed_bytes = 0
    with open(new_path, "r+b") as src, open(new_path, "r+b") as f:
        for n, i in enumerate(changed):
            if n % 4 == 0:
                src.seek(rng.choice(data_blocks) * BLOCK)  # relocated cluster: a copy of another block
                block = src.read(BLOCK)
            else:
                block = rng.randbytes(BLOCK)
            f.seek(i * BLOCK)
            f.write(block)
            changed_bytes += BLOCK
        f.seek(size)
        f.write(rng.randbytes(append))
        changed_bytes += append
    print(f"blocks={blocks} data_blocks={len(data_blocks)} rewritten_blocks={len(changed)} changed_bytes={changed_bytes}")


if __name__ == "__main__":
    main()
