"""The two hash functions of the template language: `uniqueString` and `guid`.

Neither algorithm is in Azure's documentation, which promises only "a deterministic hash ... 13
characters" and "36 characters in the format of a globally unique identifier". What is written
here is what public re-implementations agree on (two independent ones, one saying it follows
Microsoft's own library; their published test values are in test_azure_double_arm_language.py).
It has not been checked against a value produced by a real deployment:

- uniqueString: the arguments joined with '-', UTF-8, hashed with a 64-bit variant of
  MurmurHash3 (the x86 128-bit mixing steps on two 32-bit lanes, seed 0), and the 64 bits written
  most significant first, 5 bits per character, in the RFC 4648 base32 alphabet in lower case,
  13 characters (the last one carries the remaining 4 bits).
- guid: an RFC 4122 version-5 UUID (SHA-1) of the arguments joined with '-' in ARM's namespace.

Whatever Azure's exact algorithm, the double only needs to be self-consistent: every name it
derives (what-if, validate, deployment outputs, later GETs) goes through these two functions."""
from __future__ import annotations

import uuid

_MASK = 0xFFFFFFFF
_C1, _C2 = 0x239B961B, 0xAB0E9789          # MurmurHash3 x86_128 block constants
_N1, _N2 = 0x561CCD1B, 0x0BCAA747          # ... and its per-lane additive constants
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_GUID_NAMESPACE = uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def _mix_k1(k: int) -> int:
    return (_rotl((k * _C1) & _MASK, 15) * _C2) & _MASK


def _mix_k2(k: int) -> int:
    return (_rotl((k * _C2) & _MASK, 17) * _C1) & _MASK


def _fmix(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


def murmur64(data: bytes) -> int:
    """Two 32-bit MurmurHash3 lanes over 8-byte blocks, combined into 64 bits (lane 2 high)."""
    h1 = h2 = 0
    blocks = len(data) // 8
    for i in range(blocks):
        k1 = int.from_bytes(data[8 * i:8 * i + 4], "little")
        k2 = int.from_bytes(data[8 * i + 4:8 * i + 8], "little")
        h1 = (_rotl(h1 ^ _mix_k1(k1), 19) + h2) & _MASK
        h1 = (h1 * 5 + _N1) & _MASK
        h2 = (_rotl(h2 ^ _mix_k2(k2), 13) + h1) & _MASK
        h2 = (h2 * 5 + _N2) & _MASK
    tail = data[8 * blocks:]
    if tail:
        h1 ^= _mix_k1(int.from_bytes(tail[:4], "little"))
        if len(tail) > 4:
            h2 ^= _mix_k2(int.from_bytes(tail[4:], "little"))
    h1 ^= len(data) & _MASK
    h2 ^= len(data) & _MASK
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    return (h2 << 32) | h1


def unique_string(*values: str) -> str:
    bits = murmur64("-".join(values).encode("utf-8"))
    chars = []
    for _ in range(13):
        chars.append(_ALPHABET[bits >> 59])
        bits = (bits << 5) & 0xFFFFFFFFFFFFFFFF
    return "".join(chars)


def guid(*values: str) -> str:
    return str(uuid.uuid5(_GUID_NAMESPACE, "-".join(values)))
