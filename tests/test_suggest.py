"""Issue 25, better suggestions: one "did you mean" for every message (auditor/common/suggest.py), and
the hint for an account id a spreadsheet has mangled."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.common.suggest import account_id_hint, closest, name_key, same_name
from conftest import examples

LABS = [f"pair-{number:02d}" for number in range(1, 21)]
REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-west-2", "eu-central-1"]


@pytest.mark.parametrize(
    ("typed", "known", "meant"),
    [
        ("pair-7", LABS, "pair-07"),  # issue 25: it suggested pair-17
        ("pair7", LABS, "pair-07"),
        ("PAIR-007", LABS, "pair-07"),
        ("EU-WEST-1", REGIONS, "eu-west-1"),  # issue 25: no suggestion at all
        ("us-eats-1", REGIONS, "us-east-1"),
        ("piar-07", LABS, "pair-07"),  # a typo in the words: the lab with the same number first
        ("intervall", ["interval", "jitter", "reconcile_interval"], "interval"),
        ("Student Name", ["name", "student_name", "student_email"], "student_name"),
    ],
)
def test_the_name_meant_is_suggested(typed: str, known: list[str], meant: str) -> None:
    assert closest(typed, known) == meant


@pytest.mark.parametrize(
    ("typed", "known"),
    [
        ("pair-7", ["pair-01", "pair-06", "pair-17", "pair-70"]),  # another number is another lab
        ("us-east-3", REGIONS),
        ("eu-west-9", REGIONS),
        ("completely-else", LABS),
        ("anything", []),
    ],
)
def test_nothing_is_suggested_rather_than_something_wrong(typed: str, known: list[str]) -> None:
    assert closest(typed, known) is None


def test_of_equally_near_names_the_first_in_order_is_suggested_whatever_the_order_given() -> None:
    assert closest("pear", ["peer", "pea"]) == closest("pear", ["pea", "peer"])


def test_a_name_is_the_same_in_any_case_with_any_separators_a_bom_and_any_zero_padding() -> None:
    assert same_name("\ufeff Origin Account ID ", "origin_account_id")
    assert same_name("Student E-mail", "student_email")
    assert same_name("pair-7", "pair-07")
    assert not same_name("pair-1-2", "pair-12")
    assert not same_name("", "")  # an empty header is no column
    assert name_key("EU-WEST-1") == ("euwest", 1)


names = st.builds(
    "{}{}{}".format,
    st.sampled_from(["pair", "pair-", "Pair_", "team-", "us-east-", "eu-west-", "lab"]),
    st.sampled_from(["", "0", "00"]),
    st.integers(min_value=0, max_value=120),
)


@settings(max_examples=examples(200), deadline=None)
@given(typed=names, known=st.lists(names, max_size=12))
def test_a_suggestion_is_never_the_same_words_with_other_numbers(typed: str, known: list[str]) -> None:
    """The bug of issue 25 as a property: what is suggested for pair-7 is never pair-17."""
    suggestion = closest(typed, known)
    if suggestion is not None:
        words = [part for part in name_key(suggestion) if isinstance(part, str)]
        same_words = words == [part for part in name_key(typed) if isinstance(part, str)]
        assert not same_words or same_name(typed, suggestion)
        assert suggestion in known


@settings(max_examples=examples(200), deadline=None)
@given(known=st.lists(names, min_size=1, max_size=12), pick=st.integers(min_value=0))
def test_a_known_name_typed_in_capitals_is_found(known: list[str], pick: int) -> None:
    meant = known[pick % len(known)]
    assert same_name(meant.upper(), closest(meant.upper(), known) or "")


@pytest.mark.parametrize(
    ("given_value", "hint"),
    [
        ("12345678901", "it has 11 digits: did a spreadsheet drop a leading zero? '012345678901'"),
        ("1234567890", "it has 10 digits: did a spreadsheet drop its leading zeros? '001234567890'"),
        ("1234-5678-9012", "write it without the separators: '123456789012'"),
        ("123456789012.0", "a spreadsheet wrote it as a number: '123456789012'"),
        ("12345678901.0", "it has 11 digits: did a spreadsheet drop a leading zero? '012345678901'"),
        ("1.23457E+11", "a spreadsheet wrote it as a number, and its last digits are lost"),
        (123456789012, 'write it in quotes, as a string: "123456789012"'),
        (12345678901, 'write it in quotes, as a string: "012345678901"'),
    ],
)
def test_a_mangled_account_id_gets_a_hint(given_value: object, hint: str) -> None:
    assert (account_id_hint(given_value) or "").startswith(hint)


@pytest.mark.parametrize("given_value", ["44444", "abc", "1234567890123", True, None, 5])
def test_a_value_nothing_explains_gets_no_hint(given_value: object) -> None:
    assert account_id_hint(given_value) is None
