"""spice-server record files ("SPICE_REPLAY 1"): the format, recording and replay.

- `vgpu.replay.format`: what a file holds (worker messages, events, limits, errors);
- `vgpu.replay.reader` and `vgpu.replay.writer`: reading and writing it, from and to
  the typed commands of `vgpu.device.commands`;
- `vgpu.replay.recorder`: recording a running device (a queue and a writer thread);
- `vgpu.replay.player`: playing a file as a guest, through the guest driver;
- `vgpu.replay.cli`: `vgpu replay FILE [--frame-out PNG]`.

`docs/spice-replay-format.txt` describes the format.
"""
