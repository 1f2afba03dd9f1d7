"""`vgpu serve` option handling (the end-to-end runs live in tests/machine)."""

from __future__ import annotations

import argparse
import ssl

import pytest
from spice_testkit import make_x509_dir

from vgpu import serve


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_follow_qemu_names():
    args = parse("--demo", "desktop")
    assert (args.addr, serve.plain_port(args), args.tls_port) == ("127.0.0.1", 5930, None)
    assert args.image_compression == "auto_glz" and args.jpeg_wan_compression == "auto"
    assert args.streaming_video == "filter"


def test_tls_port_alone_opens_no_plain_port_as_qemu_does():
    assert serve.plain_port(parse("--tls-port", "5931")) is None
    assert serve.plain_port(parse("--tls-port", "5931", "--port", "5900")) == 5900
    assert serve.plain_port(parse("--port", "5900")) == 5900


def test_password_and_disable_ticketing_exclude_each_other():
    with pytest.raises(SystemExit):
        parse("--password", "x", "--disable-ticketing")


def test_unknown_compression_is_refused():
    with pytest.raises(SystemExit):
        parse("--image-compression", "zstd")


def test_password_file_first_line(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\nignored\n")
    assert serve._password(parse("--password-file", str(secret))) == "hunter2"
    assert serve._password(parse()) is None


def test_missing_guest_or_x509_dir_is_an_error(capsys):
    assert serve.run(parse()) == 2
    assert serve.run(parse("--demo", "desktop", "--tls-port", "5931")) == 2
    assert "x509" in capsys.readouterr().err


def test_password_longer_than_spice_allows_is_refused(capsys):
    assert serve.run(parse("--demo", "desktop", "--password", "x" * 61)) == 2
    assert "longer than 60" in capsys.readouterr().err


def test_tls_context_needs_qemus_three_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        serve.tls_context(tmp_path)
    assert isinstance(serve.tls_context(make_x509_dir(tmp_path)), ssl.SSLContext)
