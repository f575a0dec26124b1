"""Slug validation and generation."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamit.db.slugs import (
    MAX_SLUG_LENGTH,
    RESERVED_SLUGS,
    is_valid_slug,
    slugify,
    validate_slug,
    with_suffix,
)
from streamit.errors import InvalidSlug, StreamitError

WELL_FORMED = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


@pytest.mark.parametrize("slug", ["a", "0", "my-show", "a1-b2-c3", "x" * 64, "ab", "a--b"])
def test_valid_slugs(slug: str) -> None:
    assert validate_slug(slug) == slug
    assert is_valid_slug(slug)


@pytest.mark.parametrize(
    "slug",
    ["", "-", "-a", "a-", "A", "a_b", "a b", "a.b", "a/b", "é", "x" * 65, "abc\n", "\nabc", "a\x00"],
)
def test_malformed_slugs(slug: str) -> None:
    with pytest.raises(InvalidSlug, match="invalid slug"):
        validate_slug(slug)
    assert not is_valid_slug(slug)


@pytest.mark.parametrize("slug", sorted(RESERVED_SLUGS))
def test_reserved_slugs(slug: str) -> None:
    assert WELL_FORMED.fullmatch(slug)
    with pytest.raises(InvalidSlug, match="reserved"):
        validate_slug(slug)


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("My First Show", "my-first-show"),
        ("  Hello,   World!! ", "hello-world"),
        ("Café Olé", "cafe-ole"),
        ("Straße 42", "strae-42"),
        ("日本語", "stream"),
        ("---", "stream"),
        ("", "stream"),
        ("UPPER_case.mixed", "upper-case-mixed"),
    ],
)
def test_slugify_examples(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_slugify_truncates_leaving_room_for_suffix() -> None:
    slug = slugify("word " * 50)
    assert len(slug) <= MAX_SLUG_LENGTH - 7
    assert not slug.endswith("-")
    assert len(with_suffix(slug)) <= MAX_SLUG_LENGTH


def test_with_suffix_is_random_and_well_formed() -> None:
    made = {with_suffix("show") for _ in range(50)}
    assert len(made) == 50
    assert all(re.fullmatch(r"show-[a-z0-9]{6}", s) for s in made)
    assert re.fullmatch(r"stream-[a-z0-9]{6}", with_suffix("-"))


@given(st.text())
def test_slugify_always_yields_a_well_formed_slug(title: str) -> None:
    slug = slugify(title)
    assert WELL_FORMED.fullmatch(slug)
    assert len(slug) <= MAX_SLUG_LENGTH
    assert is_valid_slug(with_suffix(slug))


@given(st.text())
def test_validate_slug_accepts_or_raises_invalid_slug(text: str) -> None:
    try:
        result = validate_slug(text)
    except InvalidSlug as exc:
        assert isinstance(exc, StreamitError)
        assert not is_valid_slug(text)
    else:
        assert result == text
        assert WELL_FORMED.fullmatch(text) and text not in RESERVED_SLUGS
