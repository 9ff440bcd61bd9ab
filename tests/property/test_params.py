"""Property: ``decode_query(encode(params)) == params`` for every params value in the encoder's domain."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.api.params import decode_pairs, decode_query, encode

# names: no brackets (they are syntax), not all digits (digit keys make lists)
names = st.text(
    st.characters(blacklist_characters="[]", blacklist_categories=("Cs",)), min_size=1, max_size=8
).filter(lambda name: not name.isdigit())
values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
params = st.recursive(
    values,
    lambda children: (
        st.lists(children, min_size=1, max_size=4) | st.dictionaries(names, children, min_size=1, max_size=4)
    ),
    max_leaves=12,
)
top = st.dictionaries(names, params, max_size=5)


@settings(max_examples=300, deadline=None)
@given(top)
def test_decode_inverts_encode(value: dict) -> None:
    assert decode_query(encode(value)) == value


@settings(max_examples=200, deadline=None)
@given(top)
def test_bytes_and_text_queries_decode_alike(value: dict) -> None:
    query = encode(value)
    assert decode_query(query.encode("ascii")) == decode_query(query)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(names, values), max_size=6))
def test_flat_scalars_keep_the_last_value(pairs: list[tuple[str, str]]) -> None:
    expected: dict[str, str] = {}
    for name, value in pairs:
        expected[name] = value
    assert decode_pairs(pairs) == expected
