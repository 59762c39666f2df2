"""The one place a key is mapped to its shard.

Jump consistent hashing (Lamping & Veach, 2014) over a 64-bit BLAKE2b digest: stable across
processes and Python versions (unlike `hash()`), and when the shard count grows from n to n+1 only
1/(n+1) of the keys move.
"""
from __future__ import annotations

from hashlib import blake2b


def _key_hash(key: str) -> int:
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big")


def jump_hash(key: int, buckets: int) -> int:
    if buckets < 1:
        raise ValueError("buckets must be >= 1")
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_for(key: str, shards: int) -> int:
    """The shard index in [0, shards) that owns `key`."""
    return jump_hash(_key_hash(key), shards)


def group_by_shard(keys, shards: int) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for key in keys:
        out.setdefault(shard_for(key, shards), []).append(key)
    return out
