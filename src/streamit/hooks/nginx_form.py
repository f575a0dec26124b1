"""The ``application/x-www-form-urlencoded`` bodies nginx-rtmp's notify module sends and expects.

nginx-rtmp 1.2.2 builds its callback bodies itself: fields in a fixed order, values escaped like nginx's
``ngx_escape_uri(…, NGX_ESCAPE_ARGS)`` (space, ``#``, ``%``, ``&``, ``+``, ``;``, ``?``, control and non-ASCII
bytes become ``%XX``; ``/``, ``:``, ``(``, ``)`` stay as they are), and the publisher's own query arguments
appended at the end.  :func:`encode_form` reproduces those bytes exactly; :func:`parse_form` reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, quote

from streamit.errors import RemoteProtocolError

# Printable ASCII that NGX_ESCAPE_ARGS leaves alone (quote() always keeps letters, digits and "_.-~").
_NGINX_ARGS_SAFE = "!\"$'()*,/:<=>@[\\]^`{|}"
MAX_FORM_BYTES = 8192
MAX_FORM_FIELDS = 64


def escape_value(value: str) -> str:
    """``value`` escaped the way nginx escapes query arguments (UTF-8 bytes for non-ASCII)."""
    return quote(value, safe=_NGINX_ARGS_SAFE)


def encode_form(fields: Iterable[tuple[str, str]], extra_args: str = "") -> bytes:
    """The form body of ``fields`` in order, then the publisher's ``extra_args``.

    ``extra_args`` is a raw query string (``a=1&b=2``).  Unlike nginx-rtmp, arguments whose name repeats one
    of ``fields`` are left out, so a publisher cannot smuggle a second ``name`` or ``call`` to receivers that
    keep the last value of a repeated field.
    """
    pairs = list(fields)
    parts = [f"{key}={escape_value(value)}" for key, value in pairs]
    if extra_args:
        taken = {key for key, _ in pairs}
        for piece in extra_args.split("&"):
            key = piece.split("=", 1)[0]
            if piece and key and key not in taken:
                parts.append(piece)
    return "&".join(parts).encode("ascii")


def parse_form(raw: bytes) -> dict[str, str]:
    """The fields of a form body or query string; for a repeated name the FIRST value wins.

    nginx-rtmp writes its own fields before the publisher's query arguments, so keeping the first value
    ignores a ``name`` or ``call`` the publisher appended.  Raises :class:`RemoteProtocolError` for a body
    over ``MAX_FORM_BYTES``, with more than ``MAX_FORM_FIELDS`` fields, non-ASCII bytes or escapes that do
    not decode as UTF-8.
    """
    if len(raw) > MAX_FORM_BYTES:
        raise RemoteProtocolError(f"form of {len(raw)} bytes exceeds {MAX_FORM_BYTES}")
    try:
        text = raw.decode("ascii")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            encoding="utf-8",
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise RemoteProtocolError(f"malformed form: {exc.__class__.__name__}") from exc
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields
