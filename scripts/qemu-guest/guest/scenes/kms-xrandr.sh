#!/bin/sh
# KMS path with a mode change from inside X: xterm text, twm and a window move at
# 1024x768, then xrandr to 800x600 and more drawing in the new mode (the DRM driver makes
# a new framebuffer surface, KEEP_DATA, and a new primary on it).
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
out=$(xrandr | awk '/ connected/ {print $1; exit}')
xrandr --output "$out" --mode 800x600
sleep 3
xsetroot -solid '#503030'
xdotool windowmove "$logo" 560 360
xclock -geometry 140x140+600+20 -update 3600 -title clock &
window '^clock$' > /dev/null
xdotool mousemove 790 590
done_scene
