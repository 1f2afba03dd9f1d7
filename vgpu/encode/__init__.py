"""The Python face of the C encoders and the per-region choice of codec."""
