"""The bracket parameter decoder: examples from API.md section 1 and every malformed input."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from snapkeep.api.params import (
    MAX_DEPTH,
    MAX_NAME_BYTES,
    MAX_PAIRS,
    MAX_VALUE_BYTES,
    decode_pairs,
    decode_query,
    encode,
)
from snapkeep.errors import ParameterError


def test_examples_of_api_md_decode_to_nested_values() -> None:
    query = (
        "destination[0]=D1&items[]=I1&items[]=I2&filters[0][1]=G&schedules[0][_id]=S&schedules[0][retain]=7"
        "&monitor[notran]=2&options[path]=/backup&name=Daily%20Backup&include_list[0]=%2Fhome%2Fsite"
    )
    assert decode_query(query) == {
        "destination": ["D1"],
        "items": ["I1", "I2"],
        "filters": [["G"]],
        "schedules": [{"_id": "S", "retain": "7"}],
        "monitor": {"notran": "2"},
        "options": {"path": "/backup"},
        "name": "Daily Backup",
        "include_list": ["/home/site"],
    }


def test_plus_is_a_space_and_empty_pairs_are_ignored() -> None:
    assert decode_query("name=a+b&&flag&x=") == {"name": "a b", "flag": "", "x": ""}


def test_sparse_integer_keys_become_a_list_in_key_order() -> None:
    assert decode_query("a[2]=two&a[0]=zero") == {"a": ["zero", "two"]}


def test_later_scalar_wins() -> None:
    assert decode_query("limit=1&limit=5") == {"limit": "5"}


def test_dotted_find_keys_stay_whole() -> None:
    assert decode_query("find[data._id]=X&sort[name]=-1") == {
        "find": {"data._id": "X"},
        "sort": {"name": "-1"},
    }


@pytest.mark.parametrize("query", ["a[0=1", "a[0][=1", "a]=1", "a[0]x=1", "a[[0]]=1"])
def test_malformed_brackets_are_refused_naming_the_field(query: str) -> None:
    with pytest.raises(ParameterError) as caught:
        decode_query(query)
    assert caught.value.field == query.split("=")[0]
    assert "malformed brackets" in str(caught.value)


@pytest.mark.parametrize("query", ["=1", "[0]=1"])
def test_a_missing_name_is_refused(query: str) -> None:
    with pytest.raises(ParameterError, match="parameter name is missing"):
        decode_query(query)


def test_scalar_and_container_for_one_name_are_refused() -> None:
    with pytest.raises(ParameterError, match=r"^a\[b\]: is given both"):
        decode_query("a=1&a[b]=2")
    with pytest.raises(ParameterError, match=r"^a: is given both"):
        decode_query("a[b]=2&a=1")


def test_non_utf8_value_is_refused_naming_the_field() -> None:
    with pytest.raises(ParameterError, match=r"^name: is not valid UTF-8"):
        decode_query(b"limit=1&name=caf%E9")
    with pytest.raises(ParameterError, match=r"^name: is not valid UTF-8"):
        decode_query(b"name=caf\xe9")


def test_non_utf8_name_is_refused() -> None:
    with pytest.raises(ParameterError, match="is not valid UTF-8"):
        decode_query(b"na%FFme=1")


def test_a_10_mb_value_is_refused_naming_the_field() -> None:
    with pytest.raises(ParameterError, match=r"^name: value is too large \(10000000 bytes"):
        decode_query("limit=1&name=" + "x" * 10_000_000)
    with pytest.raises(ParameterError, match=r"^exclude_list\[0\]: value is too large"):
        decode_pairs([("exclude_list[0]", "y" * (MAX_VALUE_BYTES + 1))])


def test_a_value_at_the_limit_is_accepted() -> None:
    assert len(decode_query("a=" + "x" * MAX_VALUE_BYTES)["a"]) == MAX_VALUE_BYTES


def test_encode_writes_brackets_and_percent_escapes() -> None:
    encoded = encode({"name": "Daily Backup", "destination": ["D"], "monitor": {"notran": 2}, "on": True})
    assert encoded == "name=Daily%20Backup&destination[0]=D&monitor[notran]=2&on=1"
    assert decode_query(encoded) == {
        "name": "Daily Backup",
        "destination": ["D"],
        "monitor": {"notran": "2"},
        "on": "1",
    }


def test_encode_of_an_empty_list_clears_the_field() -> None:
    assert encode({"exclude_list": []}) == "exclude_list="


def test_size_limit_counts_decoded_bytes_not_percent_encoding() -> None:
    text = "é" * (MAX_VALUE_BYTES // 4)  # 512 KiB decoded, 1.5 MiB percent-encoded
    assert decode_query("name=" + quote(text))["name"] == text
    with pytest.raises(ParameterError, match="name: value is too large"):
        decode_query("name=" + quote("é" * (MAX_VALUE_BYTES // 2 + 1)))


def test_appends_continue_after_the_largest_index_given() -> None:
    """PHP's rule, kept with an O(1) append per container (attack report HIGH-2)."""
    assert decode_query("a[5]=x&a[]=y&a[2]=z") == {"a": ["z", "x", "y"]}
    assert decode_query("m[k][]=1&m[k][]=2&m[j][3]=3&m[j][]=4") == {"m": {"k": ["1", "2"], "j": ["3", "4"]}}
    many = decode_query("&".join(["a[]=v"] * MAX_PAIRS))
    assert len(many["a"]) == MAX_PAIRS


def test_counts_lengths_and_depths_are_capped() -> None:
    with pytest.raises(ParameterError, match=f"more than {MAX_PAIRS} parameters"):
        decode_query("&".join(["a[]=v"] * (MAX_PAIRS + 1)))
    with pytest.raises(ParameterError, match="longer than"):
        decode_query("a" * (MAX_NAME_BYTES + 1) + "=v")
    with pytest.raises(ParameterError, match=f"more than {MAX_DEPTH} levels"):
        decode_query("a" + "[x]" * (MAX_DEPTH + 1) + "=v")
    assert decode_query("a" + "[x]" * MAX_DEPTH + "=v")["a"]["x"]


def test_non_ascii_digits_are_keys_not_indexes() -> None:
    """``"²".isdigit()`` is true but ``int("²")`` fails: such a key stays a key (it raised before)."""
    assert decode_query("b[%C2%B2]=1") == {"b": {"²": "1"}}
    assert decode_query("b[%C2%B2]=1&b[]=2") == {"b": {"²": "1", "0": "2"}}
