"""Errors of the stream catalogue, all rooted at :class:`streamit.errors.StreamitError`."""

from __future__ import annotations

from streamit.errors import NotFound, StreamitError

__all__ = ["DatabaseUnavailable", "InvalidSlug", "InvalidTransition", "NotFound", "SlugTaken"]


class InvalidSlug(StreamitError, ValueError):
    """A slug does not match ``[a-z0-9-]{1,64}`` (no leading/trailing hyphen) or is a reserved word."""


class SlugTaken(StreamitError):
    """Another stream already uses the requested slug."""


class InvalidTransition(StreamitError):
    """The stream's status does not allow the requested change (e.g. ``DRAFT`` → ``ENDED``)."""


class DatabaseUnavailable(StreamitError):
    """The database cannot be reached or refused the connection."""
