# Sourced by the scenes: helpers for waiting on windows and signalling the host.
export DISPLAY=:0
# the newest window whose name matches $1, once it is mapped
window() {
  for _ in $(seq 1 100); do
    w=$(xdotool search --onlyvisible --name "$1" 2>/dev/null | tail -1)
    [ -n "$w" ] && { echo "$w"; return 0; }
    sleep 0.2
  done
  return 1
}
# the picture is final: tell the host (serial port), then keep X up until it powers us off
done_scene() {
  sleep 3
  # the driver's own words on acceleration, for the host's log
  grep -i "composite\|render\|(EE)" /var/log/Xorg.0.log > /dev/ttyS0
  echo VGPU-SCENE-DONE > /dev/ttyS0
  exec sleep 100000
}
# the KMS scenes' start: twm, an xterm that scrolls 40 lines, xlogo slid left under it;
# sets $term and $logo to their windows
desktop_start() {
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
}
