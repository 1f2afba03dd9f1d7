#!/bin/sh
# KMS path (the kernel's qxl DRM driver, xf86-video-qxl in KMS mode): QEMU's VGA-mode
# primaries, the driver's own mode set (a 64x64 primary, then 1024x768), then xterm text
# and scrolling, twm window moves and raises, xcompmgr running (the KMS driver renders its
# composites in software).
. /opt/vgpu/scenes/common.sh
desktop_start
xcompmgr -c &
sleep 2
xclock -geometry 140x140+700+40 -update 3600 -title clock &
clock=$(window '^clock$')
xdotool windowmove "$clock" 760 400
xdotool mousemove 1010 750
done_scene
