"""User-facing errors of the validate commands."""

from __future__ import annotations


class ValidateError(ValueError):
    """Bad input or a missing OpenCL device; the message says what is wrong and how to fix it."""
