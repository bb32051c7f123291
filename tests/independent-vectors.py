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


TOKEN_TEXT = "gwt1-aucqkbifaucqkbifaucqkbifaucqkbifaucqkbifaucqkbifaucq"
SUBMISSION = bytes.fromhex("c90167010707070707070707070707070707070707070707070707070707070707070707090909090909090909090909090909090909090909090909090909090909090905626f782d316e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a409c1078aa41a6585c7180c48df890d41caedb9bcaca161315bd18ed9470b945d70fdea8db28f12e5a7d01dcf4a12050037386a0d9e22778d8f2286b50ceaea700408a2fd9fa20bfdaf573044f309b71dad484621b35d2e7068b92c79f4b5de74d4700ee4b873c4026bd1dae484d102cef499a3d3a8ba8f09852e51bdbe4752f510a01cc01690100000000000000000000000000000000000000000000000000000000000000000000d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a090909090909090909090909090909090909090909090909090909090909090905626f782d31d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a40964d855cc9cbd562a212ecb551fd0a94a02162fb4f64b3b184b03667ad38d5305e2ef6072313980c44fed2fb473e1726ff56621e5366d17e865cb4c8500b440e00")
GRANT = bytes.fromhex("bc020107070707070707070707070707070707070707070707070707070707070707073767773a70626532796d636a6e6166366433337766333761326e786163347a346772736f776464346b776174726c68736a6f7a6768706a71d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a090909090909090909090909090909090909090909090909090909090909090905626f782d310a0a00020a0a0000183767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a3336356f3435657435710a0a00010808080808080808080808080808080808080808080808080808080808080808116875622e6578616d706c653a3531383232ee9403de440200000000000000000000000000000000000000000000000000000000000000003d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c40b2a732c9e9022bd103934f74e33cfb9686c35fc4598f6400872a688ccd18aa3ed5dfd2997d5bb97e4ee6d2020d095ee95f5dc828a47b7db7d7766aef69fe9604")
HUB_SEED = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"


class Reader:
    """postcard: LEB128 varints, length-prefixed byte strings."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        assert len(out) == n, "truncated"
        self.pos += n
        return out

    def varint(self) -> int:
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    def bytes(self) -> bytes:
        return self.take(self.varint())

    def done(self):
        assert self.pos == len(self.data), "trailing bytes"


def open_envelope(raw: bytes, tag: bytes):
    r = Reader(raw)
    body, signer, sig = r.bytes(), r.take(32), r.bytes()
    r.done()
    assert len(sig) == 64
    Ed25519PublicKey.from_public_bytes(signer).verify(sig, tag + body)
    return body, signer


def check_token():
    seed = bytes([5] * 32)
    assert TOKEN_TEXT == "gwt1-" + base64.b32encode(seed).decode().rstrip("=").lower()
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    verifier = hashlib.blake2b(b"gondwana/v1/token-verifier\x00" + public, digest_size=32).digest()
    assert base64.b32encode(verifier).decode()[:16].lower() == "qaucx3hz6t42f5ic"


def check_submission():
    r = Reader(SUBMISSION)
    request, proof = r.bytes(), r.bytes()
    log = [r.bytes() for _ in range(r.varint())]
    r.done()
    assert log == [GENESIS_ENTRY]
    body, signer = open_envelope(request, b"gondwana/v1/enrol-request\x00")
    assert signer == bytes.fromhex(ID_VECTORS[0][1]), "signed by the node key"
    b = Reader(body)
    assert b.take(1) == b"\x01" and b.take(32) == bytes([7] * 32)
    assert b.take(32) == bytes([9] * 32) and b.bytes() == b"box-1"
    token_key = b.take(32)
    b.done()
    seed = bytes([5] * 32)
    assert token_key == Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    Ed25519PublicKey.from_public_bytes(token_key).verify(proof, b"gondwana/v1/enrol-token-proof\x00" + body)
    assert seed.hex() not in SUBMISSION.hex(), "the token secret never crosses the wire"


def check_grant():
    body, signer = open_envelope(GRANT, b"gondwana/v1/enrol-grant\x00")
    hub = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(HUB_SEED)).public_key().public_bytes_raw()
    assert signer == hub, "signed by the hub key"
    b = Reader(body)
    assert b.take(1) == b"\x01" and b.take(32) == bytes([7] * 32)
    assert b.bytes().decode() == ID_VECTORS[0][2]
    assert b.take(32) == bytes.fromhex(ID_VECTORS[0][1]) and b.take(32) == bytes([9] * 32)
    assert b.bytes() == b"box-1"
    assert b.take(4) == bytes([10, 10, 0, 2]) and b.take(5) == bytes([10, 10, 0, 0, 24])
    assert b.bytes().decode() == node_id(hub)
    assert b.take(4) == bytes([10, 10, 0, 1]) and b.take(32) == bytes([8] * 32)
    assert b.bytes() == b"hub.example:51822"
    assert (b.varint(), b.varint(), b.varint()) == (51822, 8798, 2)
    assert b.take(32) == bytes(32)
    b.done()


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


def check_nonces():
    # docs/protocol.md "Nonces": secret 11 x 32, issued_at 5, random 02 x 8.
    secret = bytes([0x11] * 32)
    prefix = (5).to_bytes(8, "little") + bytes([2] * 8)
    for tag, expected in (
        (b"gondwana/v1/nonce-enrol\x00",
         "05000000000000000202020202020202cdce985b5678ed54ad61da90a59320f8"),
        (b"gondwana/v1/nonce-grant-command\x00",
         "050000000000000002020202020202029d8f79b983088d3ec578b0fdeac67bcc"),
    ):
        mac = hashlib.blake2b(tag + prefix, key=secret, digest_size=16).digest()
        assert (prefix + mac).hex() == expected, tag


passed = failed = 0
for check in (check_ids, check_genesis, check_token, check_submission, check_grant, check_nonces):
    try:
        check()
        passed += 1
        print(f"ok   {check.__name__}")
    except Exception as e:  # report every failing vector, not just the first
        failed += 1
        print(f"FAIL {check.__name__}: {e!r}")
print(f"vectors: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
