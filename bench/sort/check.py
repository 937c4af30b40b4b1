"""Checks a sorted output of `kask gen sort` records: every record once, keys in order.

    python check.py RECORDS PART...

The parts are read in the order given (part-00000 first). Every key must be at least the one
before it, across parts too; the payloads' record numbers (their first 32 hex digits) must be
0 .. RECORDS-1, each once: their count, their sum and the sum of their squares (modulo 2^64)
are compared with those of 0 .. RECORDS-1. Prints one line; exits 1 if the output is wrong.
Vectorised with NumPy: 1e8 records take about a minute.
"""

import sys

import numpy as np
import pyarrow.parquet as pq

HEX = np.full(256, 255, dtype=np.uint64)
HEX[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10, dtype=np.uint64)
HEX[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint64)


def rows(column, width):
    """A fixed-size binary column's values as a (rows, width) array of bytes."""
    buf = np.frombuffer(column.buffers()[1], dtype=np.uint8)
    start = column.offset * width
    return buf[start:start + len(column) * width].reshape(-1, width)


def key_order(keys):
    """Each key as (its first 8 bytes, its last 2), big-endian: ordered as the bytes are."""
    hi = keys[:, :8].copy().view(">u8").ravel().astype(np.uint64)
    lo = keys[:, 8:10].copy().view(">u2").ravel().astype(np.uint64)
    return hi, lo


def main():
    records = int(sys.argv[1])
    parts = sys.argv[2:]
    count = 0
    total = np.uint64(0)
    squares = np.uint64(0)
    last = None
    for path in parts:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 20, columns=["key", "payload"]):
            if batch.num_rows == 0:
                continue
            if batch.column(0).null_count or batch.column(1).null_count:
                sys.exit(f"sort: FAIL {path}: null keys or payloads")
            hi, lo = key_order(rows(batch.column(0), 10))
            if last is not None and (hi[0], lo[0]) < last:
                sys.exit(f"sort: FAIL {path}: a key smaller than the one before it")
            bad = (hi[1:] < hi[:-1]) | ((hi[1:] == hi[:-1]) & (lo[1:] < lo[:-1]))
            if bad.any():
                sys.exit(f"sort: FAIL {path}: keys out of order at row {int(np.argmax(bad)) + 1}")
            last = (hi[-1], lo[-1])
            digits = HEX[rows(batch.column(1), 90)[:, :32]]
            if (digits == 255).any() or digits[:, :16].any():
                sys.exit(f"sort: FAIL {path}: a payload that does not start with a record number")
            numbers = np.zeros(len(digits), dtype=np.uint64)
            for i in range(16, 32):
                numbers = (numbers << np.uint64(4)) | digits[:, i]
            count += len(numbers)
            with np.errstate(over="ignore"):
                total += numbers.sum(dtype=np.uint64)
                squares += (numbers * numbers).sum(dtype=np.uint64)
    n = records
    want = (n, (n * (n - 1) // 2) % 2**64, ((n - 1) * n * (2 * n - 1) // 6) % 2**64)
    if (count, int(total), int(squares)) != want:
        sys.exit(f"sort: FAIL {count} records (want {n}), or some twice and some missing")
    print(f"sort: ok    {count} records in {len(parts)} parts, keys in order, each record once")


main()
