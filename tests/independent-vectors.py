#!/usr/bin/env python3
"""Checks the test vectors of docs/identity.md, docs/protocol.md and docs/updates.md with an
implementation that shares no code with ours: Python's hashlib (BLAKE2b,
keyed mode for the WireGuard proof), base64 and `cryptography` (ed25519,
X25519). Prints 'vectors: N passed, M failed'."""
import base64
import hashlib
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

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
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a8520f009"
    "8930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05626f782d31d75a"
    "980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a40ebeb4b242a"
    "6819854711f4c3963d9a4f19ce5499553cff4e5a0d1b1c3275942fac6bee94bb1cbddd74"
    "fa4077ac940c5d28933cf9ba0e09f6f9a7363c9746f40d00")
GENESIS_TIP = "b26d016796f5554ca7cc43412897cf7e1825538c3aa90e2820ea12e6814c35dd"
# RFC 7748 section 6.1: Alice is the node, Bob the hub.
NODE_WG_SECRET = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
HUB_WG_SECRET = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
SHARED_SECRET = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
WIREGUARD_PROOF = "16d70c2e29d45db9518e59a27498ac142ae49c72e99826be89dfddba65e7a44d"
WIREGUARD_PROOF_TAG = b"gondwana/v1/wireguard-proof\x00"


TOKEN_TEXT = "gwt1-aucqkbifaucqkbifaucqkbifaucqkbifaucqkbifaucqkbifaucq"
SUBMISSION = bytes.fromhex("c901670107070707070707070707070707070707070707070707070707070707070707078520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05626f782d316e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a404822026e9b2884861bf8ff0331dab8fee9b6983de13a55951dd1a695e270e47a0ba485c4e4db8e368b3f65d19af93bc77e4541c9c0421f8dc28f07ef35cde50c405a53d18c6f309dd81359fb1ac86d2131c675907d2d2eec6faa48ae903b6eb1ea403d64c7ce5e9dbec24c81b05c28aa66919c7db5aef40d7b981248567ed706042016d70c2e29d45db9518e59a27498ac142ae49c72e99826be89dfddba65e7a44d01cc01690100000000000000000000000000000000000000000000000000000000000000000000d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05626f782d31d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a40ebeb4b242a6819854711f4c3963d9a4f19ce5499553cff4e5a0d1b1c3275942fac6bee94bb1cbddd74fa4077ac940c5d28933cf9ba0e09f6f9a7363c9746f40d00")
GRANT = bytes.fromhex("bc020107070707070707070707070707070707070707070707070707070707070707073767773a70626532796d636a6e6166366433337766333761326e786163347a346772736f776464346b776174726c68736a6f7a6768706a71d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05626f782d310a0a00020a0a0000183767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a3336356f3435657435710a0a0001de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f116875622e6578616d706c653a3531383232ee9403de440200000000000000000000000000000000000000000000000000000000000000003d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c4081ab013ac07a390bb6b69c75fa275a8feb3ef621cfa01e401714d9102a98ef0b5b4a73fbffbd26ab5d262c76f9ef693e677955a229329fd8ec47e89706447e0f")
ROTATION_ENTRY = bytes.fromhex("430101b26d016796f5554ca7cc43412897cf7e1825538c3aa90e2820ea12e6814c35dd02f77ff4b10788bfdca62ca0bb160d427cf5762d85f2b5cad6807ec9c3febbde09d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a403237a1408c717ef530900cf528049434b7893c86b6e93379309a8df0a5c37dae6f318394addc666380f40479a4627fd70809034abeaef71b2e4d028e3fdd7f0c00")
ROTATION_TIP = "abf064aa87ef41b3d3eb3763b3276df670794f40d9c74985e56f2ee4eb142dcb"
ROTATION_PROOF = "7c46902461f47ece21175a810d6dfafc7e1c509abedb669b2ba289eabbb30e92"
CANDIDATE_REPORT = bytes.fromhex("8501013767773a70626532796d636a6e6166366433337766333761326e786163347a346772736f776464346b776174726c68736a6f7a6768706a7107ee940301c0a80114ee9403013767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a3336356f34356574357101c0b503a7bd03401bc6f03a83f9971317eb183905fd9329f30dd299230a68b37b2eef8fef73317358c299a4b9964ea70beb990aced8601252da20121076959c3cdced31e99c440e")
CANDIDATE_SNAPSHOT = bytes.fromhex("f903013767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a3336356f3435657435710380e2cfaa0602013767773a70626532796d636a6e6166366433337766333761326e786163347a346772736f776464346b776174726c68736a6f7a6768706a7101c6336407c1b802018501013767773a70626532796d636a6e6166366433337766333761326e786163347a346772736f776464346b776174726c68736a6f7a6768706a7107ee940301c0a80114ee9403013767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a3336356f34356574357101c0b503a7bd03401bc6f03a83f9971317eb183905fd9329f30dd299230a68b37b2eef8fef73317358c299a4b9964ea70beb990aced8601252da20121076959c3cdced31e99c440e013767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a3336356f3435657435713767773a70626532796d636a6e6166366433337766333761326e786163347a346772736f776464346b776174726c68736a6f7a6768706a713767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a3336356f343565743571c0b503c1b50340d7aa36c6e5b3e1f8056346fe5486363072e1de96cd44a70170e131d4480391a135b8be8379e502e64b9008b737062d5e689938303d6f7ff1035e54183a810602")
UPDATE_BUNDLE = bytes.fromhex(
    "475742554e444c45410100007a01086d6f63686162696e07027637053d4017c3e843895a"
    "92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c02004010d8e6d534b0093984"
    "3fe9dcc4dae48cdf008f6b8b2b82b156f5404d874887f50105496d6167650661b08010c7"
    "db75b199734e5526f6b478087a92e58b436ce6214f1e7278835b2d4049a9f31b8ecbb5e6"
    "762e153dc4cee41d583b3e056efca4fcfa5fc1d8d78a662a04d7ed5d3f12ff66559ae9c6"
    "03c07013d161db509e1a75e54d9745f850b6ac0901420101d75a980182b10ab7d54bfed3"
    "c964073a0ee172f3daa62325af021a68f707511a3d4017c3e843895a92b70aa74d1b7ebc"
    "9c982ccf2ec4968cc0cd55f12af4660c4001ae2d33e297a589d9e54bfad5873ff0847dca"
    "2886764c6bf3faebb086e9697897569da48a928ff646fdf4af538d3694bcc82756c1b23a"
    "b1669b7206fe3be40d000102030405060708090a0b0c0d0e0f101112131415161718191a"
    "1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e"
    "3f6b65726e656c"
)
LENDING_OFFER = bytes.fromhex(
    "5d00013767773a70626532796d636a6e6166366433337766333761326e786163347a3467"
    "72736f776464346b776174726c68736a6f7a6768706a71037765620100903f0202000562"
    "6f782d3201036c616201087468652077696b6901901cd75a980182b10ab7d54bfed3c964"
    "073a0ee172f3daa62325af021a68f707511a40ab6040ff360ba9e855bdb6dcce3d2cf793"
    "9d77b032c3341a51ec6c1f9fa387479f357364d9c29c9cca967dc04e1d24c07cd460a7a3"
    "7a376f0927ff32c3614b09")
LENDING_WITHDRAWAL = bytes.fromhex(
    "3f01013767773a70626532796d636a6e6166366433337766333761326e786163347a3467"
    "72736f776464346b776174726c68736a6f7a6768706a710377656202d75a980182b10ab7"
    "d54bfed3c964073a0ee172f3daa62325af021a68f707511a40873af4eb5c2719d9e9c24e"
    "679ba3bcd2e2996e21e939147f2bcd923d39994126d060e0d73ca9958752a2f3a1a95526"
    "abb30d3b295214f0d5de06c549d3b10402")
LENDING_ENTRY = bytes.fromhex(
    "e40101051111111111111111111111111111111111111111111111111111111111111111"
    "03bf015d00013767773a70626532796d636a6e6166366433337766333761326e78616334"
    "7a346772736f776464346b776174726c68736a6f7a6768706a71037765620100903f0202"
    "0005626f782d3201036c616201087468652077696b6901901cd75a980182b10ab7d54bfe"
    "d3c964073a0ee172f3daa62325af021a68f707511a40ab6040ff360ba9e855bdb6dcce3d"
    "2cf7939d77b032c3341a51ec6c1f9fa387479f357364d9c29c9cca967dc04e1d24c07cd4"
    "60a7a37a376f0927ff32c3614b09fc51cd8e6218a1a38da47ed00230f0580816ed13ba33"
    "03ac5deb91154890802540163891a93163870b75cf2bcf3b5d28dd1fb99619dd08ed4beb"
    "e45f29785eb5bd9df1e66884f5104d8bd186850eeff2095d67e68a74d904b31b7e5252a4"
    "a19102")
LENDING_SUBSCRIPTION = bytes.fromhex(
    "7e00013767773a70626532796d636a6e6166366433337766333761326e786163347a3467"
    "72736f776464346b776174726c68736a6f7a6768706a7103776562013767773a6e336536"
    "73766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875"
    "797a3336356f3435657435710a0a0003d804013d4017c3e843895a92b70aa74d1b7ebc9c"
    "982ccf2ec4968cc0cd55f12af4660c4075485f45c974e21556edac9ac357870d1a0d484a"
    "754d7f1c57be93fdfe18386ec54bd87001dda7934f534ff4c588e372921292a59f5359fb"
    "96a824b1a40c400a")
LENDING_UNSUBSCRIBE = bytes.fromhex(
    "7701013767773a70626532796d636a6e6166366433337766333761326e786163347a3467"
    "72736f776464346b776174726c68736a6f7a6768706a71037765623767773a6e33653673"
    "766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b787579"
    "7a3336356f343565743571023d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968c"
    "c0cd55f12af4660c409296772f53a87dc7a20e683ce173ea424b3d46b5f56c98b7a73577"
    "9f3f883a52a85c528e82e455a558035204439cb939e0cf2b78cffac67ec1274b304f8b40"
    "0f")
LENDING_DECISION = bytes.fromhex(
    "9a01013767773a70626532796d636a6e6166366433337766333761326e786163347a3467"
    "72736f776464346b776174726c68736a6f7a6768706a713767773a6e33653673766e6274"
    "6f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a333635"
    "6f34356574357103776562d1bc0e554f115b211f5b6dcc2b7e73e960caabbf6510c06a3b"
    "ea4695c83aa365010101d804d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325"
    "af021a68f707511a40279982a0788de2f865207102e2e0f25532eee73d9614e537e9a434"
    "4333d535ee5d84a3e4a03ff58b1674fa827a54ab19b3173de2c9fd123e1b93cc6bdabbe3"
    "08")
# RFC 8032 TEST 3: the hub of the lending vectors.
LENDING_TAGS_ENTRY = bytes.fromhex(
    "600106222222222222222222222222222222222222222222222222222222222222222205"
    "3767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879"
    "376c6970766b7875797a3336356f34356574357101036c6162fc51cd8e6218a1a38da47e"
    "d00230f0580816ed13ba3303ac5deb91154890802540e47923e84e7cc6bb769b4c3b9237"
    "ec41f4f3cc4072ff5ef070f0fe4c01a921ad0f62510a5d615fc453aecaca0b460740a4d7"
    "a1eb4bea265854128b600e59e906"
)
LENDING_HUB_SEED = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7"
RELEASE_RECORD = bytes.fromhex(
    "7d01086d6f63686162696e070502763780efa8c9069303f29cdf74e7bca5935c8dc36b6f"
    "8f624f65ffb2106f2a4b8a07364ab6d9fdb9d89b723d9c2a141f138fec62445f14747301"
    "c1357360defcdf914cfaaa3cfcec323d4017c3e843895a92b70aa74d1b7ebc9c982ccf2e"
    "c4968cc0cd55f12af4660c020a006480a3054034e3e042686d6e78254e8145657123a1dc"
    "263b90c0cd66ee1b6ab7926317c438708f2e1ccc15767000541b7826477a492ef778a516"
    "505aec953d227b8ac2790f01420101d75a980182b10ab7d54bfed3c964073a0ee172f3da"
    "a62325af021a68f707511a3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0"
    "cd55f12af4660c4001ae2d33e297a589d9e54bfad5873ff0847dca2886764c6bf3faebb0"
    "86e9697897569da48a928ff646fdf4af538d3694bcc82756c1b23ab1669b7206fe3be40d"
)
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


def x25519_public(secret_hex: str) -> bytes:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(secret_hex)).public_key().public_bytes_raw()


def wireguard_proof(secret_hex: str, peer_public: bytes, message: bytes) -> bytes:
    """MAC under X25519(secret, peer): hashlib's BLAKE2b keyed mode."""
    shared = X25519PrivateKey.from_private_bytes(bytes.fromhex(secret_hex)).exchange(
        X25519PublicKey.from_public_bytes(peer_public))
    assert shared != bytes(32)
    return hashlib.blake2b(WIREGUARD_PROOF_TAG + message, key=shared, digest_size=32).digest()


def check_wireguard_keys():
    node, hub = x25519_public(NODE_WG_SECRET), x25519_public(HUB_WG_SECRET)
    assert node.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert hub.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = X25519PrivateKey.from_private_bytes(bytes.fromhex(NODE_WG_SECRET)).exchange(
        X25519PublicKey.from_public_bytes(hub))
    assert shared.hex() == SHARED_SECRET
    # A low-order peer key gives an all-zero secret, which must be refused:
    # `cryptography` refuses it too.
    try:
        X25519PrivateKey.from_private_bytes(bytes.fromhex(NODE_WG_SECRET)).exchange(
            X25519PublicKey.from_public_bytes(bytes(32)))
    except ValueError:
        pass
    else:
        raise AssertionError("low-order key accepted")


def check_token():
    seed = bytes([5] * 32)
    assert TOKEN_TEXT == "gwt1-" + base64.b32encode(seed).decode().rstrip("=").lower()
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    verifier = hashlib.blake2b(b"gondwana/v1/token-verifier\x00" + public, digest_size=32).digest()
    assert base64.b32encode(verifier).decode()[:16].lower() == "qaucx3hz6t42f5ic"


def check_submission():
    r = Reader(SUBMISSION)
    request, proof, wg_proof = r.bytes(), r.bytes(), r.bytes()
    log = [r.bytes() for _ in range(r.varint())]
    r.done()
    assert log == [GENESIS_ENTRY]
    body, signer = open_envelope(request, b"gondwana/v1/enrol-request\x00")
    assert signer == bytes.fromhex(ID_VECTORS[0][1]), "signed by the node key"
    b = Reader(body)
    assert b.take(1) == b"\x01" and b.take(32) == bytes([7] * 32)
    wg_key = b.take(32)
    assert wg_key == x25519_public(NODE_WG_SECRET) and b.bytes() == b"box-1"
    token_key = b.take(32)
    b.done()
    seed = bytes([5] * 32)
    assert token_key == Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    Ed25519PublicKey.from_public_bytes(token_key).verify(proof, b"gondwana/v1/enrol-token-proof\x00" + body)
    # The WireGuard proof over the same body: made by the node's secret with
    # the hub's public key, and checked the hub's way (hub secret, node key).
    hub_wg = x25519_public(HUB_WG_SECRET)
    assert wg_proof.hex() == WIREGUARD_PROOF
    assert wg_proof == wireguard_proof(NODE_WG_SECRET, hub_wg, body)
    assert wg_proof == wireguard_proof(HUB_WG_SECRET, wg_key, body)
    assert wg_proof != wireguard_proof(NODE_WG_SECRET, hub_wg, body[:-1])
    assert seed.hex() not in SUBMISSION.hex(), "the token secret never crosses the wire"


def check_grant():
    body, signer = open_envelope(GRANT, b"gondwana/v1/enrol-grant\x00")
    hub = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(HUB_SEED)).public_key().public_bytes_raw()
    assert signer == hub, "signed by the hub key"
    b = Reader(body)
    assert b.take(1) == b"\x01" and b.take(32) == bytes([7] * 32)
    assert b.bytes().decode() == ID_VECTORS[0][2]
    assert b.take(32) == bytes.fromhex(ID_VECTORS[0][1])
    assert b.take(32) == x25519_public(NODE_WG_SECRET)
    assert b.bytes() == b"box-1"
    assert b.take(4) == bytes([10, 10, 0, 2]) and b.take(5) == bytes([10, 10, 0, 0, 24])
    assert b.bytes().decode() == node_id(hub)
    assert b.take(4) == bytes([10, 10, 0, 1]) and b.take(32) == x25519_public(HUB_WG_SECRET)
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
    assert wg_key == x25519_public(NODE_WG_SECRET)
    assert body[99] == 5 and body[100:] == b"box-1"
    assert len(body) == 105 and len(entry) == 204
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


def check_rotation():
    """Entry 1: RotateWireguard to the key of secret 0a x 32; the mirror
    push's proof over its hash with that secret."""
    r = Reader(ROTATION_ENTRY)
    body, signer, sig = r.bytes(), r.take(32), r.bytes()
    assert r.take(1) == b"\x00", "no new_key_sig"
    r.done()
    Ed25519PublicKey.from_public_bytes(signer).verify(sig, b"gondwana/v1/identity-entry\x00" + body)
    assert signer.hex() == ID_VECTORS[0][1], "signed by the node's current key"
    b = Reader(body)
    assert b.take(1) == b"\x01" and b.varint() == 1, "version 1, seq 1"
    assert b.take(32).hex() == GENESIS_TIP, "prev = the genesis hash"
    assert b.varint() == 2, "RotateWireguard"
    new_secret = "0a" * 32
    assert b.take(32) == x25519_public(new_secret)
    b.done()
    tip = hashlib.blake2b(ROTATION_ENTRY, digest_size=32).digest()
    assert tip.hex() == ROTATION_TIP
    proof = wireguard_proof(new_secret, x25519_public(HUB_WG_SECRET), tip)
    assert proof.hex() == ROTATION_PROOF
    assert proof == wireguard_proof(HUB_WG_SECRET, x25519_public(new_secret), tip)


def read_socket(r: Reader):
    ip = ".".join(str(b) for b in r.take(4))
    return f"{ip}:{r.varint()}"


def open_signed(raw: bytes, tag: bytes, public: bytes) -> bytes:
    """Body bytes and a 64-byte signature over tag || body, nothing after."""
    r = Reader(raw)
    body, sig = r.bytes(), r.bytes()
    r.done()
    assert len(sig) == 64
    Ed25519PublicKey.from_public_bytes(public).verify(sig, tag + body)
    return body


def check_candidates():
    """docs/protocol.md, Endpoint candidates: the node's report and the
    hub's snapshot that carries it verbatim."""
    node_key = bytes.fromhex(ID_VECTORS[0][1])
    hub_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(HUB_SEED)).public_key().public_bytes_raw()
    node, hub = node_id(node_key), node_id(hub_key)
    body = open_signed(CANDIDATE_REPORT, b"gondwana/v1/candidate-report\x00", node_key)
    b = Reader(body)
    assert b.take(1) == b"\x01" and b.bytes().decode() == node
    assert (b.varint(), b.varint()) == (7, 51822), "seq, listen port"
    assert [read_socket(b) for _ in range(b.varint())] == ["192.168.1.20:51822"]
    assert [b.bytes().decode() for _ in range(b.varint())] == [hub]
    assert b.take(1) == b"\x01", "offers to relay"
    assert (b.varint(), b.varint()) == (56000, 56999), "relay ports"
    b.done()
    # The wrong tag or key does not verify.
    for tag, key in ((b"gondwana/v1/candidate-snapshot\x00", node_key),
                     (b"gondwana/v1/candidate-report\x00", hub_key)):
        try:
            open_signed(CANDIDATE_REPORT, tag, key)
        except Exception:
            pass
        else:
            raise AssertionError("report verified under the wrong tag or key")
    body = open_signed(CANDIDATE_SNAPSHOT, b"gondwana/v1/candidate-snapshot\x00", hub_key)
    s = Reader(body)
    assert s.take(1) == b"\x01" and s.bytes().decode() == hub
    assert (s.varint(), s.varint(), s.varint()) == (3, 1700000000, 2), "serial, issued, round"
    assert s.varint() == 1, "one node"
    assert s.bytes().decode() == node
    assert s.take(1) == b"\x01" and read_socket(s) == "198.51.100.7:40001", "observed"
    assert s.take(1) == b"\x01", "a report"
    start = s.pos
    s.bytes()
    s.bytes()
    assert s.data[start:s.pos] == CANDIDATE_REPORT, "the report verbatim"
    assert s.varint() == 1, "one relay pair"
    a, b_, relay = (s.bytes().decode() for _ in range(3))
    assert (a, b_, relay) == (hub, node, hub) and a < b_
    assert (s.varint(), s.varint()) == (56000, 56001)
    s.done()


def check_update_bundle():
    """docs/updates.md, Bundle format: RFC 8032 key 1 (baked) rotates to
    key 2, which signs a manifest for two parts; the parts follow raw."""
    baked = bytes.fromhex(ID_VECTORS[0][1])
    raw = UPDATE_BUNDLE
    assert raw[:8] == b"GWBUNDLE"
    head_len = int.from_bytes(raw[8:12], "little")
    h = Reader(raw[12:12 + head_len])
    manifest, sig = h.bytes(), h.bytes()
    assert len(sig) == 64
    trusted = [baked]
    last_seq = None
    for _ in range(h.varint()):
        body, rsig = h.bytes(), h.bytes()
        r = Reader(body)
        fmt, seq, old, new = r.take(1)[0], r.varint(), r.take(32), r.take(32)
        r.done()
        assert fmt == 1 and old in trusted and (last_seq is None or seq > last_seq)
        Ed25519PublicKey.from_public_bytes(old).verify(rsig, b"gondwana/v1/release-key-rotation\x00" + body)
        trusted = [k for k in trusted if k != old] + [new]
        last_seq = seq
    h.done()
    assert trusted == [bytes.fromhex(ID_VECTORS[1][1])], "the chain ends at key 2"
    m = Reader(manifest)
    assert m.take(1) == b"\x01", "format"
    board, version, label, min_version = m.bytes().decode(), m.varint(), m.bytes().decode(), m.varint()
    assert (board, version, label, min_version) == ("mochabin", 7, "v7", 5)
    signer = m.take(32)
    assert signer in trusted
    Ed25519PublicKey.from_public_bytes(signer).verify(sig, b"gondwana/v1/update-manifest\x00" + manifest)
    pos = 12 + head_len
    names = []
    for _ in range(m.varint()):
        target = m.varint()
        names.append(m.bytes().decode() if target == 1 else "<root>")
        size, digest = m.varint(), m.take(32)
        assert hashlib.blake2b(raw[pos:pos + size], digest_size=32).digest() == digest
        pos += size
    m.done()
    assert names == ["<root>", "Image"] and pos == len(raw), "parts fill the rest"
    # The manifest does not verify under the baked key it rotated away from.
    try:
        Ed25519PublicKey.from_public_bytes(baked).verify(sig, b"gondwana/v1/update-manifest\x00" + manifest)
    except Exception:
        pass
    else:
        raise AssertionError("manifest verified under the rotated-out key")


def read_name(r: Reader) -> str:
    """A ServiceName or boxname: a DNS label."""
    name = r.bytes().decode()
    assert 1 <= len(name) <= 63 and all(c.islower() or c.isdigit() or c == "-" for c in name)
    assert not name.startswith("-") and not name.endswith("-")
    return name


def must_fail(f):
    try:
        f()
    except Exception:
        return
    raise AssertionError("verified where it must not")


def check_lending():
    """docs/protocol.md, Lending: an offer, its withdrawal, the directory
    entry carrying the offer verbatim, a subscription, an unsubscribe and
    the provider's decision."""
    provider_key = bytes.fromhex(ID_VECTORS[0][1])
    consumer_key = bytes.fromhex(ID_VECTORS[1][1])
    hub_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(LENDING_HUB_SEED)).public_key().public_bytes_raw()
    provider, consumer = node_id(provider_key), node_id(consumer_key)
    pub_tag = b"gondwana/v1/lending-publication\x00"
    req_tag = b"gondwana/v1/lending-request\x00"
    dec_tag = b"gondwana/v1/lending-decision\x00"

    assert len(LENDING_OFFER) <= 960
    body, signer = open_envelope(LENDING_OFFER, pub_tag)
    assert signer == provider_key, "signed by the provider's directory key"
    b = Reader(body)
    assert b.varint() == 0 and b.take(1) == b"\x01", "Offer, version 1"
    assert b.bytes().decode() == provider and read_name(b) == "web"
    assert b.varint() == 1, "serial"
    assert b.varint() == 0 and b.varint() == 8080, "tcp 8080"
    assert b.varint() == 2 and b.varint() == 2, "Allow, two principals"
    assert b.varint() == 0 and read_name(b) == "box-2", "Boxname"
    assert b.varint() == 1 and b.bytes() == b"lab", "Tag"
    assert b.take(1) == b"\x01" and b.bytes() == b"the wiki", "description"
    assert b.take(1) == b"\x01" and b.varint() == 3600, "max duration"
    b.done()
    must_fail(lambda: open_envelope(LENDING_OFFER, req_tag))

    body, signer = open_envelope(LENDING_WITHDRAWAL, pub_tag)
    assert signer == provider_key
    b = Reader(body)
    assert b.varint() == 1 and b.take(1) == b"\x01", "Withdrawal, version 1"
    assert b.bytes().decode() == provider and read_name(b) == "web" and b.varint() == 2
    b.done()

    body, signer = open_envelope(LENDING_ENTRY, b"gondwana/v1/directory-entry\x00")
    assert signer == hub_key, "the entry is the hub's"
    e = Reader(body)
    assert e.take(1) == b"\x01" and e.varint() == 5 and e.take(32) == bytes([0x11] * 32)
    assert e.varint() == 3, "Lending"
    assert e.bytes() == LENDING_OFFER, "the provider's bytes verbatim"
    e.done()

    body, signer = open_envelope(LENDING_SUBSCRIPTION, req_tag)
    assert signer == consumer_key, "signed by the consumer's directory key"
    r = Reader(body)
    assert r.varint() == 0 and r.take(1) == b"\x01", "Subscription, version 1"
    assert r.bytes().decode() == provider and read_name(r) == "web" and r.varint() == 1, "offer ref"
    assert r.bytes().decode() == consumer and r.take(4) == bytes([10, 10, 0, 3])
    assert (r.varint(), r.varint()) == (600, 1), "duration, counter"
    r.done()
    must_fail(lambda: open_envelope(LENDING_SUBSCRIPTION, pub_tag))

    body, signer = open_envelope(LENDING_UNSUBSCRIBE, req_tag)
    assert signer == consumer_key
    r = Reader(body)
    assert r.varint() == 1 and r.take(1) == b"\x01", "Unsubscribe, version 1"
    assert r.bytes().decode() == provider and read_name(r) == "web"
    assert r.bytes().decode() == consumer and r.varint() == 2
    r.done()

    body, signer = open_envelope(LENDING_DECISION, dec_tag)
    assert signer == provider_key, "signed by the provider"
    d = Reader(body)
    assert d.take(1) == b"\x01"
    assert d.bytes().decode() == provider and d.bytes().decode() == consumer and read_name(d) == "web"
    assert d.take(32) == hashlib.blake2b(LENDING_SUBSCRIPTION, digest_size=32).digest(), "names the request"
    assert (d.varint(), d.varint()) == (1, 1), "counter, offer serial"
    assert d.varint() == 1 and d.varint() == 600, "Accepted for 600 s"
    d.done()
    must_fail(lambda: open_envelope(LENDING_DECISION, req_tag))

    # Directory record 5, Tags: the consumer tagged `lab` by the hub.
    body, signer = open_envelope(LENDING_TAGS_ENTRY, b"gondwana/v1/directory-entry\x00")
    assert signer == hub_key, "the entry is the hub's"
    e = Reader(body)
    assert e.take(1) == b"\x01" and e.varint() == 6 and e.take(32) == bytes([0x22] * 32)
    assert e.varint() == 5, "Tags"
    assert e.bytes().decode() == consumer, "the tagged node"
    assert e.varint() == 1 and e.bytes() == b"lab", "one tag"
    e.done()
    must_fail(lambda: open_envelope(LENDING_TAGS_ENTRY, pub_tag))
def check_release_record():
    """docs/updates.md, Release record: the bundle vector's record, signed
    by RFC 8032 key 2 with the rotation from key 1, in two waves."""
    baked = bytes.fromhex(ID_VECTORS[0][1])
    s = Reader(RELEASE_RECORD)
    body, sig = s.bytes(), s.bytes()
    assert len(sig) == 64
    trusted = [baked]
    for _ in range(s.varint()):
        rbody, rsig = s.bytes(), s.bytes()
        r = Reader(rbody)
        fmt, seq, old, new = r.take(1)[0], r.varint(), r.take(32), r.take(32)
        r.done()
        assert fmt == 1 and seq == 1 and old in trusted
        Ed25519PublicKey.from_public_bytes(old).verify(rsig, b"gondwana/v1/release-key-rotation\x00" + rbody)
        trusted = [k for k in trusted if k != old] + [new]
    s.done()
    b = Reader(body)
    assert b.take(1) == b"\x01", "format"
    board, version, min_version = b.bytes().decode(), b.varint(), b.varint()
    label, start, size = b.bytes().decode(), b.varint(), b.varint()
    bundle_hash, manifest_hash, key = b.take(32), b.take(32), b.take(32)
    waves = [(b.take(1)[0], b.varint()) for _ in range(b.varint())]
    b.done()
    assert (board, version, min_version, label) == ("mochabin", 7, 5, "v7")
    assert start == 1764374400 and waves == [(10, 0), (100, 86400)]
    assert key in trusted and key == bytes.fromhex(ID_VECTORS[1][1])
    Ed25519PublicKey.from_public_bytes(key).verify(sig, b"gondwana/v1/release-record\x00" + body)
    assert size == len(UPDATE_BUNDLE) == 403
    assert bundle_hash == hashlib.blake2b(UPDATE_BUNDLE, digest_size=32).digest()
    head_len = int.from_bytes(UPDATE_BUNDLE[8:12], "little")
    manifest = Reader(UPDATE_BUNDLE[12:12 + head_len]).bytes()
    assert manifest_hash == hashlib.blake2b(manifest, digest_size=32).digest()
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, b"gondwana/v1/update-manifest\x00" + body)
    except Exception:
        pass
    else:
        raise AssertionError("the record verified under another domain tag")


passed = failed = 0
for check in (check_ids, check_genesis, check_wireguard_keys, check_token, check_submission,
              check_grant, check_rotation, check_nonces, check_candidates,
              check_update_bundle, check_lending, check_release_record):
    try:
        check()
        passed += 1
        print(f"ok   {check.__name__}")
    except Exception as e:  # report every failing vector, not just the first
        failed += 1
        print(f"FAIL {check.__name__}: {e!r}")
print(f"vectors: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
