"""The sans-IO SPICE machines driven directly: link, main, display, cursor, inputs."""

from __future__ import annotations

import struct

import pytest
from spice_testkit import encrypt_ticket, link_request, mini, split_messages

from vgpu.display import CursorShape, CursorState, CursorUpdate, InputEvent
from vgpu.spice import constants as const
from vgpu.spice.channels import (
    ACK_WINDOW,
    AckReceived,
    ChannelClosed,
    CursorChannel,
    DisplayChannel,
    EncodedRegion,
    InputReceived,
    InputsChannel,
    MainChannel,
    MouseModeChanged,
    PongReceived,
    scancodes_to_events,
)
from vgpu.spice.link import LinkClosed, Linked, LinkMachine, LinkState, new_ticket_key

KEY = new_ticket_key()


def reply_of(out: bytes) -> tuple[int, bytes]:
    magic, major, minor, size = struct.unpack_from("<4sIII", out)
    assert (magic, major, minor) == (b"REDQ", 2, 2)
    body = out[16 : 16 + size]
    return struct.unpack_from("<I", body)[0], body


def do_link(password: str | None, sent: str, channel_type: int = const.SPICE_CHANNEL_MAIN):
    link = LinkMachine(password, KEY)
    assert link.receive_data(link_request(channel_type, channel_caps=(1,))) == []
    error, body = reply_of(link.data_to_send())
    assert error == const.SPICE_LINK_ERR_OK
    num_common, num_channel, offset = struct.unpack_from("<III", body, 4 + 162)
    words = struct.unpack_from(f"<{num_common + num_channel}I", body, offset)
    # Auth selection, SPICE auth and mini header; never SASL.
    assert words[0] == 0b1011
    events = link.receive_data(struct.pack("<I", 1) + encrypt_ticket(body, sent))
    return link, events


def test_right_password_links_and_result_ok():
    link, events = do_link("s3cret", "s3cret")
    assert len(events) == 1 and isinstance(events[0], Linked)
    assert events[0].mini_header and events[0].channel_caps == (2,)
    link.finish(const.SPICE_LINK_ERR_OK)
    assert link.data_to_send() == struct.pack("<I", const.SPICE_LINK_ERR_OK)
    assert link.state is LinkState.DONE


def test_wrong_password_is_permission_denied():
    link, events = do_link("s3cret", "guess")
    assert [type(e) for e in events] == [LinkClosed]
    assert link.data_to_send() == struct.pack("<I", const.SPICE_LINK_ERR_PERMISSION_DENIED)
    assert link.state is LinkState.CLOSED


def test_disabled_ticketing_accepts_any_ticket():
    _, events = do_link(None, "anything")
    assert isinstance(events[0], Linked)


def test_link_without_auth_selection_reads_ticket_directly():
    link = LinkMachine("pw", KEY)
    link.receive_data(link_request(const.SPICE_CHANNEL_MAIN, common_caps=(1,)))
    _, body = reply_of(link.data_to_send())
    events = link.receive_data(encrypt_ticket(body, "pw"))
    assert isinstance(events[0], Linked) and not events[0].mini_header


def test_sasl_is_refused():
    link = LinkMachine(None, KEY)
    link.receive_data(link_request(const.SPICE_CHANNEL_MAIN))
    link.data_to_send()
    events = link.receive_data(struct.pack("<I", const.SPICE_COMMON_CAP_AUTH_SASL))
    assert isinstance(events[0], LinkClosed)
    assert link.data_to_send() == struct.pack("<I", const.SPICE_LINK_ERR_INVALID_DATA)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"XXXX" + bytes(12), const.SPICE_LINK_ERR_INVALID_MAGIC),
        (struct.pack("<4sIII", b"REDQ", 1, 3, 18), const.SPICE_LINK_ERR_VERSION_MISMATCH),
        (struct.pack("<4sIII", b"REDQ", 2, 2, 10**9), const.SPICE_LINK_ERR_INVALID_DATA),
        # caps offset pointing past the end of the message
        (
            struct.pack("<4sIII", b"REDQ", 2, 2, 18) + struct.pack("<IBBIII", 0, 1, 0, 1, 0, 400),
            const.SPICE_LINK_ERR_INVALID_DATA,
        ),
    ],
)
def test_bad_link_messages_get_an_error_reply(data, error):
    link = LinkMachine(None, KEY)
    events = link.receive_data(data)
    assert [type(e) for e in events] == [LinkClosed]
    assert reply_of(link.data_to_send())[0] == error


def test_link_bytes_may_arrive_one_at_a_time():
    link = LinkMachine(None, KEY)
    for byte in link_request(const.SPICE_CHANNEL_DISPLAY, connection_id=77):
        assert link.receive_data(bytes([byte])) == []
    _, body = reply_of(link.data_to_send())
    events: list = []
    for byte in struct.pack("<I", 1) + encrypt_ticket(body, ""):
        events += link.receive_data(bytes([byte]))
    assert events[0].connection_id == 77 and events[0].channel_type == const.SPICE_CHANNEL_DISPLAY


def linked(channel_type: int, channel_caps: tuple[int, ...] = (), mini_header: bool = True):
    common = (0b1011,) if mini_header else (0b0011,)
    words = tuple(sum(1 << b for b in channel_caps if b // 32 == 0) for _ in [0])
    return Linked(channel_type, 0, 0, common, words if channel_caps else ())


def test_main_init_channels_list_and_mouse_mode():
    channels = ((const.SPICE_CHANNEL_DISPLAY, 0), (const.SPICE_CHANNEL_INPUTS, 0))
    main = MainChannel(
        linked(const.SPICE_CHANNEL_MAIN, (const.SPICE_MAIN_CAP_NAME_AND_UUID,)),
        1234,
        channels,
        "vm",
        bytes(16),
    )
    main.start(mm_time=5000)
    msgs = split_messages(main.data_to_send())
    assert [t for t, _ in msgs] == [
        const.SPICE_MSG_MAIN_INIT,
        const.SPICE_MSG_MAIN_NAME,
        const.SPICE_MSG_MAIN_UUID,
    ]
    init = struct.unpack("<8I", msgs[0][1])
    assert init[0] == 1234 and init[1] == 1 and init[2] == 3 and init[4] == 0 and init[6] == 5000
    assert msgs[1][1] == struct.pack("<I", 3) + b"vm\0"
    assert main.receive_data(mini(const.SPICE_MSGC_MAIN_ATTACH_CHANNELS)) == []
    [(kind, body)] = split_messages(main.data_to_send())
    assert kind == const.SPICE_MSG_MAIN_CHANNELS_LIST
    assert body == struct.pack("<IBBBB", 2, 2, 0, 3, 0)
    events = main.receive_data(mini(const.SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST, struct.pack("<H", 1)))
    assert events == [MouseModeChanged(const.SPICE_MOUSE_MODE_SERVER)]
    assert split_messages(main.data_to_send()) == [
        (const.SPICE_MSG_MAIN_MOUSE_MODE, struct.pack("<HH", 3, 1))
    ]
    main.ping(9, 123456789)
    assert split_messages(main.data_to_send()) == [
        (const.SPICE_MSG_PING, struct.pack("<IQ", 9, 123456789))
    ]
    assert main.receive_data(mini(const.SPICE_MSGC_PONG, struct.pack("<IQ", 9, 123456789))) == [
        PongReceived(9, 123456789)
    ]
    # Agent messages are read and dropped: there is no agent.
    assert main.receive_data(mini(const.SPICE_MSGC_MAIN_AGENT_DATA, b"x" * 100)) == []
    assert main.data_to_send() == b""


def test_full_data_header_when_client_lacks_mini_header():
    main = MainChannel(linked(const.SPICE_CHANNEL_MAIN, mini_header=False), 1, (), "vm", bytes(16))
    main.start(0)
    serial, msg_type, size, sub_list = struct.unpack_from("<QHII", main.data_to_send())
    assert (serial, msg_type, size, sub_list) == (1, const.SPICE_MSG_MAIN_INIT, 32, 0)
    # Client messages framed the same way.
    ping = struct.pack("<QHII", 1, const.SPICE_MSGC_MAIN_ATTACH_CHANNELS, 0, 0)
    assert main.receive_data(ping) == []
    assert struct.unpack_from("<QH", main.data_to_send()) == (2, const.SPICE_MSG_MAIN_CHANNELS_LIST)


def test_display_ack_window_blocks_then_opens():
    display = DisplayChannel(linked(const.SPICE_CHANNEL_DISPLAY))
    display.set_ack()
    assert split_messages(display.data_to_send()) == [
        (const.SPICE_MSG_SET_ACK, struct.pack("<II", 1, ACK_WINDOW))
    ]
    display.receive_data(mini(const.SPICE_MSGC_ACK_SYNC, struct.pack("<I", 1)))
    for _ in range(2 * ACK_WINDOW):
        assert display.window_open()
        display.notify("frame")
    assert not display.window_open()
    assert display.receive_data(mini(const.SPICE_MSGC_ACK)) == [AckReceived()]
    assert display.window_open()


def test_ack_of_an_old_generation_does_not_count():
    display = DisplayChannel(linked(const.SPICE_CHANNEL_DISPLAY))
    display.set_ack()
    for _ in range(2 * ACK_WINDOW):
        display.notify("frame")
    display.receive_data(mini(const.SPICE_MSGC_ACK))  # before ACK_SYNC
    assert not display.window_open()


def test_draw_copy_layout():
    caps = (const.SPICE_DISPLAY_CAP_MONITORS_CONFIG,)
    display = DisplayChannel(linked(const.SPICE_CHANNEL_DISPLAY, caps))
    display.surface_create(640, 480)
    display.draw_copy(
        EncodedRegion((10, 20, 30, 60), const.SPICE_IMAGE_TYPE_LZ_RGB, b"\4\0\0\0abcd"))
    display.mark()
    msgs = split_messages(display.data_to_send())
    assert [t for t, _ in msgs] == [
        const.SPICE_MSG_DISPLAY_SURFACE_CREATE,
        const.SPICE_MSG_DISPLAY_MONITORS_CONFIG,
        const.SPICE_MSG_DISPLAY_DRAW_COPY,
        const.SPICE_MSG_DISPLAY_MARK,
    ]
    assert struct.unpack("<5I", msgs[0][1]) == (0, 640, 480, 32, 1)
    assert struct.unpack("<HH7I", msgs[1][1]) == (1, 1, 0, 0, 640, 480, 0, 0, 0)
    body = msgs[2][1]
    surface, top, left, bottom, right, clip = struct.unpack_from("<IiiiiB", body)
    assert (surface, left, top, right, bottom, clip) == (0, 10, 20, 30, 60, 0)
    image_at, st, sl, sb, sr, rop, scale, mflags, _mx, _my, mask = struct.unpack_from(
        "<IiiiiHBBiiI", body, 21
    )
    assert (sl, st, sr, sb) == (0, 0, 20, 40)
    assert rop == const.SPICE_ROPD_OP_PUT and mask == 0 and mflags == 0 and scale in (0, 1)
    _id, kind, flags, w, h = struct.unpack_from("<QBBII", body, image_at)
    assert (kind, flags, w, h) == (const.SPICE_IMAGE_TYPE_LZ_RGB, 0, 20, 40)
    assert body[image_at + 18 :] == b"\4\0\0\0abcd"


def test_draw_fill_layout():
    """As spice-html5's SpiceMsgDisplayDrawFill reads it: base, solid brush, rop, mask."""
    display = DisplayChannel(linked(const.SPICE_CHANNEL_DISPLAY))
    display.surface_create(640, 480)
    display.data_to_send()
    display.draw(EncodedRegion((10, 20, 30, 60), const.SPICE_IMAGE_TYPE_BITMAP, b"", fill=0x123456))
    ((kind, body),) = split_messages(display.data_to_send())
    assert kind == const.SPICE_MSG_DISPLAY_DRAW_FILL
    surface, top, left, bottom, right, clip = struct.unpack_from("<IiiiiB", body)
    assert (surface, left, top, right, bottom, clip) == (0, 10, 20, 30, 60, 0)
    brush, colour, rop, mflags, _mx, _my, mask = struct.unpack_from("<BIHBiiI", body, 21)
    assert (brush, colour, rop) == (const.SPICE_BRUSH_TYPE_SOLID, 0x123456, const.SPICE_ROPD_OP_PUT)
    assert (mflags, mask) == (0, 0) and len(body) == 21 + 7 + 13


def test_display_init_and_unknown_message():
    display = DisplayChannel(linked(const.SPICE_CHANNEL_DISPLAY))
    events = display.receive_data(
        mini(const.SPICE_MSGC_DISPLAY_INIT, struct.pack("<BqBi", 1, 1 << 20, 0, 0))
    )
    assert events[0].pixmap_cache_size == 1 << 20
    events = display.receive_data(mini(999))
    assert isinstance(events[0], ChannelClosed)
    assert display.receive_data(mini(const.SPICE_MSGC_ACK)) == []  # closed: ignored


def test_truncated_message_closes():
    display = DisplayChannel(linked(const.SPICE_CHANNEL_DISPLAY))
    events = display.receive_data(mini(const.SPICE_MSGC_DISPLAY_INIT, b"\1\2"))
    assert isinstance(events[0], ChannelClosed) and "at least 14" in events[0].reason


def test_oversized_message_closes_before_buffering():
    inputs = InputsChannel(linked(const.SPICE_CHANNEL_INPUTS))
    events = inputs.receive_data(struct.pack("<HI", const.SPICE_MSGC_INPUTS_KEY_DOWN, 1 << 30))
    assert isinstance(events[0], ChannelClosed)


def test_inputs_events_and_motion_acks():
    inputs = InputsChannel(linked(const.SPICE_CHANNEL_INPUTS))
    inputs.start(modifiers=2)
    assert split_messages(inputs.data_to_send()) == [(const.SPICE_MSG_INPUTS_INIT, b"\2\0")]
    data = mini(const.SPICE_MSGC_INPUTS_KEY_DOWN, struct.pack("<I", 0x1E))
    data += mini(const.SPICE_MSGC_INPUTS_KEY_UP, struct.pack("<I", 0x9E))
    data += mini(const.SPICE_MSGC_INPUTS_MOUSE_PRESS, struct.pack("<BH", 1, 1))
    data += mini(const.SPICE_MSGC_INPUTS_MOUSE_RELEASE, struct.pack("<BH", 1, 0))
    data += mini(const.SPICE_MSGC_INPUTS_KEY_MODIFIERS, struct.pack("<H", 4))
    for i in range(8):
        data += mini(const.SPICE_MSGC_INPUTS_MOUSE_POSITION, struct.pack("<IIHB", i, 2 * i, 0, 0))
    data += mini(const.SPICE_MSGC_INPUTS_MOUSE_MOTION, struct.pack("<iiH", -3, 4, 2))
    events = [e.event for e in inputs.receive_data(data) if isinstance(e, InputReceived)]
    assert events[:5] == [
        InputEvent("key_down", code=0x1E),
        InputEvent("key_up", code=0x9E),
        InputEvent("mouse_press", code=1, buttons=1),
        InputEvent("mouse_release", code=1, buttons=0),
        InputEvent("modifiers", code=4),
    ]
    assert events[12] == InputEvent("mouse_position", x=7, y=14)
    assert events[13] == InputEvent("mouse_motion", x=-3, y=4, buttons=2)
    acks = split_messages(inputs.data_to_send())
    assert acks == [(const.SPICE_MSG_INPUTS_MOUSE_MOTION_ACK, b"")] * 2  # 9 motions: 2 bunches of 4


def test_scancodes():
    assert scancodes_to_events(bytes([0x1E, 0xE0, 0x48, 0xE0, 0xC8, 0x9E])) == [
        InputEvent("key_down", code=0x1E),
        InputEvent("key_down", code=0x48E0),
        InputEvent("key_up", code=0xC8E0),
        InputEvent("key_up", code=0x9E),
    ]
    inputs = InputsChannel(linked(const.SPICE_CHANNEL_INPUTS))
    events = inputs.receive_data(mini(const.SPICE_MSGC_INPUTS_KEY_SCANCODE, b"\xe0"))
    assert isinstance(events[0], ChannelClosed)


def test_bad_mouse_button_closes():
    inputs = InputsChannel(linked(const.SPICE_CHANNEL_INPUTS))
    events = inputs.receive_data(
        mini(const.SPICE_MSGC_INPUTS_MOUSE_PRESS, struct.pack("<BH", 200, 0))
    )
    assert isinstance(events[0], ChannelClosed)


def test_cursor_init_set_cache_and_moves():
    cursor = CursorChannel(linked(const.SPICE_CHANNEL_CURSOR))
    shape = CursorShape(7, 0, 2, 2, 1, 1, bytes(16))
    cursor.init(CursorState(shape, 10, 20, True))
    cursor.update(CursorUpdate("set", 1, 2, True, shape))
    cursor.update(CursorUpdate("move", 3, 4))
    cursor.update(CursorUpdate("hide"))
    cursor.update(CursorUpdate("trail", trail_length=5, trail_frequency=6))
    msgs = split_messages(cursor.data_to_send())
    assert [t for t, _ in msgs] == [
        const.SPICE_MSG_CURSOR_INIT,
        const.SPICE_MSG_CURSOR_SET,
        const.SPICE_MSG_CURSOR_MOVE,
        const.SPICE_MSG_CURSOR_HIDE,
        const.SPICE_MSG_CURSOR_TRAIL,
    ]
    x, y, _tl, _tf, visible, flags = struct.unpack_from("<hhHHBH", msgs[0][1])
    assert (x, y, visible, flags) == (10, 20, 1, const.SPICE_CURSOR_FLAGS_CACHE_ME)
    assert msgs[0][1].endswith(bytes(16))
    # The second time the shape comes from the client's cache, without its pixels.
    _x, _y, _v, flags = struct.unpack_from("<hhBH", msgs[1][1])
    assert flags == const.SPICE_CURSOR_FLAGS_FROM_CACHE and len(msgs[1][1]) == 5 + 2 + 17
    assert msgs[2][1] == struct.pack("<hh", 3, 4)
    assert msgs[4][1] == struct.pack("<HH", 5, 6)


def test_cursor_cache_evicts_with_inval_one():
    from vgpu.spice.channels import CURSOR_CACHE_ENTRIES

    cursor = CursorChannel(linked(const.SPICE_CHANNEL_CURSOR))
    for unique in range(1, CURSOR_CACHE_ENTRIES + 2):
        cursor.update(CursorUpdate("set", shape=CursorShape(unique, 0, 1, 1, 0, 0, bytes(4))))
    inval = [
        b for t, b in split_messages(cursor.data_to_send()) if t == const.SPICE_MSG_CURSOR_INVAL_ONE
    ]
    assert inval == [struct.pack("<Q", 1)]


def test_preferred_video_codecs_and_stream_reports():
    """Layouts as spice-html5's spicemsg.js writes them (SpiceMsgcDisplayStreamReport)
    and spice-gtk's preferred-video-codec message (u8 count, u8 codec types)."""
    from vgpu.spice.channels import PreferredVideoCodecs, StreamReport

    display = DisplayChannel(linked(const.SPICE_CHANNEL_DISPLAY))
    body = bytes([3, const.SPICE_VIDEO_CODEC_TYPE_VP8, 77, const.SPICE_VIDEO_CODEC_TYPE_H264])
    (event,) = display.receive_data(mini(const.SPICE_MSGC_DISPLAY_PREFERRED_VIDEO_CODEC_TYPE, body))
    assert event == PreferredVideoCodecs(
        (const.SPICE_VIDEO_CODEC_TYPE_VP8, const.SPICE_VIDEO_CODEC_TYPE_H264)
    )  # 77, unknown, left out
    report = struct.pack("<6Ii I", 4, 4, 1000, 1200, 5, 1, -30, 0xFFFFFFFF)
    (event,) = display.receive_data(mini(const.SPICE_MSGC_DISPLAY_STREAM_REPORT, report))
    assert event == StreamReport(4, 4, 1000, 1200, 5, 1, -30)
    (event,) = display.receive_data(
        mini(const.SPICE_MSGC_DISPLAY_PREFERRED_VIDEO_CODEC_TYPE, bytes([5, 1]))
    )
    assert isinstance(event, ChannelClosed)  # a count past the message's end


def test_stream_create_names_its_codec_and_activates_reports():
    display = DisplayChannel(linked(const.SPICE_CHANNEL_DISPLAY))
    display.show_surface(640, 480, False, EncodedRegion((0, 0, 640, 480), 0, b""))
    display.data_to_send()  # a stream is created on a shown surface only
    display.stream_create(7, (10, 20, 110, 220), 1234, const.SPICE_VIDEO_CODEC_TYPE_H264)
    display.stream_activate_report(7, 7, 5, 1000)
    (create_type, create), (report_type, report) = split_messages(display.data_to_send())
    assert create_type == const.SPICE_MSG_DISPLAY_STREAM_CREATE
    surface, stream_id, flags, codec = struct.unpack_from("<IIBB", create)
    assert (surface, stream_id, flags, codec) == (
        0,
        7,
        const.SPICE_STREAM_FLAGS_TOP_DOWN,
        const.SPICE_VIDEO_CODEC_TYPE_H264,
    )
    assert report_type == const.SPICE_MSG_DISPLAY_STREAM_ACTIVATE_REPORT
    assert struct.unpack("<4I", report) == (7, 7, 5, 1000)
