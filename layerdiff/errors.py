"""The exception hierarchy: every failure the library raises on bad input.

Each error knows the file it was reading (``source``) and, when known, the
layer (index, count and digest) and the tar entry. ``str()`` reads from the
file to the cause, on one line; ``hint`` is an optional second line telling
the user what to do.
"""

from __future__ import annotations

from .text import shown

__all__ = [
    "LayerdiffError",
    "ArchiveFormatError",
    "DigestMismatchError",
    "LayerFormatError",
    "UnsafePathError",
    "UnsupportedOverlayError",
    "ImageSelectionError",
    "SizeLimitError",
    "OutputError",
    "UsageError",
]


def short_digest(digest: str | None) -> str:
    """Return ``sha256:`` and the first 12 hex digits, for messages."""
    if not digest:
        return "?"
    alg, _, hexpart = digest.partition(":")
    return f"{alg}:{hexpart[:12]}" if hexpart else digest[:19]


class LayerdiffError(Exception):
    """Root of every error raised on bad input or an impossible request."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        layer: int | None = None,
        layer_count: int | None = None,
        layer_digest: str | None = None,
        entry: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.layer = layer
        self.layer_count = layer_count
        self.layer_digest = layer_digest
        self.entry = entry
        self.hint = hint

    def __reduce__(self):
        # Worker processes send errors back pickled; keep every field.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def located(self, **where: object) -> LayerdiffError:
        """Fill in location fields that are still unknown and return self."""
        for key, value in where.items():
            if getattr(self, key, None) is None and value is not None:
                setattr(self, key, value)
        return self

    def __str__(self) -> str:
        parts = []
        if self.source:
            parts.append(self.source)
        if self.layer is not None:
            where = f"layer {self.layer + 1}"
            if self.layer_count:
                where += f" of {self.layer_count}"
            if self.layer_digest:
                where += f" ({short_digest(self.layer_digest)})"
            parts.append(where)
        if self.entry is not None:
            parts.append(f"entry '{shown(self.entry)}'")
        parts.append(self.message)
        return ": ".join(parts)


def _rebuild(cls: type, message: str, state: dict) -> LayerdiffError:
    error = cls(message)
    error.__dict__.update(state)
    return error


class ArchiveFormatError(LayerdiffError):
    """The image archive or layout is not one we can read."""


class DigestMismatchError(LayerdiffError):
    """A blob's digest or a layer's diff_id differs from what was declared."""


class LayerFormatError(LayerdiffError):
    """A layer is not a readable tar stream (truncated, corrupt, bad header)."""


class UnsafePathError(LayerdiffError):
    """An entry name escapes the root or cannot be represented."""


class UnsupportedOverlayError(LayerdiffError):
    """An upper dir uses an overlay feature we refuse to guess about."""


class ImageSelectionError(LayerdiffError):
    """The archive holds several images or platforms and none was chosen."""


class SizeLimitError(LayerdiffError):
    """A layer decompresses to more than the allowed size."""


class OutputError(LayerdiffError):
    """An output cannot be written where it was asked to go."""


class UsageError(LayerdiffError):
    """Options that contradict each other or name something absent."""
