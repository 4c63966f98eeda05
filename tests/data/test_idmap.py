"""Property tests of `IdMap`: ids -> indices -> ids is the identity, types are kept."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metarec_classic.data import IdMap

INT64 = st.integers(min_value=np.iinfo(np.int64).min, max_value=np.iinfo(np.int64).max)
INT_IDS = st.lists(INT64, min_size=1, max_size=50, unique=True) | st.just(
    [int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max), 0, -1]
)
STR_IDS = st.lists(
    st.from_regex(r"0[0-9]{0,8}", fullmatch=True) | st.text(min_size=0, max_size=8),
    min_size=1,
    max_size=50,
    unique=True,
)


@settings(max_examples=60, deadline=None)
@given(ids=INT_IDS)
def test_int_ids_round_trip_exactly(ids: list[int]) -> None:
    id_map = IdMap(np.asarray(ids, dtype=np.int64))
    index = id_map.to_index(ids)
    assert index.tolist() == list(range(len(ids)))
    back = id_map.to_ids(index)
    assert back.dtype == np.int64
    assert back.tolist() == ids


@settings(max_examples=60, deadline=None)
@given(ids=STR_IDS)
def test_str_ids_round_trip_with_leading_zeros(ids: list[str]) -> None:
    id_map = IdMap(np.asarray(ids, dtype=object))
    index = id_map.to_index(np.asarray(ids, dtype=object))
    assert index.tolist() == list(range(len(ids)))
    back = id_map.to_ids(index)
    assert back.dtype == object
    assert back.tolist() == ids
    assert all(isinstance(v, str) for v in back)


@settings(max_examples=30, deadline=None)
@given(ids=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, unique=True))
def test_int_map_does_not_match_their_strings(ids: list[int]) -> None:
    id_map = IdMap(np.asarray(ids, dtype=np.int64))
    assert np.all(id_map.to_index(np.asarray([str(v) for v in ids], dtype=object)) == -1)
    assert np.all(id_map.to_index([max(ids) + 1]) == -1)
