"""Parametric 3D-printable housings for the device kinds."""
