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
