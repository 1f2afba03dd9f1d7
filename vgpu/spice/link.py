"""The link handshake of one SPICE connection, as a sans-IO state machine.

Client: link header + link message (channel type/id, session id, capabilities).
Server: link header + link reply (error code, a fresh RSA-1024 public key,
capabilities). Client: the auth mechanism (when both sides have
AUTH_SELECTION) and the password encrypted with RSA-OAEP/SHA-1. Server: a u32
link result. After that the connection speaks channel messages (see
channels.py), framed by the mini header when both sides have MINI_HEADER.
"""

from __future__ import annotations

import enum
import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from vgpu.spice import constants as const
from vgpu.spice.wire import MalformedMessage, Reader, caps_words, has_cap

LINK_HEADER = struct.Struct("<4sIII")
# connection_id u32, type u8, id u8, num_common u32, num_channel u32, caps offset u32
LINK_MESS_SIZE = 18
LINK_REPLY_FIXED = 4 + const.SPICE_TICKET_PUBKEY_BYTES + 12
TICKET_BYTES = const.SPICE_TICKET_KEY_PAIR_LENGTH // 8

MAX_LINK_MESS_SIZE = 4096
"""A link message is 18 bytes plus capability words; real clients send under 64 bytes.
4 KiB leaves room for hundreds of future capability words and no more."""

MAX_CAPS_WORDS = 64
"""2048 capability bits per set, far past the ~20 defined, so a hostile count is refused early."""

SERVER_COMMON_CAPS = (
    const.SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION,
    const.SPICE_COMMON_CAP_AUTH_SPICE,
    const.SPICE_COMMON_CAP_MINI_HEADER,
)
"""No SASL: it is not implemented, so it is not advertised."""

SERVER_CHANNEL_CAPS: dict[int, tuple[int, ...]] = {
    const.SPICE_CHANNEL_MAIN: (const.SPICE_MAIN_CAP_NAME_AND_UUID,),
    const.SPICE_CHANNEL_DISPLAY: (
        const.SPICE_DISPLAY_CAP_MONITORS_CONFIG,
        const.SPICE_DISPLAY_CAP_PREF_COMPRESSION,
    ),
    const.SPICE_CHANNEL_INPUTS: (const.SPICE_INPUTS_CAP_KEY_SCANCODE,),
    const.SPICE_CHANNEL_CURSOR: (),
}


class LinkState(enum.Enum):
    HEADER = "header"
    MESSAGE = "message"
    AUTH_MECHANISM = "auth_mechanism"
    TICKET = "ticket"
    AUTHENTICATED = "authenticated"  # waiting for the caller's finish()
    DONE = "done"
    CLOSED = "closed"


@dataclass(frozen=True)
class Linked:
    """The client proved it knows the password; the caller decides the link result."""

    channel_type: int
    channel_id: int
    connection_id: int
    common_caps: tuple[int, ...]
    channel_caps: tuple[int, ...]

    @property
    def mini_header(self) -> bool:
        return has_cap(self.common_caps, const.SPICE_COMMON_CAP_MINI_HEADER)


@dataclass(frozen=True)
class LinkClosed:
    """The handshake failed; whatever data_to_send() holds should still be sent, then close."""

    reason: str


LinkEvent = Linked | LinkClosed


def new_ticket_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(
        public_exponent=65537, key_size=const.SPICE_TICKET_KEY_PAIR_LENGTH
    )


class LinkMachine:
    """Server side of one connection's link handshake.

    `password` None means ticketing is disabled (any ticket is accepted, as
    spice-server does with disable-ticketing). `private_key` is fresh per
    connection unless a caller (a test, a fuzzer) passes one to save time.
    """

    def __init__(self, password: str | None, private_key: rsa.RSAPrivateKey | None = None) -> None:
        self._password = password
        self._key = private_key or new_ticket_key()
        self._buffer = bytearray()
        self._out = bytearray()
        self.state = LinkState.HEADER
        self._need = LINK_HEADER.size
        self._message_size = 0
        self._linked: Linked | None = None

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def leftover(self) -> bytes:
        """Bytes received after the handshake, which belong to the channel."""
        out = bytes(self._buffer)
        self._buffer.clear()
        return out

    def receive_data(self, data: bytes) -> list[LinkEvent]:
        self._buffer += data
        if self.state in (LinkState.CLOSED, LinkState.DONE, LinkState.AUTHENTICATED):
            if len(self._buffer) > MAX_LINK_MESS_SIZE:
                return [self._close("client sent too much before the link result")]
            return []
        events: list[LinkEvent] = []
        while self.state not in (LinkState.CLOSED, LinkState.AUTHENTICATED) and (
            len(self._buffer) >= self._need
        ):
            chunk = bytes(self._buffer[: self._need])
            del self._buffer[: self._need]
            try:
                event = self._step(chunk)
            except MalformedMessage as exc:
                self._reply_error(const.SPICE_LINK_ERR_INVALID_DATA)
                event = self._close(f"malformed link message: {exc}")
            if event is not None:
                events.append(event)
        return events

    def finish(self, error: int) -> None:
        """Sends the link result; OK moves to DONE, anything else closes."""
        if self.state is not LinkState.AUTHENTICATED:
            raise RuntimeError(f"finish() in state {self.state}")
        self._out += struct.pack("<I", error)
        if error == const.SPICE_LINK_ERR_OK:
            self.state = LinkState.DONE
        else:
            self.state = LinkState.CLOSED

    def _close(self, reason: str) -> LinkClosed:
        self.state = LinkState.CLOSED
        return LinkClosed(reason)

    def _reply_error(self, error: int) -> None:
        self._link_reply(error, bytes(const.SPICE_TICKET_PUBKEY_BYTES), [], [])

    def _link_reply(self, error: int, pub: bytes, common: list[int], channel: list[int]) -> None:
        """Link header and reply: error, public key, then the capability words."""
        body = struct.pack("<I", error) + pub
        body += struct.pack("<III", len(common), len(channel), LINK_REPLY_FIXED)
        body += struct.pack(f"<{len(common) + len(channel)}I", *common, *channel)
        self._out += LINK_HEADER.pack(
            const.SPICE_MAGIC, const.SPICE_VERSION_MAJOR, const.SPICE_VERSION_MINOR, len(body)
        )
        self._out += body

    def _step(self, chunk: bytes) -> LinkEvent | None:
        if self.state is LinkState.HEADER:
            magic, major, minor, size = LINK_HEADER.unpack(chunk)
            if magic != const.SPICE_MAGIC:
                self._reply_error(const.SPICE_LINK_ERR_INVALID_MAGIC)
                return self._close(f"bad magic {magic!r}")
            if major != const.SPICE_VERSION_MAJOR:
                self._reply_error(const.SPICE_LINK_ERR_VERSION_MISMATCH)
                return self._close(f"protocol version {major}.{minor} unsupported")
            if not LINK_MESS_SIZE <= size <= MAX_LINK_MESS_SIZE:
                self._reply_error(const.SPICE_LINK_ERR_INVALID_DATA)
                return self._close(f"link message size {size} out of range")
            self.state = LinkState.MESSAGE
            self._need = size
            return None
        if self.state is LinkState.MESSAGE:
            return self._on_link_message(chunk)
        if self.state is LinkState.AUTH_MECHANISM:
            (mechanism,) = struct.unpack("<I", chunk)
            if mechanism != const.SPICE_COMMON_CAP_AUTH_SPICE:
                self._out += struct.pack("<I", const.SPICE_LINK_ERR_INVALID_DATA)
                return self._close(f"auth mechanism {mechanism} not offered")
            self.state = LinkState.TICKET
            self._need = TICKET_BYTES
            return None
        if self.state is LinkState.TICKET:
            return self._on_ticket(chunk)
        raise AssertionError(self.state)

    def _on_link_message(self, body: bytes) -> LinkEvent | None:
        r = Reader(body)
        connection_id = r.u32()
        channel_type = r.u8()
        channel_id = r.u8()
        num_common = r.u32()
        num_channel = r.u32()
        offset = r.u32()
        if num_common > MAX_CAPS_WORDS or num_channel > MAX_CAPS_WORDS:
            raise MalformedMessage(f"{num_common}+{num_channel} capability words")
        if offset < LINK_MESS_SIZE or offset + 4 * (num_common + num_channel) > len(body):
            raise MalformedMessage(f"capabilities at {offset} lie outside the message")
        words = struct.unpack_from(f"<{num_common + num_channel}I", body, offset)
        common, channel = tuple(words[:num_common]), tuple(words[num_common:])
        self._linked = Linked(channel_type, channel_id, connection_id, common, channel)
        self._send_reply(channel_type)
        if has_cap(common, const.SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION):
            self.state = LinkState.AUTH_MECHANISM
            self._need = 4
        else:
            self.state = LinkState.TICKET
            self._need = TICKET_BYTES
        return None

    def _send_reply(self, channel_type: int) -> None:
        pub = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if len(pub) != const.SPICE_TICKET_PUBKEY_BYTES:
            raise AssertionError(f"RSA-1024 SubjectPublicKeyInfo is {len(pub)} bytes")
        common = caps_words(SERVER_COMMON_CAPS)
        channel = caps_words(SERVER_CHANNEL_CAPS.get(channel_type, ()))
        self._link_reply(const.SPICE_LINK_ERR_OK, pub, common, channel)

    def _on_ticket(self, encrypted: bytes) -> LinkEvent:
        if self._password is not None and not self._ticket_matches(encrypted):
            self._out += struct.pack("<I", const.SPICE_LINK_ERR_PERMISSION_DENIED)
            return self._close("wrong password")
        self.state = LinkState.AUTHENTICATED
        assert self._linked is not None
        return self._linked

    def _ticket_matches(self, encrypted: bytes) -> bool:
        assert self._password is not None
        try:
            plain = self._key.decrypt(
                encrypted,
                padding.OAEP(
                    mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
                ),
            )
        except ValueError:
            return False
        # Clients send the password NUL-terminated.
        sent = plain.split(b"\0", 1)[0]
        return hmac.compare_digest(sent, self._password.encode())
