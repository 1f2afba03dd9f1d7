#!/usr/bin/env bash
# Records one scene of the Debian guest (build-image.sh) under QEMU with -vga qxl:
# spice-server writes every QXL command and device request to SCENE.spice
# (SPICE_WORKER_RECORD_FILENAME), and when the guest says the scene's picture is final,
# spicy-screenshot takes the live VM's screen as SCENE.png. Both land in OUT_DIR
# (default: the current folder); SCENE.spice is then xz-compressed.
#   record.sh kms-desktop [OUT_DIR]    the qxl DRM driver (KMS)
#   record.sh ums-composite [OUT_DIR]  xf86-video-qxl alone (UMS); a spice-gtk client
#                                      stays connected so that the driver sends COMPOSITE
# Needs root (the image is made with mkfs.ext4 -d from the cached tree), qemu-system-x86,
# spice-client-gtk, python3-gi with gir1.2-spiceclientglib-2.0, and PIL for the python
# named by $PYTHON (default python3) to turn the screenshot into a PNG.
# VGPU_SERIAL_LOG=FILE keeps the guest's serial console there.
set -euo pipefail

scene="$1"
out_dir="$(realpath "${2:-.}")"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${VGPU_QEMU_GUEST_CACHE:-$HOME/.cache/vgpu-qemu-guest}"
python="${PYTHON:-python3}"
port="${SPICE_PORT:-5931}"
# TCG boots in about 1.5 minutes; a scene takes one or two more on 2 busy cores.
boot_timeout=900
[ -f "$here/guest/scenes/$scene.sh" ] || { echo "no scene $scene" >&2; exit 2; }
[ -e "$cache/rootfs/.debootstrap-done" ] || { echo "run build-image.sh first" >&2; exit 2; }

work="$(mktemp -d)"
qemu_pid=""
client_pid=""
cleanup() {
  [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# the scene files and the unit that runs them, then a fresh disk image from the tree
root="$cache/rootfs"
install -d "$root/opt/vgpu/scenes"
install -m 755 "$here/guest/run-scene" "$root/opt/vgpu/run-scene"
install -m 644 "$here/guest/xorg-ums.conf" "$here/guest/twmrc" "$root/opt/vgpu/"
install -m 755 "$here"/guest/scenes/*.sh "$root/opt/vgpu/scenes/"
install -m 644 "$here/guest/vgpu-scene.service" "$root/etc/systemd/system/"
ln -sf /etc/systemd/system/vgpu-scene.service \
  "$root/etc/systemd/system/multi-user.target.wants/vgpu-scene.service"
rm -f "$cache/rootfs.ext4"
truncate -s 2G "$cache/rootfs.ext4"
mkfs.ext4 -q -F -d "$root" "$cache/rootfs.ext4"

append="root=/dev/vda rw console=ttyS0 quiet vgpu.scene=$scene"
case "$scene" in ums-*) append="$append modprobe.blacklist=qxl" ;; esac

record="$work/$scene.spice"
SPICE_WORKER_RECORD_FILENAME="$record" qemu-system-x86_64 \
  -accel tcg,thread=multi -m 1024 -smp 2 -nic none \
  -kernel "$cache/vmlinuz" -initrd "$cache/initrd.img" -append "$append" \
  -drive "file=$cache/rootfs.ext4,format=raw,if=virtio" \
  -vga qxl -spice "port=$port,addr=127.0.0.1,disable-ticketing=on" -display none \
  -serial "file:$work/serial.log" &
qemu_pid=$!

if [[ "$scene" == ums-* ]]; then
  # connected before Xorg starts, so the driver sees a composite-capable client all along
  sleep 2
  mkfifo "$work/client.in"
  /usr/bin/python3 "$repo/tests/clients/spice_glib_client.py" --port "$port" \
    --timeout "$boot_timeout" < "$work/client.in" > "$work/client.log" 2>&1 &
  client_pid=$!
  exec 3> "$work/client.in"
fi

for _ in $(seq 1 "$boot_timeout"); do
  grep -q "VGPU-SCENE-DONE" "$work/serial.log" 2>/dev/null && break
  if grep -q "VGPU-SCENE-FAILED" "$work/serial.log" 2>/dev/null || ! kill -0 "$qemu_pid"; then
    echo "the scene failed; serial log:" >&2; tail -20 "$work/serial.log" >&2; exit 1
  fi
  sleep 1
done
grep -q "VGPU-SCENE-DONE" "$work/serial.log" || { echo "timed out" >&2; exit 1; }

# the guest is idle; wait until spice-server has taken everything, then look at it
last=-1
while [ "$(stat -c %s "$record")" != "$last" ]; do last=$(stat -c %s "$record"); sleep 5; done
spicy-screenshot -h 127.0.0.1 -p "$port" -o "$work/$scene.ppm"
sleep 2
kill "$qemu_pid"; wait "$qemu_pid" || true; qemu_pid=""
if [ -n "$client_pid" ]; then echo quit >&3; exec 3>&-; wait "$client_pid" || true; client_pid=""; fi

"$python" -c 'import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2])' \
  "$work/$scene.ppm" "$out_dir/$scene.png"
xz -9 -c "$record" > "$out_dir/$scene.spice.xz"
# the guest's console: Xorg's messages and the driver's acceleration lines
[ -z "${VGPU_SERIAL_LOG:-}" ] || cp "$work/serial.log" "$VGPU_SERIAL_LOG"
ls -l "$out_dir/$scene.png" "$out_dir/$scene.spice.xz"
