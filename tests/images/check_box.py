#!/usr/bin/env python3
"""tests/images/check_box.py BOXNAME MESH_IP < OUTPUT — check what the
enrolled VM said over SSH (tests/images/boot.sh, check_box): sections
separated by `---` lines:
  1. hostname, /state/hostname, the count of udhcpc processes started with
     `-x hostname:<hostname>`
  2. `gondwana logs -n 5`: lines stamped RFC 3339 (docs/logging.md)
  3. `gondwana logs -n 1 --json`: one object with time, level, target, message
  4. `netstat -ltn` lines for port 22: dropbear on the mesh address only
"""
import json
import re
import sys

STAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z"
LINE = re.compile(rf"^{STAMP} +(ERROR|WARN|INFO|DEBUG) \S+: .+$")


def main() -> int:
    boxname, mesh_ip = sys.argv[1:3]
    sections = sys.stdin.read().replace("\r", "").strip("\n").split("\n---\n")
    assert len(sections) == 4, f"expected 4 sections, got {len(sections)}"
    names, logs, log_json, listening = (s.strip("\n").splitlines() for s in sections)
    assert names[:2] == [boxname, boxname], f"hostname, /state/hostname: {names[:2]} (want {boxname})"
    assert int(names[2]) >= 1, "no udhcpc sends the boxname as its hostname option"
    assert 1 <= len(logs) <= 5, f"gondwana logs -n 5 gave {len(logs)} lines"
    for line in logs:
        assert LINE.match(line), f"not a stamped log line: {line!r}"
    assert len(log_json) == 1, f"gondwana logs -n 1 --json gave {len(log_json)} lines"
    obj = json.loads(log_json[0])
    assert re.fullmatch(STAMP, obj["time"]), obj
    assert obj["level"] in ("ERROR", "WARN", "INFO", "DEBUG") and obj["target"] and obj["message"], obj
    assert listening, "nothing listens on port 22"
    for line in listening:
        local = line.split()[3]
        assert local == f"{mesh_ip}:22", f"port 22 is open on {local}, not only {mesh_ip}: {line}"
    return 0


if __name__ == "__main__":
    sys.exit(main())
