# boot.cmd — for the MOCHAbin's vendor U-Boot 2018.03 (SPI flash, left
# alone), which has no distro boot. Compiled to boot.scr with
#   mkimage -A arm64 -T script -C none -n gondwana -d boot.cmd boot.scr
# Set once on the U-Boot console (docs/flashing-mochabin.md):
#   setenv bootcmd 'load mmc 0:1 ${loadaddr} boot.scr && source ${loadaddr}'; saveenv
# ${devtype}/${devnum} are set by the command that loaded us; default: eMMC.
if test -z "${devtype}"; then setenv devtype mmc; setenv devnum 0; fi
setenv bootpart ${devnum}:1
setenv kernel_addr_r 0x7000000
setenv fdt_addr_r 0x6f00000
setenv ramdisk_addr_r 0xc000000
setenv bootargs console=ttyS0,115200 gondwana.slot=a loglevel=4 rootwait panic=10
load ${devtype} ${bootpart} ${kernel_addr_r} Image
load ${devtype} ${bootpart} ${fdt_addr_r} dtbs/marvell/armada-7040-mochabin.dtb
load ${devtype} ${bootpart} ${ramdisk_addr_r} initrd.img
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}
