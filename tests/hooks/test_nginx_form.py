"""nginx-rtmp form bodies: our encoder reproduces nginx's bytes; the parser reads real captures."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import RemoteProtocolError
from streamit.hooks import PublishCall, encode_form, parse_form, publish_done_form, publish_form, update_form
from streamit.hooks.nginx_form import MAX_FORM_BYTES, MAX_FORM_FIELDS, escape_value
from tests.hooks.conftest import nginx_capture

KEY = "sk_Zm9vYmFyYmF6cXV4cXV1eHh5ejEyMzQ1"
CAPTURED_CALL = PublishCall(
    app="live",
    name=KEY,
    addr="127.0.0.1",
    tcurl="rtmp://127.0.0.1:11935/live",
    flashver="FMLE/3.0 (compatible; Lavf59.27",
    clientid="1",
    args="token=a%20b",
)
CAPTURES = [
    "on_publish_post",
    "on_publish_get",
    "on_update_post",
    "on_update_get",
    "on_publish_done_post",
    "on_publish_done_get",
    "on_update_play_post",
]
CONNECT_FIELDS = ["app", "flashver", "swfurl", "tcurl", "pageurl", "addr", "clientid"]


def test_publish_form_is_byte_identical_to_nginx_rtmp() -> None:
    assert publish_form(CAPTURED_CALL) == nginx_capture("on_publish_post")


def test_update_form_is_byte_identical_to_nginx_rtmp() -> None:
    body = update_form(CAPTURED_CALL, time_s=2, timestamp_ms=734)
    assert body == nginx_capture("on_update_post")


def test_publish_done_form_is_byte_identical_to_nginx_rtmp() -> None:
    assert publish_done_form(CAPTURED_CALL) == nginx_capture("on_publish_done_post")


def test_get_and_post_carry_the_same_form() -> None:
    for call in ("on_publish", "on_update", "on_publish_done"):
        assert nginx_capture(f"{call}_get") == nginx_capture(f"{call}_post")


@pytest.mark.parametrize("capture", CAPTURES)
def test_parse_real_capture_whole(capture: str) -> None:
    fields = parse_form(nginx_capture(capture))
    assert list(fields)[: len(CONNECT_FIELDS)] == CONNECT_FIELDS
    assert fields["call"] in {"publish", "update_publish", "publish_done", "update_play"}
    assert fields["name"] in {KEY, "renamed-slug"}


def test_parse_publish_values() -> None:
    fields = parse_form(nginx_capture("on_publish_post"))
    assert fields == {
        "app": "live",
        "flashver": "FMLE/3.0 (compatible; Lavf59.27",
        "swfurl": "",
        "tcurl": "rtmp://127.0.0.1:11935/live",
        "pageurl": "",
        "addr": "127.0.0.1",
        "clientid": "1",
        "call": "publish",
        "name": KEY,
        "type": "live",
        "token": "a b",
    }


@pytest.mark.parametrize("capture", CAPTURES)
def test_parse_every_prefix(capture: str) -> None:
    raw = nginx_capture(capture)
    whole = parse_form(raw)
    for end in range(len(raw) + 1):
        fields = parse_form(raw[:end])
        # A truncated body is still a form: its fields are a prefix of the whole one's, the last one cut.
        assert list(fields)[:-1] == list(whole)[: max(len(fields) - 1, 0)]


@pytest.mark.parametrize("capture", CAPTURES)
def test_parse_with_trailing_bytes(capture: str) -> None:
    raw = nginx_capture(capture)
    fields = parse_form(raw + b"&name=someone-else&call=publish&extra=1")
    assert fields == {**parse_form(raw), "extra": "1"}


def test_publisher_args_cannot_replace_fields() -> None:
    call = PublishCall("live", KEY, "10.0.0.1", "rtmp://h/live", "x", "7", args="name=evil&call=done&ok=1")
    fields = parse_form(publish_form(call))
    assert fields["name"] == KEY and fields["call"] == "publish" and fields["ok"] == "1"
    assert publish_form(call).count(b"name=") == 1


def test_escape_matches_nginx_args_table() -> None:
    assert escape_value(" #%&+;?") == "%20%23%25%26%2B%3B%3F"
    assert escape_value("!\"$'()*,-./:<=>@[\\]^_`{|}~") == "!\"$'()*,-./:<=>@[\\]^_`{|}~"
    assert escape_value("\x00\x1f\x7fé") == "%00%1F%7F%C3%A9"


def test_oversized_or_binary_forms_are_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_form(b"a=" + b"x" * MAX_FORM_BYTES)
    with pytest.raises(RemoteProtocolError):
        parse_form(b"&".join(b"f%d=1" % i for i in range(MAX_FORM_FIELDS + 1)))
    with pytest.raises(RemoteProtocolError):
        parse_form(b"name=\xff")
    with pytest.raises(RemoteProtocolError):
        parse_form(b"name=%ff")


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_parse_or_raise_remote_protocol_error(raw: bytes) -> None:
    try:
        fields = parse_form(raw)
    except RemoteProtocolError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


field_names = st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=8)


# Lone surrogates (category Cs) have no UTF-8 form, so no RTMP peer can send them.
field_values = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


@settings(deadline=None)
@given(st.lists(st.tuples(field_names, field_values), max_size=12, unique_by=lambda kv: kv[0]))
def test_fuzz_encode_then_parse_round_trips(pairs: list[tuple[str, str]]) -> None:
    body = encode_form(pairs)
    assert body.isascii()
    assert parse_form(body) == dict(pairs)
