# boot.cmd — the slot choice and the one-shot trial (docs/updates.md,
# "Trial boot and rollback"), for the MOCHAbin's vendor U-Boot 2018.03
# (SPI flash, left alone; no distro boot) and for any distro-boot U-Boot
# (QEMU's in the tests: it runs boot.scr when there is no extlinux.conf).
# Compiled to boot.scr with
#   mkimage -A arm64 -T script -C none -n gondwana -d boot.cmd boot.scr
# Set once on the vendor U-Boot's console (docs/flashing-mochabin.md):
#   setenv bootcmd 'load mmc 0:1 ${loadaddr} boot.scr && source ${loadaddr}'; saveenv
# Commands it needs: load, env import -t, test -e, cmp.b, fatwrite
# (CONFIG_FAT_WRITE), booti. Without fatwrite no trial is ever booted
# (the good slot boots, the node reports the rollback): never a trial that
# could repeat.
# ${devtype}/${devnum} are set by the command that loaded us; default: eMMC.
if test -z "${devtype}"; then setenv devtype mmc; setenv devnum 0; fi
setenv bootpart ${devnum}:1
if test "${board_name}" = "qemu-arm"; then
    # QEMU's virt board: its own RAM map and device tree.
    setenv fdt_addr_r ${fdtcontroladdr}
    setenv gw_dtb
else
    setenv kernel_addr_r 0x7000000
    setenv fdt_addr_r 0x6f00000
    setenv ramdisk_addr_r 0xc000000
    setenv gw_dtb dtbs/marvell/armada-7040-mochabin.dtb
fi

# The boot environment (a GRUB environment block: U-Boot skips its #
# lines). The kernel's and the initrd's load addresses serve as scratch
# space until the kernel is loaded.
setenv gw_good
setenv gw_try
setenv gw_arm
if load ${devtype} ${bootpart} ${kernel_addr_r} gondwana/bootenv; then
    env import -t ${kernel_addr_r} ${filesize}
fi
if test "${gw_good}" = b; then setenv gw_slot b; else setenv gw_slot a; fi
setenv gw_trial 0

# A trial is taken once: before booting it, the bootenv read is written,
# byte for byte, to bootenv.tried; while the two are equal it is not taken
# again (a new install writes a new gw_arm, so a new bootenv).
if test "${gw_try}" = a || test "${gw_try}" = b; then
    if test -e ${devtype} ${bootpart} slot-${gw_try}/installed; then
        if load ${devtype} ${bootpart} ${ramdisk_addr_r} gondwana/bootenv.tried && cmp.b ${kernel_addr_r} ${ramdisk_addr_r} 0x400; then
            echo "gondwana: the trial of slot ${gw_try} was taken: booting good slot ${gw_slot}"
        elif fatwrite ${devtype} ${bootpart} ${kernel_addr_r} gondwana/bootenv.tried 0x400; then
            echo "gondwana: booting slot ${gw_try} once, on trial"
            setenv gw_slot ${gw_try}
            setenv gw_trial 1
        else
            echo "gondwana: cannot record the trial (fatwrite): booting good slot ${gw_slot}"
        fi
    fi
fi
# Only a complete set (its installed record) is booted.
if test ! -e ${devtype} ${bootpart} slot-${gw_slot}/installed; then
    if test "${gw_slot}" = a; then setenv gw_slot b; else setenv gw_slot a; fi
fi

echo "gondwana: slot ${gw_slot} (trial ${gw_trial})"
# cryptomgr.notests: no crypto self-tests at each algorithm's registration
# (0.3-0.6 s under QEMU; upstream's default, CRYPTO_MANAGER_DISABLE_TESTS);
# usb_storage.delay_use=0: a USB stick is scanned at once, not after 1 s
# (docs/image.md "A faster boot").
setenv bootargs console=ttyAMA0,115200 console=ttyS0,115200 gondwana.slot=${gw_slot} gondwana.trial=${gw_trial} loglevel=4 cryptomgr.notests usb_storage.delay_use=0 rootwait panic=10
load ${devtype} ${bootpart} ${kernel_addr_r} slot-${gw_slot}/Image
if test -n "${gw_dtb}"; then
    load ${devtype} ${bootpart} ${fdt_addr_r} slot-${gw_slot}/${gw_dtb}
fi
load ${devtype} ${bootpart} ${ramdisk_addr_r} slot-${gw_slot}/initrd.img
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}
