"""A headless stock SPICE client (spice-gtk's SpiceClientGLib), driven over stdin/stdout.

Run by the system's /usr/bin/python3 (which has the gi bindings), not the venv.
It prints one line per event:
  primary W H FORMAT STRIDE      the display's primary surface was created
  inv T X Y W H STAMP            display-invalidate at time.time() T; STAMP is the
                                 16-bit frame stamp that benchmarks draw along the
                                 bottom-left (see read_stamp)
  mark                           the display's first full picture is there
  event CHANNEL_TYPE EVENT_NICK  a channel event (opened, error-auth, ...)
  cursor W H HX HY FIRST SHA1    cursor-set; FIRST is the first pixel's RGBA as a u32,
                                 SHA1 the hex digest of all W*H RGBA pixels
  cursor-move X Y / cursor-hide  the other cursor signals
  dumped PATH                    the answer to "dump PATH"
and reads commands: "dump PATH" (writes the primary's raw B,G,R,X rows, stride
= 4 * width), "key SCANCODE" (press and release), "position X Y", "click BUTTON"
and "quit".
"""

import argparse
import ctypes
import hashlib
import sys
import time

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject  # noqa: E402
from gi.repository import SpiceClientGLib as Spice  # noqa: E402

STAMP_BITS = 16
STAMP_BLOCK = 16


def say(*parts):
    print(*parts, flush=True)


class Client:
    def __init__(self, args):
        self.loop = GLib.MainLoop()
        self.primary = None  # (width, height, format, stride, address)
        self.inputs = None
        self.session = Spice.Session()
        self.session.set_property("host", args.host)
        if args.port:
            self.session.set_property("port", str(args.port))
        if args.tls_port:
            self.session.set_property("tls-port", str(args.tls_port))
            self.session.set_property("ca-file", args.ca_file)
        if args.password is not None:
            self.session.set_property("password", args.password)
        if args.preferred_compression:
            self.session.set_property("preferred-compression", args.preferred_compression)
        # Spice.Session.connect hides GObject's signal connect (see PEERS.md).
        GObject.Object.connect(self.session, "channel-new", self.on_channel)
        GObject.Object.connect(self.session, "disconnected", lambda s: self.finish("disconnected"))
        GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, self.on_stdin)
        if args.timeout:
            GLib.timeout_add(int(args.timeout * 1000), lambda: self.finish("timeout"))

    def finish(self, why):
        say("closed", why)
        self.loop.quit()
        return False

    def on_channel(self, session, channel):
        GObject.Object.connect(channel, "channel-event", self.on_channel_event)
        if isinstance(channel, Spice.CursorChannel):
            GObject.Object.connect(channel, "cursor-set", self.on_cursor_set)
            GObject.Object.connect(
                channel, "cursor-move", lambda ch, x, y: say("cursor-move", x, y)
            )
            GObject.Object.connect(channel, "cursor-hide", lambda ch: say("cursor-hide"))
        if isinstance(channel, Spice.InputsChannel):
            self.inputs = channel
        if isinstance(channel, Spice.DisplayChannel):
            GObject.Object.connect(channel, "display-primary-create", self.on_primary)
            GObject.Object.connect(channel, "display-invalidate", self.on_invalidate)
            GObject.Object.connect(channel, "display-mark", lambda ch, mark: say("mark", mark))
        Spice.Channel.connect(channel)

    def on_channel_event(self, channel, event):
        kind = channel.get_property("channel-type")
        say("event", kind, event.value_nick)

    def on_cursor_set(self, channel, width, height, hot_x, hot_y, rgba):
        pixels = ctypes.string_at(rgba, width * height * 4) if rgba else b""
        first = int.from_bytes(pixels[:4], "little") if pixels else 0
        say("cursor", width, height, hot_x, hot_y, first, hashlib.sha1(pixels).hexdigest())

    def on_primary(self, channel, fmt, width, height, stride, shmid, data):
        # The introspected DisplayPrimary struct is wrong; the signal's own args are right.
        self.primary = (width, height, fmt, stride, data)
        say("primary", width, height, fmt, stride)

    def read_stamp(self):
        """Bit i is block i of 16x16 pixels along the bottom-left edge, set if its
        centre is bright: coarse enough to survive JPEG."""
        width, height, _fmt, stride, address = self.primary
        if width < STAMP_BITS * STAMP_BLOCK or height < STAMP_BLOCK:
            return 0
        row = address + (height - STAMP_BLOCK // 2) * stride
        value = 0
        for bit in range(STAMP_BITS):
            x = bit * STAMP_BLOCK + STAMP_BLOCK // 2
            green = ctypes.string_at(row + x * 4 + 1, 1)[0]
            value |= (green > 127) << bit
        return value

    def on_invalidate(self, channel, x, y, w, h):
        now = time.time()
        stamp = self.read_stamp() if self.primary else 0
        say("inv", f"{now:.6f}", x, y, w, h, stamp)

    def on_stdin(self, fd, condition):
        line = sys.stdin.readline()
        if not line:
            return self.finish("stdin closed")
        words = line.split()
        if words[:1] == ["dump"] and self.primary:
            width, height, _fmt, stride, address = self.primary
            with open(words[1], "wb") as out:
                for row in range(height):
                    out.write(ctypes.string_at(address + row * stride, width * 4))
            say("dumped", words[1])
        elif words[:1] == ["dump"]:
            say("error no primary surface")
        elif words[:1] == ["key"] and self.inputs:
            self.inputs.key_press_and_release(int(words[1], 0))
            say("sent", *words)
        elif words[:1] == ["position"] and self.inputs:
            self.inputs.position(int(words[1]), int(words[2]), 0, 0)
            say("sent", *words)
        elif words[:1] == ["click"] and self.inputs:
            button = int(words[1])
            self.inputs.button_press(button, 1 << (button - 1))
            self.inputs.button_release(button, 0)
            say("sent", *words)
        elif words[:1] == ["quit"]:
            return self.finish("quit")
        return True

    def run(self):
        if not self.session.connect():
            say("error connect failed")
            return 1
        self.loop.run()
        self.session.disconnect()
        return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--ca-file")
    parser.add_argument("--password")
    parser.add_argument("--preferred-compression", type=int)
    parser.add_argument("--timeout", type=float, default=30.0)
    return Client(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
