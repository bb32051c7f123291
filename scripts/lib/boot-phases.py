#!/usr/bin/env python3
"""scripts/lib/boot-phases.py LOG SECONDS [--lines] — follow a QEMU serial log from
power-on (start it right after qemu_boot) and print the boot's phases in
seconds, one `phase seconds` per line, once GONDWANA-READY appears:

  firmware     power-on -> kernel start (U-Boot/OVMF, menus, image loads):
               READY's host time less the guest's uptime it reports
  kernel       kernel start -> the initramfs' first line
  initramfs    -> `switching to root` (modules, medium, state, mounts)
  root         -> GONDWANA-READY (rcS, modules from the root, daemon, API)
  ours         kernel start -> ready (the guest's uptime at READY)
  total        power-on -> ready

Lines are stamped on the host as they arrive (polled every 20 ms), so a
phase is +-0.05 s on top of the host's load. --lines also prints every
console line with its stamp (seconds since the start) on stderr: with
`gondwana.debug` on the kernel command line (set -x in the initramfs and
rcS) that shows where each second goes."""
import re
import sys
import time

log, limit = sys.argv[1], float(sys.argv[2])
every_line = "--lines" in sys.argv[3:]
start = time.monotonic()
seen = {}
pos, buf = 0, b""
marks = {
    "init": re.compile(rb"gondwana-initramfs: "),
    "switch": re.compile(rb"gondwana-initramfs: switching to root"),
    "ready": re.compile(rb"GONDWANA-READY .*uptime=([0-9.]+)"),
}
while time.monotonic() - start < limit and "ready" not in seen:
    try:
        with open(log, "rb") as f:
            f.seek(pos)
            chunk = f.read()
    except FileNotFoundError:
        chunk = b""
    pos += len(chunk)
    buf += chunk
    now = time.monotonic() - start
    *lines, buf = buf.split(b"\n")
    for line in lines:
        if every_line:
            text = line.decode(errors="replace").rstrip("\r")
            print(f"{now:7.2f} {text}", file=sys.stderr, flush=True)
        for key, rx in marks.items():
            m = rx.search(line)
            if m and key not in seen:
                seen[key] = (now, m)
    time.sleep(0.02)
if "ready" not in seen:
    sys.exit(f"boot-phases: no GONDWANA-READY within {limit:.0f} s")
ready = seen["ready"][0]
uptime = float(seen["ready"][1].group(1))
kernel = ready - uptime
init = seen.get("init", (float("nan"),))[0]
switch = seen.get("switch", (float("nan"),))[0]
for name, secs in (
    ("firmware", kernel),
    ("kernel", init - kernel),
    ("initramfs", switch - init),
    ("root", ready - switch),
    ("ours", uptime),
    ("total", ready),
):
    print(f"{name} {secs:.2f}")
