#!/bin/sh
# KMS path (the kernel's qxl DRM driver, xf86-video-qxl in KMS mode): QEMU's VGA-mode
# primaries, the driver's own mode set (a 64x64 primary, then 1024x768), then xterm text
# and scrolling, twm window moves and raises, xcompmgr running (the KMS driver renders its
# composites in software).
. /opt/vgpu/scenes/common.sh
xsetroot -solid '#305030'
twm -f /opt/vgpu/twmrc &
sleep 2
xterm +bc -geometry 60x14+30+30 -title term -bg white -fg black -e sh -c \
  'for i in $(seq 1 40); do printf "%2d scrolling line, square %d\n" $i $((i*i)); done;
   exec sleep 100000' &
term=$(window '^term$')
xlogo -geometry 180x180+560+60 -title logo &
logo=$(window '^logo$')
sleep 1
for x in 520 460 400 340 280; do xdotool windowmove "$logo" "$x" 120; sleep 0.3; done
xdotool windowraise "$term"
sleep 1
xcompmgr -c &
sleep 2
xclock -geometry 140x140+700+40 -update 3600 -title clock &
clock=$(window '^clock$')
xdotool windowmove "$clock" 760 400
xdotool mousemove 1010 750
done_scene
