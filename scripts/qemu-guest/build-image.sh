#!/usr/bin/env bash
# Builds the Debian 12 guest whose QXL traffic the real-VM fixtures record:
# debootstrap (minbase) plus a kernel with the qxl DRM driver, Xorg with
# xf86-video-qxl, twm, xterm and xcompmgr. Everything lands in a cache
# outside the repository (VGPU_QEMU_GUEST_CACHE, default
# ~/.cache/vgpu-qemu-guest): rootfs/ is the tree, rootfs.ext4 the disk
# image, vmlinuz and initrd.img the kernel QEMU boots directly.
# Needs root, debootstrap, e2fsprogs and network access to a Debian mirror.
# Scenes are copied in at record time (record.sh), so this runs once.
set -euo pipefail

cache="${VGPU_QEMU_GUEST_CACHE:-$HOME/.cache/vgpu-qemu-guest}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# 2 GiB holds the ~1.1 GiB tree with room for Xorg's logs.
image_size=2G
packages=(
  linux-image-amd64 systemd-sysv kmod udev
  xserver-xorg-core xserver-xorg-video-qxl xserver-xorg-input-libinput
  xinit twm xterm x11-apps x11-xserver-utils xcompmgr xdotool
  fonts-dejavu-core xfonts-base xfonts-75dpi
)

mkdir -p "$cache"
if [ ! -e "$cache/rootfs/.debootstrap-done" ]; then
  rm -rf "$cache/rootfs"
  include=$(IFS=,; echo "${packages[*]}")
  debootstrap --variant=minbase --include="$include" bookworm "$cache/rootfs" "$mirror"
  touch "$cache/rootfs/.debootstrap-done"
fi

root="$cache/rootfs"
# No login prompt: the scene unit owns the console and tty1 stays free for X.
ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
echo "/dev/vda / ext4 rw 0 1" > "$root/etc/fstab"
echo vgpu-guest > "$root/etc/hostname"
# Anyone may start X from the scene unit.
printf 'allowed_users=anybody\nneeds_root_rights=yes\n' > "$root/etc/X11/Xwrapper.config"

cp -L "$root/vmlinuz" "$cache/vmlinuz"
cp -L "$root/initrd.img" "$cache/initrd.img"
echo "guest tree ready in $root"
