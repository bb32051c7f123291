#!/usr/bin/env python3
"""image/bzimage.py BZIMAGE OUTDIR — take an x86 bzImage apart for
image/bzimage-lz4: its payload decompressed (XZ as Debian builds it, or
LZ4 to check a result) and split into the two files the kernel's build
compressed it from, plus what the decompressor's build needs to know of
the kernel inside:

  OUTDIR/vmlinux.bin     the stripped kernel ELF
  OUTDIR/vmlinux.relocs  the relocation table appended to it (KASLR)
  OUTDIR/voffset.map     `nm`-style lines for _text, __start_rodata,
                         __bss_start and _end (voffset.h)
  OUTDIR/utsversion.h    UTS_VERSION, so the new header's version string
                         is the old one

and prints the kernel_version string. `bzimage.py --info BZIMAGE` prints
it and the payload's compression (xz, lz4, gzip, zstd, ...), to check a
result.

Layout: Documentation/x86/boot.rst (setup header: setup_sects at 0x1f1,
kernel_version at 0x20e, payload_offset/length at 0x248) and
arch/x86/boot/compressed/Makefile (payload = compressed vmlinux.bin +
vmlinux.relocs + their u32 size).
"""
import lzma
import os
import struct
import subprocess
import sys


def fail(msg):
    sys.exit("bzimage.py: " + msg)


MAGICS = [
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x02\x21\x4c\x18", "lz4"),  # lz4 -l (legacy frames), as kbuild writes it
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00", "lzma"),
    (b"\x89LZO", "lzo"),
]


def read_image(image):
    """The file, its kernel_version string and its payload."""
    with open(image, "rb") as f:
        d = f.read()
    if len(d) < 0x270 or d[0x202:0x206] != b"HdrS":
        fail(f"{image}: not a bzImage (no HdrS setup header)")
    setup_sects = d[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", d, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = d[start : start + payload_length]
    version_ptr, = struct.unpack_from("<H", d, 0x20E)
    version = d[version_ptr + 0x200 : d.index(b"\0", version_ptr + 0x200)].decode()
    return version, payload


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--info":
        version, payload = read_image(sys.argv[2])
        kind = next((k for m, k in MAGICS if payload.startswith(m)), "unknown")
        print(version)
        print(kind)
        return
    if len(sys.argv) != 3:
        fail("usage: bzimage.py BZIMAGE OUTDIR | --info BZIMAGE")
    image, outdir = sys.argv[1], sys.argv[2]
    version, payload = read_image(image)
    # The build appends the decompressed size (u32) after the stream.
    if payload.startswith(b"\xfd7zXZ\x00"):
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        out = dec.decompress(payload)
        trailer = dec.unused_data
    elif payload.startswith(b"\x02\x21\x4c\x18"):
        # LZ4 (image/bzimage-lz4's result, taken apart to compare it).
        out = subprocess.run(["lz4", "-dc"], input=payload[:-4], capture_output=True, check=True).stdout
        trailer = payload[-4:]
    else:
        fail(f"{image}: payload is neither XZ nor LZ4 (starts {payload[:6].hex()})")
    if len(trailer) != 4 or struct.unpack("<I", trailer)[0] != len(out):
        fail(f"{image}: payload size trailer does not match ({len(out)} bytes)")
    if out[:4] != b"\x7fELF" or out[4] != 2:
        fail(f"{image}: payload is not an ELF64 kernel")

    # vmlinux.bin ends with its section headers; the relocs follow.
    shoff, = struct.unpack_from("<Q", out, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", out, 0x3A)
    elf_end = shoff + shentsize * shnum

    def section(i):
        name, _type, _flags, addr, _off, size = struct.unpack_from("<IIQQQQ", out, shoff + i * shentsize)
        return name, addr, size

    # The section-name string table's file offset (sh_offset).
    strtab_off, = struct.unpack_from("<Q", out, shoff + shstrndx * shentsize + 0x18)
    sections = {}
    for i in range(shnum):
        name_i, addr, size = section(i)
        end = out.index(b"\0", strtab_off + name_i)
        sections[out[strtab_off + name_i : end].decode()] = (addr, size)
    for need in (".text", ".rodata", ".bss", ".brk"):
        if need not in sections:
            fail(f"{image}: kernel ELF has no {need} section")

    # Where arch/x86/kernel/vmlinux.lds.S puts the symbols: _text at the
    # start of .text, __start_rodata of .rodata, __bss_start of .bss, _end
    # at the page after .brk.
    page = 4096
    brk_addr, brk_size = sections[".brk"]
    symbols = [
        ("_text", sections[".text"][0]),
        ("__start_rodata", sections[".rodata"][0]),
        ("__bss_start", sections[".bss"][0]),
        ("_end", (brk_addr + brk_size + page - 1) // page * page),
    ]

    # "RELEASE (BY@HOST) UTS_VERSION": keep UTS_VERSION.
    if ") " not in version:
        fail(f"{image}: unexpected kernel_version string {version!r}")
    uts_version = version.split(") ", 1)[1]

    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "vmlinux.bin"), "wb") as f:
        f.write(out[:elf_end])
    with open(os.path.join(outdir, "vmlinux.relocs"), "wb") as f:
        f.write(out[elf_end:])
    with open(os.path.join(outdir, "voffset.map"), "w") as f:
        for name, addr in symbols:
            f.write(f"{addr:016x} T {name}\n")
    with open(os.path.join(outdir, "utsversion.h"), "w") as f:
        f.write('#define UTS_VERSION "%s"\n' % uts_version.replace("\\", "\\\\").replace('"', '\\"'))
    print(version)


main()
