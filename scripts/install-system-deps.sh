#!/usr/bin/env bash
# Installs the Debian packages vgpu builds against and tests with.
# Skips apt entirely when everything is already there, so re-runs are instant.
set -euo pipefail

packages=(
  # build: C compiler, Python headers and venv, codec libraries
  build-essential python3-dev python3-venv pkg-config
  liblz4-dev libjpeg62-turbo-dev libcairo2-dev
  # OpenGL without a GPU: Mesa's EGL + llvmpipe
  libegl1 libegl-mesa0 libgl1-mesa-dri libgles2
  # the QXL ABI and SPICE enums we check our layouts against
  libspice-protocol-dev libspice-server-dev
  # the GL and GL ES registry (gl.xml): the 3D ring's command table is generated from it
  khronos-api
  # real peers for the tests: stock SPICE clients, spice-html5, Chromium, Xspice
  spice-client-gtk gir1.2-spiceclientglib-2.0 python3-gi
  # GStreamer's decoders, so spice-gtk announces and decodes H.264 and VP8 streams
  gstreamer1.0-libav gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  # x264enc: the real spice-server's own H.264 streams (bench stream, side by side)
  gstreamer1.0-plugins-ugly
  spice-html5 chromium nodejs
  xvfb xserver-xspice x11-apps xterm x11-xserver-utils xfonts-base
  # unmodified GL ES programs as guests (vgpu run): the EGL/GLES headers and libX11's for
  # csrc/gles/, and the programs the tests and `vgpu bench gles` run through vgpu
  libegl-dev libgles-dev libx11-dev glmark2-es2-x11 mesa-utils-bin
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
