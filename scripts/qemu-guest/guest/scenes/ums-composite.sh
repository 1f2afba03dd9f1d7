#!/bin/sh
# UMS path (qxl module blacklisted, xf86-video-qxl drives the device): a mode change
# (1024x768 -> 800x600), then xcompmgr's client-side shadows and a translucent xterm over
# xlogo, a window move under compositing, scrolling text. The driver sends COMPOSITE only
# while a client that announces composite support is connected (the host connects one).
. /opt/vgpu/scenes/common.sh
xsetroot -solid '#304060'
sleep 1
xrandr -s 800x600
sleep 3
twm -f /opt/vgpu/twmrc &
sleep 2
xcompmgr -c -r 6 -o 0.5 -l -8 -t -8 &
sleep 2
xlogo -geometry 200x200+420+60 -title logo &
logo=$(window '^logo$')
xterm +bc -geometry 50x12+40+40 -title term -bg white -fg black -e sh -c \
  'for i in $(seq 1 30); do printf "%2d translucent text %d\n" $i $((i*i*3)); done;
   exec sleep 100000' &
term=$(window '^term$')
sleep 2
transset --id "$term" 0.75
sleep 1
for x in 380 320 260; do xdotool windowmove "$logo" "$x" 200; sleep 0.5; done
xdotool mousemove 790 590
done_scene
