# shellcheck shell=bash disable=SC2154,SC2034 # scripts/demo's globals, both ways
# scripts/lib/demo-update.sh — the demo's update over the mesh (docs/demo.md
# step 5, docs/updates.md "The three-VM test"). Sourced by scripts/demo; uses
# its say, die, indent, console, console_open, $work, $out, mesh_ip, node_id.
#
#   update_prepare           before the hub boots: a bundle of the MOCHAbin
#                            image's root (its release file saying the new
#                            version) and boot files at a higher version,
#                            signed with the key the images trust,
#                            and its release record (gondwana-release), on a
#                            FAT disk labelled GW_BUNDLE; sets update_disk
#                            (QEMU arguments for the hub) and update_version
#   update_node_config N POLICY
#                            writes $work/node-N.toml, the operator config
#                            for mochabin-N's boot partition
#   update_publish           the hub: mount the disk, `gondwana update publish`
#   update_first_fetch       mochabin-1 (download-only) fetches the bundle
#                            from the hub; mochabin-2 (manual) sees the
#                            release and leaves it
#   update_from_peer         (the hub powered off) mochabin-2 is switched to
#                            `auto` and reloads (SIGHUP): it fetches the bundle
#                            from mochabin-1, installs it, boots the new slot
#                            once on trial, marks it good, same node id

update_release_tool() { (cd "$ROOT" && cargo run -q --locked -p gondwana-release -- "$@"); }

update_prepare() {
    local stage=$ROOT/out/images/mochabin key=${GONDWANA_RELEASE_KEY:-out/keys/release-dev.key} pub board
    need_apt dosfstools mtools squashfs-tools
    [[ -f $stage/boot/slot-a/installed && -f $stage/rootfs/etc/gondwana/release ]] ||
        die "no out/images/mochabin (scripts/build-images mochabin makes it)"
    [[ $key == /* ]] || key=$ROOT/$key
    [[ -f $key ]] || die "no release key $key (the one the images were built with: GONDWANA_RELEASE_KEY)"
    # The images (the hub's too: it checks the record) must trust that key.
    pub=$(update_release_tool pubkey "$key") || die "gondwana-release pubkey $key failed"
    for board in mochabin amd64-live; do
        grep -qx "$pub" "$ROOT/out/images/$board/rootfs/etc/gondwana/release-keys" ||
            die "out/gondwana-$board.img does not trust the release key $key"
    done
    update_version=$(($(sed -n 's/^version=//p' "$stage/boot/slot-a/installed") + 1))
    # (KERNEL_FILE, DTB: the boot files of a MOCHAbin slot)
    # shellcheck disable=SC1091
    . "$ROOT/board/mochabin/board.env"
    # The image's root tree, its release file saying the new release: the
    # box runs what the bundle says once it boots it (gzip: quicker than
    # the image's xz, and every squashfs kernel reads it).
    cp -a "$stage/rootfs" "$work/root"
    sed -i "s/^version=.*/version=$update_version/; s/^label=.*/label=demo-update/" "$work/root/etc/gondwana/release"
    mksquashfs "$work/root" "$work/root.squashfs" -noappend -quiet -no-progress -comp gzip -all-root -no-xattrs >/dev/null ||
        die "mksquashfs failed"
    rm -rf "$work/root"
    local bundle=$work/gondwana-mochabin.bundle
    update_release_tool build --key "$key" --board mochabin --version "$update_version" --label demo-update \
        --root "$work/root.squashfs" --boot "$KERNEL_FILE=$stage/boot/slot-a/$KERNEL_FILE" \
        --boot "initrd.img=$stage/boot/slot-a/initrd.img" --boot "dtbs/$DTB=$stage/boot/slot-a/dtbs/$DTB" \
        --out "$bundle" >/dev/null || die "gondwana-release build failed"
    update_release_tool record --key "$key" --bundle "$bundle" >/dev/null || die "gondwana-release record failed"
    update_size=$(stat -c %s "$bundle")
    # The hub reads both from a second disk, as an operator's USB stick.
    truncate -s $((update_size / 1048576 + 16))M "$work/bundles.img"
    mkfs.vfat -n GW_BUNDLE "$work/bundles.img" >/dev/null
    MTOOLS_SKIP_CHECK=1 mcopy -i "$work/bundles.img" "$bundle" "$bundle.release" ::
    # shellcheck disable=SC2054 # QEMU options, commas and all
    update_disk=(-drive "if=none,id=bundles,format=raw,readonly=on,file=$work/bundles.img"
        -device virtio-blk-pci,drive=bundles)
    say "update: the MOCHAbin image's root (its release file saying version $update_version) and slot a's boot files signed as version $update_version (label demo-update, $((update_size >> 20)) MiB) with $key, and its release record: on a second disk for the hub"
}

update_node_config() { # N POLICY
    cat >"$work/node-$1.toml" <<EOF
# Operator config on mochabin-$1's boot partition (gondwana/gondwana.toml).
role = "node"
[firewall]
mesh_open_ports = [22]
[update]
policy = "$2"
EOF
}

update_publish() {
    say "hub: gondwana update publish (the bundle and its .release record from the second disk)"
    console hub 300 "mkdir -p /tmp/b && mount -t vfat -o ro \$(findfs LABEL=GW_BUNDLE) /tmp/b && gondwana update publish /tmp/b/gondwana-mochabin.bundle" ||
        die "the hub's console does not answer"
    indent <<<"$out"
    [[ $out == "published: version $update_version (demo-update) for mochabin, bundle "* ]] || die "the hub did not publish the bundle"
    update_hash=$(sed -n 's/.*, bundle \([0-9a-f]\{64\}\) .*/\1/p' <<<"$out")
}

# shellcheck disable=SC2001 # a character class, not one pattern
update_regex() { sed 's/[][().*^$+?{}|\\]/\\&/g' <<<"$1"; } # TEXT -> an ERE matching it

# STATUS_TEXT LINE_START: the line of `gondwana update status` that starts so.
update_line() { grep -m1 "^$2" <<<"$1"; }

update_first_fetch() {
    local t=$SECONDS
    say "mochabin-1 (policy download-only) fetches the bundle from the hub since it enrolled (\`gondwana update status\`)"
    # shellcheck disable=SC2016 # expands on the VM's console
    console mochabin-1 300 'i=0; while [ $i -lt 280 ] && ! gondwana update status | grep -q "download complete"; do sleep 2; i=$((i+2)); done; gondwana update status' ||
        die "mochabin-1: update status does not answer"
    update_line "$out" release: | indent
    [[ $out == *"download complete $update_size/$update_size bytes"* ]] || die "mochabin-1 did not download the bundle: $out"
    # The daemon's log line (its stderr is the console) names the source.
    local from="update: bundle $update_hash ($update_size bytes) complete and verified, from http://$hub_ip:8798"
    grep -aqF "$from" "$QEMU_DIR/mochabin-1/serial.log" || die "mochabin-1's log does not say '$from'"
    say "mochabin-1: ${from#update: } (in $((SECONDS - t)) s)"
    # shellcheck disable=SC2016 # expands on the VM's console
    console mochabin-2 90 'i=0; while [ $i -lt 60 ] && ! gondwana update status | grep -q "^release: version"; do sleep 2; i=$((i+2)); done; gondwana update status' ||
        die "mochabin-2: update status does not answer"
    update_line "$out" policy | indent
    update_line "$out" release: | indent
    update_line "$out" "next step:" | indent
    [[ $out == *"release: version $update_version (demo-update)"*"download none"* && $out == *"next step: idle: policy manual"* ]] ||
        die "mochabin-2 (manual) should see the release and leave it: $out"
}

update_from_peer() {
    local t=$SECONDS line id
    say "mochabin-2: policy manual -> auto on its boot partition, then SIGHUP (the daemon reloads its config)"
    # shellcheck disable=SC2016 # expands on the VM's console
    console mochabin-2 60 'mount -o remount,rw /boot && sed -i "s/^policy = .*/policy = \"auto\"/" /boot/gondwana/gondwana.toml && mount -o remount,ro /boot && kill -HUP $(pidof gondwana) && grep ^policy /boot/gondwana/gondwana.toml' ||
        die "mochabin-2: the console does not answer"
    [[ $out == 'policy = "auto"' ]] || die "mochabin-2: the config was not changed: $out"
    # From here on the serial log: the daemon logs each step (stderr is the
    # console) and the box reboots. The hub, first in its list of sources,
    # does not answer (a connection times out after 30 s); mochabin-1 does.
    local from="update: bundle $update_hash ($update_size bytes) complete and verified, from http://${mesh_ip[1]}:8798"
    qemu_wait mochabin-2 "$(update_regex "$from")" 240 >/dev/null || die "mochabin-2 did not fetch the bundle from mochabin-1 (${mesh_ip[1]})"
    say "mochabin-2: ${from#update: } (in $((SECONDS - t)) s)"
    qemu_wait mochabin-2 'gondwana: booting slot b once, on trial' 180 >/dev/null || die "mochabin-2 did not reboot into slot b on trial"
    say "mochabin-2: installed into slot b and rebooted: U-Boot boots slot b once, on trial (in $((SECONDS - t)) s)"
    line=$(qemu_wait mochabin-2 'GONDWANA-READY node_id=gw:' 240) || die "mochabin-2 did not come up on slot b"
    id=$(sed -n 's/.*node_id=\([^ ]*\).*/\1/p' <<<"$line")
    [[ $id == "${node_id[2]}" ]] || die "mochabin-2's node id changed: ${node_id[2]} -> $id"
    qemu_wait mochabin-2 'slot b marked good' 300 >/dev/null || die "mochabin-2: slot b was not marked good"
    console_open mochabin-2 || die "no shell on mochabin-2's console after its reboot"
    console mochabin-2 60 'gondwana update status' || die "mochabin-2: update status does not answer"
    update_line "$out" board | indent
    update_line "$out" "last update:" | indent
    update_line "$out" "slot b:" | indent
    update_line "$out" "next step:" | indent
    [[ $(update_line "$out" board) == "board mochabin, running slot b, good slot b" ]] || die "mochabin-2 is not on a good slot b: $out"
    [[ $(update_line "$out" "slot b:") == "slot b: running, version $update_version (demo-update) "* ]] || die "mochabin-2 does not run the new release: $out"
    [[ $(update_line "$out" "next step:") == "next step: idle: "* && $out != *"failed"*"before"* ]] || die "mochabin-2 after its update: $out"
    [[ $(update_line "$out" "last update:") == "last update: update to version $update_version (demo-update) succeeded: slot b marked good" ]] ||
        die "mochabin-2's last update: $out"
    say "mochabin-2: slot b healthy and marked good, same node id $id (in $((SECONDS - t)) s): updated from mochabin-1 with the hub powered off"
}
