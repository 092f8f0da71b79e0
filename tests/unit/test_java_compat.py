"""The Java/Gson/Jackson behaviours of :mod:`lernflow.kernel.java` against known Java outputs and
independent reference models (property tests)."""

from __future__ import annotations

import json
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lernflow.kernel import java
from lernflow.kernel.java import (
    gson_json,
    gson_roundtrip_json,
    gson_string,
    jackson_string,
    java_double_to_string,
    java_equals_ignore_case,
    java_hashmap_order,
    java_length,
    java_string_hash,
    java_trim,
)

TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("<>&='\"\\\u2028\x00\x7f"))


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-be", "surrogatepass")
    return [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


# --------------------------------------------------------------------------- String.trim


@pytest.mark.parametrize(
    ("text", "trimmed"),
    [
        ("  a b  ", "a b"),
        ("\x00\x1f a\t\n", "a"),
        ("\u00a0a\u2003", "\u00a0a\u2003"),  # Unicode spaces are not trimmed
        ("", ""),
        (" \x01 ", ""),
    ],
)
def test_java_trim_strips_everything_up_to_u0020(text, trimmed):
    assert java_trim(text) == trimmed


@given(TEXT)
def test_java_trim_matches_the_char_loop_of_string_trim(text):
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    assert java_trim(text) == text[start:end]


# --------------------------------------------------------------------------- equalsIgnoreCase


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        ("Course Completion", "course COMPLETION", True),
        ("abc", "abd", False),
        ("straße", "STRASSE", False),  # lengths differ: no case folding
        ("ǅ", "ǆ", True),  # title case matches through upper/lower case
        ("", "", True),
    ],
)
def test_java_equals_ignore_case(left, right, equal):
    assert java_equals_ignore_case(left, right) is equal


@given(TEXT, TEXT)
def test_java_equals_ignore_case_is_symmetric_and_reflexive(left, right):
    assert java_equals_ignore_case(left, left)
    assert java_equals_ignore_case(left, right) == java_equals_ignore_case(right, left)
    if java_equals_ignore_case(left, right):
        assert len(left) == len(right)


@given(st.text(alphabet="abcXYZ019 -"))
def test_java_equals_ignore_case_on_ascii_is_lower_equality(text):
    assert java_equals_ignore_case(text, text.swapcase())


# --------------------------------------------------------------------------- String.length


def test_java_length_counts_utf16_code_units():
    assert java_length("") == 0
    assert java_length("abc") == 3
    assert java_length("\U0001f600a") == 3


@given(TEXT)
def test_java_length_is_the_utf16_unit_count(text):
    assert java_length(text) == len(_utf16_units(text))


# --------------------------------------------------------------------------- String.hashCode


def test_java_string_hash_matches_known_java_values():
    assert java_string_hash("type") == 3575610
    assert java_string_hash("id") == 3355
    assert java_string_hash("name") == 3373707
    assert java_string_hash("subType") == -1868521062
    assert java_string_hash("") == 0
    assert java_string_hash("\U0001f600") == 0xD83D * 31 + 0xDE00  # UTF-16 code units
    assert java_string_hash("Aa") == java_string_hash("BB") == 2112


@given(TEXT)
def test_java_string_hash_is_the_signed_32_bit_polynomial_fold(text):
    units = _utf16_units(text)
    n = len(units)
    reference = _int32(sum(u * 31 ** (n - 1 - i) for i, u in enumerate(units)))
    assert java_string_hash(text) == reference
    assert -(2**31) <= java_string_hash(text) < 2**31


# --------------------------------------------------------------------------- HashMap order


def test_java_hashmap_keeps_insertion_order_within_a_bucket():
    # "Aa" and "BB" have the same String.hashCode (2112)
    assert list(java_hashmap_order({"BB": 1, "Aa": 2})) == ["BB", "Aa"]
    assert list(java_hashmap_order({"Aa": 2, "BB": 1})) == ["Aa", "BB"]


def test_java_hashmap_table_grows_past_twelve_entries():
    twelve = {c: 0 for c in "abcdefghijkp"}  # 16 buckets: "p" (112) lands in bucket 0
    assert list(java_hashmap_order(twelve)) == list("pabcdefghijk")
    thirteen = {c: 0 for c in "abcdefghijklp"}  # 32 buckets: "p" lands in bucket 16
    assert list(java_hashmap_order(thirteen)) == list("abcdefghijklp")


def test_java_hashmap_order_of_sunbird_profile_user_type_keys():
    # String.hashCode buckets (of 16): code 3, name 8, subType 10, id 11, type 12
    element = {"type": "t", "subType": "s", "name": "n", "id": "i", "code": "c"}
    assert list(java_hashmap_order(element)) == ["code", "name", "subType", "id", "type"]


def _java_hashmap_model(keys: list[str]) -> list[str]:
    """A bucket-array model of HashMap.put/resize (JDK 8+: split lists keep relative order)."""
    table: list[list[str]] = [[] for _ in range(16)]
    size = 0
    for key in keys:
        h = java_string_hash(key) & 0xFFFFFFFF
        spread = h ^ (h >> 16)
        bucket = table[spread & (len(table) - 1)]
        if key in bucket:
            continue
        bucket.append(key)
        size += 1
        if size > len(table) * 3 // 4:
            grown: list[list[str]] = [[] for _ in range(2 * len(table))]
            for chain in table:
                for k in chain:
                    hk = java_string_hash(k) & 0xFFFFFFFF
                    grown[(hk ^ (hk >> 16)) & (len(grown) - 1)].append(k)
            table = grown
    return [k for chain in table for k in chain]


@given(st.lists(st.text(max_size=6), unique=True, max_size=60))
def test_java_hashmap_order_matches_a_put_and_resize_model(keys):
    mapping = {k: i for i, k in enumerate(keys)}
    ordered = java_hashmap_order(mapping)
    assert list(ordered) == _java_hashmap_model(keys)
    assert ordered == mapping  # same entries


# --------------------------------------------------------------------------- Double.toString


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.0, "2.0"),
        (1.33, "1.33"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (1e7, "1.0E7"),
        (9999999.0, "9999999.0"),
        (123456789.0, "1.23456789E8"),
        (6.6e-05, "6.6E-5"),
        (1e23, "1.0E23"),
        (1.7976931348623157e308, "1.7976931348623157E308"),
        (-0.5, "-0.5"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
    ],
)
def test_java_double_to_string_known_values(value, text):
    assert java_double_to_string(value) == text


def _bits(value: float) -> int:
    return struct.unpack("<q", struct.pack("<d", value))[0]


@given(st.floats(allow_nan=False))
def test_java_double_to_string_round_trips_and_uses_javas_notation(value):
    text = java_double_to_string(value)
    assert _bits(float(text)) == _bits(value)  # Java's text parses back to the same double
    if math.isinf(value):
        return
    mantissa, _, exponent = text.lstrip("-").partition("E")
    whole, _, fraction = mantissa.partition(".")
    assert fraction  # always a digit after the point
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        assert not exponent
    else:
        assert len(whole) == 1 and whole != "0" and exponent
    # the shortest digits that round-trip: those of Python's repr
    digits = (whole + fraction).lstrip("0").rstrip("0") or "0"
    python_digits = repr(abs(value)).split("e")[0].replace(".", "").lstrip("0").rstrip("0")
    assert digits == (python_digits or "0")


# --------------------------------------------------------------------------- Gson


def test_gson_string_escapes_html_characters_and_control_characters():
    assert gson_string("<>&='\"\\\n\t\x01\x1f\u2028\u2029é\x7f") == (
        '"\\u003c\\u003e\\u0026\\u003d\\u0027\\"\\\\\\n\\t\\u0001\\u001f\\u2028\\u2029é\x7f"'
    )


@given(TEXT)
def test_gson_string_is_json_with_only_gsons_extra_escapes(text):
    encoded = gson_string(text)
    assert json.loads(encoded) == text
    assert not any(c in encoded for c in "<>&='\u2028\u2029")


def test_gson_json_keeps_number_types_and_drops_map_nulls():
    assert gson_json({"a": None, "b": [None, {"c": None, "d": 1}]}) == '{"b":[null,{"d":1}]}'
    assert gson_json([True, False, 3, 1.5]) == "[true,false,3,1.5]"
    assert gson_json(["a<b>", "ಕನ್ನಡ"]) == '["a\\u003cb\\u003e","ಕನ್ನಡ"]'


def test_gson_roundtrip_json_writes_every_number_as_a_double():
    assert gson_roundtrip_json(["<>&='\"\\\n\x01\u2028", None, {"a": None}, 3]) == (
        '["\\u003c\\u003e\\u0026\\u003d\\u0027\\"\\\\\\n\\u0001\\u2028",null,{},3.0]'
    )
    assert gson_roundtrip_json({"n": 10**7, "f": 1e-5, "t": True}) == (
        '{"n":1.0E7,"f":1.0E-5,"t":true}'
    )


def test_gson_roundtrip_json_refuses_what_gson_cannot_write():
    with pytest.raises(OverflowError, match="out of the double range"):
        gson_roundtrip_json([10**400])
    with pytest.raises(TypeError):
        gson_roundtrip_json({1, 2})


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner) | st.dictionaries(TEXT, inner),
    max_leaves=20,
)


def _without_map_nulls(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_map_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_map_nulls(v) for v in value]
    return value


def _as_doubles(value: object) -> object:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {k: _as_doubles(v) for k, v in value.items()}
    assert isinstance(value, list)
    return [_as_doubles(v) for v in value]


@given(JSON_VALUES)
def test_gson_json_is_json_without_map_nulls(value):
    assert json.loads(gson_json(value)) == _without_map_nulls(value)


@given(JSON_VALUES)
def test_gson_roundtrip_json_is_json_of_doubles_without_map_nulls(value):
    assert json.loads(gson_roundtrip_json(value)) == _as_doubles(_without_map_nulls(value))


@given(st.lists(TEXT))
def test_gson_json_fast_path_for_string_lists_matches_the_general_encoder(value):
    assert gson_json(value) == java._gson_json_general(value)


@given(st.lists(TEXT) | st.dictionaries(TEXT, TEXT | st.booleans() | st.none()))
def test_the_two_gson_encodings_agree_without_numbers(value):
    assert gson_json(value) == gson_roundtrip_json(value)


# --------------------------------------------------------------------------- Jackson


def test_jackson_string_uses_upper_case_hex_and_no_html_escapes():
    assert jackson_string('<a&b>\x01\x1f\n"\\é') == '"<a&b>\\u0001\\u001F\\n\\"\\\\é"'


@given(TEXT)
def test_jackson_string_is_json(text):
    assert json.loads(jackson_string(text)) == text
