#!/usr/bin/env python3
"""tests/images/check_wg.py VM_OUTPUT HUB_HANDSHAKE HUB_KEY

Checks what tests/images/boot.sh collected from an enrolled VM's console
against the hub's view. VM_OUTPUT holds, in order: `gondwana status --json`
(one line), then `wg show wg-mesh public-key`, `... allowed-ips`,
`... persistent-keepalive`, "ping-ok" if the VM pinged the hub's mesh IP,
and `nft list table inet gondwana`. HUB_HANDSHAKE is the hub's
`wg show <if> latest-handshakes` line for its peer ("<key>\t<unix time>").
Prints each failed expectation; exit status 1 if any.
"""
import ipaddress
import json
import sys


def main() -> int:
    lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
    hub_hs, hub_key = sys.argv[2].split(), sys.argv[3]
    json_at = max(i for i, line in enumerate(lines) if line.startswith("{"))
    dp = json.loads(lines[json_at])["dataplane"]
    rest = lines[json_at + 1 :]
    wg_pub = rest[0]
    wg_allowed = rest[1].split("\t")
    wg_keepalive = rest[2].split("\t")
    hub = dp.get("hub") or {}
    # A peer per box (docs/paths.md): the hub's peer holds the hub's /32,
    # the first host of the mesh subnet.
    hub_host = (
        f"{ipaddress.ip_interface(dp['address']).network.network_address + 1}/32"
        if dp.get("address")
        else None
    )
    want = {
        "status: dataplane.backend == kernel": dp.get("backend") == "kernel",
        "status: dataplane.state == up": dp.get("state") == "up",
        "status: dataplane.hub.last_handshake_unix is set": bool(hub.get("last_handshake_unix")),
        "the hub's handshake is with the VM's key": hub_hs[:1] == [dp.get("public_key")],
        "wg show public-key == status public_key": wg_pub == dp.get("public_key"),
        "wg show: the hub is the first peer": len(rest) > 3
        and wg_allowed[0] == hub_key == hub.get("public_key")
        and wg_keepalive[0] == hub_key,
        "wg show allowed-ips == the hub's /32": wg_allowed[1:] == [hub_host]
        and hub.get("allowed_ips") == [hub_host],
        "wg show persistent-keepalive == 25": wg_keepalive[1:] == ["25"],
        "the VM pings the hub's mesh IP": "ping-ok" in rest,
        "nft list table inet gondwana shows the table": any(
            line.startswith("table inet gondwana") for line in rest
        ),
    }
    bad = [k for k, ok in want.items() if not ok]
    for k in bad:
        print(f"  not true: {k}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
