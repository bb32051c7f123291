#!/usr/bin/env python3
"""Checks docs/identity.md's test vectors with an implementation that shares
no code with ours: Python's hashlib (BLAKE2b), base64 and `cryptography`
(ed25519). Prints 'vectors: N passed, M failed'."""
import base64
import hashlib
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ID_VECTORS = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "gw:pbe2ymcjnaf6d33wf37a2nxac4z4grsowdd4kwatrlhsjozghpjq"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "gw:n3e6svnbtor4t4zykaebud3d7jo7dxhy7lipvkxuyz365o45et5q"),
]
GENESIS_ENTRY = bytes.fromhex(
    "690100000000000000000000000000000000000000000000000000000000000000000000"
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a09090909"
    "0909090909090909090909090909090909090909090909090909090905626f782d31d75a"
    "980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a40964d855cc9"
    "cbd562a212ecb551fd0a94a02162fb4f64b3b184b03667ad38d5305e2ef6072313980c44"
    "fed2fb473e1726ff56621e5366d17e865cb4c8500b440e00")
GENESIS_TIP = "c2752c73437914768781091542c6a0f7651bbf3fcffaa580b632f7afb4797fee"


def node_id(public_key: bytes) -> str:
    digest = hashlib.blake2b(public_key, digest_size=32).digest()
    return "gw:" + base64.b32encode(digest).decode().rstrip("=").lower()


def check_ids():
    for seed, public, expected in ID_VECTORS:
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed)).public_key()
        assert key.public_bytes_raw().hex() == public, "public key"
        assert node_id(bytes.fromhex(public)) == expected, "node id"


def check_genesis():
    entry = GENESIS_ENTRY
    n = entry[0]
    body, rest = entry[1:1 + n], entry[1 + n:]
    assert body[0] == 1 and body[1] == 0 and body[2:34] == bytes(32), "version/seq/prev"
    assert body[34] == 0, "Genesis variant"
    signing_key, wg_key = body[35:67], body[67:99]
    assert wg_key == bytes([9] * 32)
    assert body[99] == 5 and body[100:] == b"box-1"
    signer, sig_len, sig, option = rest[:32], rest[32], rest[33:97], rest[97:]
    assert signer == signing_key and sig_len == 64 and option == b"\x00"
    Ed25519PublicKey.from_public_bytes(signer).verify(sig, b"gondwana/v1/identity-entry\x00" + body)
    assert hashlib.blake2b(entry, digest_size=32).hexdigest() == GENESIS_TIP, "tip"
    assert node_id(signing_key) == ID_VECTORS[0][2]


passed = failed = 0
for check in (check_ids, check_genesis):
    try:
        check()
        passed += 1
        print(f"ok   {check.__name__}")
    except Exception as e:  # report every failing vector, not just the first
        failed += 1
        print(f"FAIL {check.__name__}: {e!r}")
print(f"vectors: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
