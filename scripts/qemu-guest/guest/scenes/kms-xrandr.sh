#!/bin/sh
# KMS path with a mode change from inside X: xterm text, twm and a window move at
# 1024x768, then xrandr to 800x600 and more drawing in the new mode (the DRM driver makes
# a new framebuffer surface, KEEP_DATA, and a new primary on it).
. /opt/vgpu/scenes/common.sh
desktop_start
out=$(xrandr | awk '/ connected/ {print $1; exit}')
xrandr --output "$out" --mode 800x600
sleep 3
xsetroot -solid '#503030'
xdotool windowmove "$logo" 560 360
xclock -geometry 140x140+600+20 -update 3600 -title clock &
window '^clock$' > /dev/null
xdotool mousemove 790 590
done_scene
