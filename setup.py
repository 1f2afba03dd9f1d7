"""Builds the cffi extensions; everything else lives in pyproject.toml."""

from setuptools import setup

setup(
    cffi_modules=[
        "csrc/build_qxl.py:ffi",
        "csrc/build_encode.py:ffi",
        "csrc/build_gl3d.py:ffi",
    ],
)
