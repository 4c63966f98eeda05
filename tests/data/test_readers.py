"""Tests of `read_interactions`: formats, sniffing, id types and every kind of bad input."""

from __future__ import annotations

import gzip
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from metarec_classic.data import from_dataframe, random_holdout_split, read_interactions
from metarec_classic.exceptions import DataError, DataWarning

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


def write(tmp_path: Path, text: str | bytes, name: str = "data.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- formats and sniffing --------------------------------------------------------------
@pytest.mark.parametrize("sep", [",", "\t", ";", "|", "::", " "])
def test_separator_is_sniffed(tmp_path: Path, sep: str) -> None:
    lines = ["1", "10", "5"], ["1", "11", "3"], ["2", "10", "4"], ["3", "12", "1"]
    path = write(tmp_path, "\n".join(sep.join(fields) for fields in lines) + "\n")
    data = read_interactions(path)
    assert (data.n_users, data.n_items, data.n_interactions) == (3, 3, 4)
    frame = data.to_frame().set_index(["user_id", "item_id"])
    assert frame.loc[(3, 12), "rating"] == 1.0
    assert frame.loc[(1, 11), "rating"] == 3.0


def test_whitespace_runs_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, b"1   10  5\r\n1 11\t3\r\n2  10   4\r\n")
    data = read_interactions(path)
    assert data.n_interactions == 3
    assert sorted(data.to_frame()["rating"].tolist()) == [3.0, 4.0, 5.0]


def test_undetectable_separator_asks_for_sep(tmp_path: Path) -> None:
    path = write(tmp_path, "abc\ndef\n")
    with pytest.raises(DataError, match=r"Could not detect the field separator.*pass `sep=`"):
        read_interactions(path)


def test_carriage_return_line_endings_are_read_and_reported(tmp_path: Path) -> None:
    path = write(tmp_path, b"user_id,item_id,rating\r1,10,5\r1,11,3\r2,10,4\r")
    with pytest.warns(DataWarning, match=r"carriage return alone.*4 carriage returns"):
        data = read_interactions(path)
    assert (data.n_users, data.n_items, data.n_interactions) == (2, 2, 3)
    assert data.report.counts["carriage_returns_read_as_newlines"] == 4


def test_separator_error_quotes_a_long_line_in_short(tmp_path: Path) -> None:
    path = write(tmp_path, "x" * 200_000 + "\n" + "y" * 10 + "\n")
    with pytest.raises(DataError, match=r"first line 'x{80}' \.\.\. \(200000 characters\)") as err:
        read_interactions(path)
    assert len(str(err.value)) < 400


def test_text_decoded_with_the_wrong_encoding_is_named(tmp_path: Path) -> None:
    # An even number of bytes, so that UTF-16 decodes it (into nonsense).
    path = write(tmp_path, "1,10,5\n2,11,3\n3,10,45\n")
    with pytest.raises(DataError, match=r"looks garbled: check the file's encoding"):
        read_interactions(path, encoding="utf-16")


def test_unknown_encoding_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "1,10,5\n")
    with pytest.raises(DataError, match=r"Unknown encoding 'foo'.*`encoding=\"utf-8\"`"):
        read_interactions(path, encoding="foo")


def test_header_with_known_names_is_detected_and_mapped(tmp_path: Path) -> None:
    path = write(tmp_path, "userId,movieId,rating,timestamp\n1,7,4.5,100\n2,7,2.0,200\n2,8,3,300\n")
    data = read_interactions(path)
    assert data.n_interactions == 3
    assert data.feedback == "explicit"
    assert data.timestamps is not None
    assert sorted(data.timestamps.tolist()) == [100.0, 200.0, 300.0]


def test_header_names_decide_column_order(tmp_path: Path) -> None:
    path = write(tmp_path, "item\tuser\tcount\na\tu1\t3\nb\tu1\t1\na\tu2\t2\n")
    data = read_interactions(path)
    assert set(data.user_ids) == {"u1", "u2"}
    assert set(data.item_ids) == {"a", "b"}
    assert data.feedback == "implicit"
    assert data.user_items.sum() == pytest.approx(6.0)


def test_header_detected_from_non_numeric_value_column(tmp_path: Path) -> None:
    path = write(tmp_path, "who what how_much\n1 2 5\n1 3 4\n2 2 1\n")
    with pytest.warns(DataWarning, match="names no known column, so the fields are taken by"):
        data = read_interactions(path)
    assert data.n_interactions == 3
    assert data.user_ids.dtype == np.int64
    assert data.user_ids.tolist() == [1, 2]
    assert data.report.counts["header_taken_by_position"] == 1


def test_explicit_header_false_keeps_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, "u1 i1\nu1 i2\nu2 i1\n")
    data = read_interactions(path, header=False)
    assert data.n_interactions == 3
    assert data.feedback == "implicit"
    assert np.all(data.user_items.data == 1.0)


@pytest.mark.parametrize("header", ["no", "yes", 0])
def test_a_header_that_is_not_a_bool_is_refused(tmp_path: Path, header: object) -> None:
    # "no" would otherwise count as true and drop the first interaction unreported.
    path = write(tmp_path, "u1 i1\nu1 i2\n")
    with pytest.raises(TypeError, match="`header` must be True, False or None"):
        read_interactions(path, header=header)


def test_columns_given_as_one_string_are_refused_with_the_list_form(tmp_path: Path) -> None:
    path = write(tmp_path, "u1 i1\nu1 i2\n")
    with pytest.raises(TypeError, match=r"must be a list of names, e.g. \['user_id'"):
        read_interactions(path, columns="user_id,item_id")


def test_unknown_names_over_text_ids_are_read_as_data_and_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "u,i\nalice,book1\nbob,book2\nalice,book2\n")
    with pytest.warns(DataWarning, match=r"first line .*\(u,i\) was read as an interaction"):
        data = read_interactions(path)
    assert data.n_interactions == 4
    assert data.report.counts["first_line_read_as_data"] == 1
    named = read_interactions(path, header=True)
    assert named.n_interactions == 3
    assert "first_line_read_as_data" not in named.report.counts


def test_a_first_line_whose_user_comes_back_is_plain_data(tmp_path: Path) -> None:
    path = write(tmp_path, "alice,book1\nbob,book2\nalice,book2\n")
    data = read_interactions(path)
    assert data.n_interactions == 3
    assert "first_line_read_as_data" not in data.report.counts


def test_two_columns_are_binary_implicit(tmp_path: Path) -> None:
    path = write(tmp_path, "1,10\n1,11\n2,10\n")
    data = read_interactions(path)
    assert data.feedback == "implicit"
    assert data.ratings is None
    assert data.user_items.toarray().tolist() == [[1.0, 1.0], [1.0, 0.0]]


def test_double_colon_format_with_timestamps(tmp_path: Path) -> None:
    text = "1::0104257::8::1365029107\n1::1853728::7::1366576639\n2::0104257::3::1\n"
    path = write(tmp_path, text)
    data = read_interactions(path)
    assert data.item_ids.dtype == object
    assert "0104257" in set(data.item_ids)
    assert data.timestamps is not None
    assert data.timestamps.max() == 1366576639.0


def test_columns_put_the_item_first_and_skip_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "B01,A9,5.0,x\nB02,A9,1.0,y\nB01,A8,4.0,z\n")
    data = read_interactions(path, columns=["item_id", "user_id", "rating", None])
    assert set(data.user_ids) == {"A9", "A8"}
    assert set(data.item_ids) == {"B01", "B02"}


def test_quoted_csv_fields(tmp_path: Path) -> None:
    path = write(tmp_path, '"a,1",x,3\n"a,1",y,4\nb,x,5\n')
    data = read_interactions(path)
    assert "a,1" in set(data.user_ids)
    assert data.n_interactions == 3


def test_gzip_file_is_decompressed(tmp_path: Path) -> None:
    path = write(tmp_path, gzip.compress(b"1\t1\t5\n1\t2\t4\n2\t1\t3\n"), name="r.tsv.gz")
    data = read_interactions(path)
    assert data.n_interactions == 3


def test_date_timestamps_are_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, "1,1,5,2000-01-02\n1,2,4,2000-01-01\n2,1,3,1970-01-02\n")
    data = read_interactions(path)
    assert data.timestamps is not None
    assert sorted(data.timestamps.tolist()) == [86400.0, 946684800.0, 946771200.0]


def test_feedback_argument_turns_third_column_into_weights(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1 3\n1 1 2\n2 1 1\n2 2 1\n")
    with pytest.warns(DataWarning, match="merged into it by the rule 'sum'"):
        data = read_interactions(path, feedback="implicit")
    assert data.feedback == "implicit"
    assert data.to_frame().set_index(["user_id", "item_id"]).loc[(1, 1), "weight"] == 5.0


def test_positive_threshold_binarizes(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1 5\n1 2 2\n2 1 4\n2 2 3\n")
    data = read_interactions(path, positive_threshold=4)
    assert data.n_interactions == 2
    assert np.all(data.user_items.data == 1.0)
    assert data.report.counts["below_threshold_dropped"] == 2
    assert data.n_users == 2 and data.n_items == 2
    # The low ratings are kept aside as seen, not lost: (user 1, item 2), (user 2, item 2).
    assert data.seen_nonpositive is not None
    seen = data.seen_nonpositive.tocoo()
    assert sorted(zip(data.user_ids[seen.row], data.item_ids[seen.col], strict=True)) == [
        (1, 2),
        (2, 2),
    ]


def test_a_threshold_above_every_rating_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1 3\n1 2 2\n2 1 1\n")
    with pytest.raises(
        DataError, match=r"No rating .* reaches the threshold 6 \(they range from 1 to 3\)"
    ):
        read_interactions(path, positive_threshold=6)


def test_a_threshold_on_a_file_without_ratings_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1\n1 2\n2 1\n")
    with pytest.raises(DataError, match=r"has no rating column .* would drop all 3"):
        read_interactions(path, positive_threshold=4)
    assert read_interactions(path, positive_threshold=1).n_interactions == 3


def test_seen_nonpositive_survives_splits_and_adds_up(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1 5\n1 2 2\n1 3 4\n1 4 5\n2 1 4\n2 2 3\n2 3 -1\n")
    ratings = read_interactions(path, positive_threshold=None).drop_nonpositive_weights()
    # A negative weight cannot be a positive: dropped as weight, kept as seen.
    assert ratings.report.counts["nonpositive_weights_dropped"] == 1
    assert ratings.seen_nonpositive is not None and ratings.seen_nonpositive.nnz == 1
    positives = ratings.binarize(4)
    assert positives.seen_nonpositive is not None
    assert positives.seen_nonpositive.nnz == 3  # the -1, and the 2 and the 3
    assert positives.n_interactions == 4
    split = random_holdout_split(positives, test_fraction=0.5, random_state=0)
    for part in (split.train, split.test):
        assert part.seen_nonpositive is not None
        assert (part.seen_nonpositive != positives.seen_nonpositive).nnz == 0


def test_seen_nonpositive_of_another_shape_is_refused() -> None:
    data = from_dataframe(pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2]}))
    with pytest.raises(DataError, match="`seen_nonpositive` must be a sparse matrix"):
        replace(data, seen_nonpositive=sp.csr_matrix((3, 3), dtype=np.float32))


# -- id types ----------------------------------------------------------------------------
def test_leading_zero_ids_stay_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "1 0104257 5\n2 104257 4\n2 0104257 3\n")
    data = read_interactions(path)
    assert data.item_ids.dtype == object
    assert set(data.item_ids) == {"0104257", "104257"}
    assert data.user_ids.dtype == np.int64


def test_int64_extremes_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path, f"{INT64_MAX} {INT64_MIN} 1\n{INT64_MIN} {INT64_MAX} 2\n")
    data = read_interactions(path)
    assert data.user_ids.dtype == np.int64
    assert set(data.user_ids.tolist()) == {INT64_MAX, INT64_MIN}
    assert data.user_map.to_index([INT64_MAX]).tolist() == [0]


def test_ids_beyond_int64_stay_strings(tmp_path: Path) -> None:
    big = str(INT64_MAX + 1)
    path = write(tmp_path, f"{big} 1\n5 2\n")
    data = read_interactions(path)
    assert data.user_ids.dtype == object
    assert big in set(data.user_ids)


def test_mixed_ids_in_a_file_all_stay_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "7 a\nx b\n7 b\n")
    data = read_interactions(path)
    assert data.user_ids.tolist() == ["7", "x"]
    assert data.user_map.to_index([7]).tolist() == [-1]


def test_mixed_id_types_in_a_frame_are_converted_and_counted() -> None:
    frame = pd.DataFrame({"user_id": [1, "a", 2], "item_id": [1, 2, 1]})
    with pytest.warns(DataWarning, match="mixes integer and string ids; 2 integer"):
        data = from_dataframe(frame)
    assert data.report.counts["mixed_user_id_types_converted"] == 2
    assert sorted(data.user_ids.tolist()) == ["1", "2", "a"]


@settings(max_examples=25, deadline=None)
@given(
    ids=st.lists(
        st.one_of(
            st.integers(min_value=INT64_MIN, max_value=INT64_MAX).map(str),
            st.from_regex(r"0[0-9]{1,6}", fullmatch=True),
        ),
        min_size=2,
        max_size=30,
        unique=True,
    )
)
def test_ids_written_to_a_file_read_back_exactly(ids: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ids.tsv"
        path.write_text("".join(f"{uid}\titem{k % 2}\n" for k, uid in enumerate(ids)))
        data = read_interactions(path, header=False)
    if all(s == str(int(s)) for s in ids):
        assert data.user_ids.dtype == np.int64
        assert sorted(data.user_ids.tolist()) == sorted(int(s) for s in ids)
    else:
        assert data.user_ids.dtype == object
        assert sorted(data.user_ids.tolist()) == sorted(ids)


# -- bad input ---------------------------------------------------------------------------
def test_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is empty"):
        read_interactions(write(tmp_path, ""))


def test_whitespace_only_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is empty"):
        read_interactions(write(tmp_path, "\n  \n\n"))


def test_header_only_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has a header line but no data lines"):
        read_interactions(write(tmp_path, "user,item,rating\n"), header=True)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist; check `path`"):
        read_interactions(tmp_path / "nope.csv")


def test_columns_without_item_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "1,1,5\n2,1,4\n")
    with pytest.raises(DataError, match=r"`columns` must name the fields \['item_id'\]"):
        read_interactions(path, columns=["user_id", None, "rating"])


def test_unknown_column_role_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "1,1,5\n2,1,4\n")
    with pytest.raises(ValueError, match=r"unknown roles \['score'\]"):
        read_interactions(path, columns=["user_id", "item_id", "score"])


def test_missing_frame_columns_are_an_error() -> None:
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2]})
    with pytest.raises(DataError, match=r"Columns \['rating'\] are missing"):
        from_dataframe(frame, rating_col="rating")


def test_too_many_fields_without_columns_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "1,2,3,4,5\n1,3,3,4,5\n")
    with pytest.raises(DataError, match="5 fields per line; pass `columns=`"):
        read_interactions(path)


def test_nan_and_inf_values_are_dropped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1 5\n1 2 nan\n2 1 inf\n2 2 3\n3 1 4\n")
    with pytest.warns(DataWarning, match="NaN or infinite 'rating'"):
        data = read_interactions(path)
    assert data.report.counts["nonfinite_rating_dropped"] == 2
    assert data.n_interactions == 3


def test_non_numeric_value_is_dropped_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1 5\n1 2 4\n2 1 good\n2 2 3\n")
    with pytest.warns(DataWarning, match="not a number and were dropped \\(first on line 3\\)"):
        data = read_interactions(path)
    assert data.report.counts["non_numeric_rating_dropped"] == 1
    assert data.n_interactions == 3


def test_warnings_point_at_the_caller_and_are_not_repeated(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1 5\n1 2 4\n2 1 good\n2 2 3\n")
    with pytest.warns(DataWarning) as caught:
        read_interactions(path)
    assert len(caught) == 1
    assert caught[0].filename == __file__


def test_a_file_with_no_usable_row_says_why_once(tmp_path: Path) -> None:
    # The error quotes the drop; a warning printed before it would repeat it.
    path = write(tmp_path, "1 1 good\n1 2 bad\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match=r"No usable rows .* 2 lines .* not a number"):
            read_interactions(path)
    assert [w for w in caught if issubclass(w.category, DataWarning)] == []


def test_a_drop_is_still_warned_when_reading_then_fails_for_another_reason(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "1 1 5\n1 2 good\n2 1 4\n")
    with pytest.warns(DataWarning, match="not a number and were dropped"):
        with pytest.raises(DataError, match="at least 2 of each"):
            read_interactions(path)


def test_a_missing_id_is_pointed_at_by_its_file_line(tmp_path: Path) -> None:
    # Header, a blank line and a bad line before it: the message counts file lines.
    path = write(tmp_path, "user,item,rating\n1,1,5\n\n1,2,x\n,3,4\n2,,4\n2,2,3\n")
    with pytest.warns(DataWarning) as caught:
        data = read_interactions(path)
    messages = " ".join(str(w.message) for w in caught)
    assert "no value in column 'user_id' and were dropped (first at line 5)" in messages
    assert "no value in column 'item_id' and were dropped (first at line 6)" in messages
    assert "(first on line 4)" in messages  # the non-numeric rating
    assert data.n_interactions == 2


def test_a_missing_id_in_a_dataframe_is_pointed_at_by_its_index_label() -> None:
    frame = pd.DataFrame({"user_id": [1, None, 2], "item_id": [1, 2, 3]}, index=[10, 20, 30])
    with pytest.warns(DataWarning, match=r"'user_id' and were dropped \(first at row 20\)"):
        from_dataframe(frame)


def test_negative_implicit_weights_are_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "user item weight\n1 1 5\n1 2 -2\n2 1 0\n2 2 3\n")
    with pytest.warns(DataWarning, match="zero or negative implicit weight"):
        data = read_interactions(path)
    assert data.report.counts["nonpositive_weight_dropped"] == 2
    assert data.n_interactions == 2


def test_negative_ratings_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1 -9.5\n1 2 0\n2 1 3.2\n")
    data = read_interactions(path)
    assert data.ratings is not None
    assert sorted(data.ratings.tolist()) == pytest.approx([-9.5, 0.0, 3.2])


def test_duplicate_ratings_keep_the_latest(tmp_path: Path) -> None:
    path = write(tmp_path, "1,1,5,300\n1,1,2,100\n1,2,4,50\n2,1,3,10\n")
    with pytest.warns(DataWarning, match="1 rows repeated an earlier .* rule 'last'"):
        data = read_interactions(path)
    assert data.report.counts["duplicate_rows_merged"] == 1
    frame = data.to_frame().set_index(["user_id", "item_id"])
    assert frame.loc[(1, 1), "rating"] == 5.0
    assert frame.loc[(1, 1), "timestamp"] == 300.0


def test_duplicate_rule_can_be_chosen(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1 5\n1 1 2\n1 2 4\n2 1 3\n")
    with pytest.warns(DataWarning, match="rule 'mean'"):
        data = read_interactions(path, duplicates="mean")
    assert data.to_frame().set_index(["user_id", "item_id"]).loc[(1, 1), "rating"] == 3.5


def test_single_user_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1\n1 2\n1 3\n")
    with pytest.raises(DataError, match=r"has 1 user\(s\) and 3 item\(s\)"):
        read_interactions(path)


def test_single_item_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1\n2 1\n3 1\n")
    with pytest.raises(DataError, match=r"has 3 user\(s\) and 1 item\(s\)"):
        read_interactions(path)


def test_invalid_bytes_name_file_line_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 a 5\n2 b 4\n3 caf\xe9 3\n4 d 1\n")
    message = r"data\.txt.*not valid utf-8 on line 3.*encoding=\"latin-1\""
    with pytest.raises(DataError, match=message):
        read_interactions(path)


def test_invalid_bytes_can_be_read_with_the_right_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 a 5\n2 b 4\n3 caf\xe9 3\n4 d 1\n")
    data = read_interactions(path, encoding="latin-1")
    assert "café" in set(data.item_ids)
    assert not data.report


def test_invalid_bytes_replaced_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 a 5\n2 b 4\n3 caf\xe9 3\n4 d\xff 1\n")
    with pytest.warns(DataWarning, match=r"2 lines .* not valid utf-8 \(first on line 3\)"):
        data = read_interactions(path, encoding_errors="replace")
    assert data.report.counts["invalid_bytes_replaced"] == 2
    assert data.n_interactions == 4
    assert "caf\ufffd" in set(data.item_ids)


def test_invalid_bytes_skipped_drop_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 a 5\n2 b 4\n3 caf\xe9 3\n4 d 1\n")
    with pytest.warns(DataWarning, match="those lines were dropped"):
        data = read_interactions(path, encoding_errors="skip")
    assert data.report.counts["invalid_bytes_dropped"] == 1
    assert data.n_interactions == 3
    assert 3 not in set(data.user_ids.tolist())


def test_wrong_field_counts_are_dropped_with_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, "1,1,5\n1,2,4\n2,1\n2,2,3,9\n3,1,2\n")
    with pytest.warns(DataWarning, match=r"2 lines .* do not have 3 fields .*first on line 3"):
        data = read_interactions(path)
    assert data.report.counts["wrong_field_count_dropped"] == 2
    assert data.n_interactions == 3


def test_no_line_with_the_expected_field_count_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "1,1,5\n1,2,4\n")
    with pytest.raises(DataError, match=r"No line of .* has the expected 4 fields"):
        read_interactions(path, columns=["user_id", "item_id", "rating", "timestamp"])


def test_blank_lines_inside_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "1 1 5\n\n1 2 4\n2 1 3\n\n\n")
    data = read_interactions(path)
    assert data.report.counts["blank_lines_skipped"] == 1
    assert data.n_interactions == 3


def test_empty_id_fields_are_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "1,1,5\n,2,4\n2,1,3\n2,2,1\n")
    with pytest.warns(DataWarning, match="no value in column 'user_id'"):
        data = read_interactions(path)
    assert data.report.counts["missing_user_id_dropped"] == 1
    assert data.user_ids.dtype == np.int64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user_id,rating\n1,5\n2,3\n3,4\n", "but has no item_id column"),
        ("movie,rating\n1,5\n2,3\n", "but has no user_id column"),
        # Only the rating is named: by position the item would be read as the user.
        ("sku,customer,rating\na,u1,5\nb,u1,3\na,u2,4\n", "names rating but has no user_id"),
        ("user,item,rating,weight\n1,2,5,1\n2,2,3,1\n", "more than one value column"),
        ("user_id,item_id,rating\n", "has a header line but no data lines"),
    ],
)
def test_a_header_that_cannot_be_read_safely_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        read_interactions(write(tmp_path, text))


def test_ids_that_equal_another_as_a_number_are_kept_and_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "user,item\n001,a\n1,b\nu7,a\n2,a\n2.0,b\n3,c\n")
    with pytest.warns(DataWarning, match=r"4 distinct user_id values .* '001' and '1'"):
        data = read_interactions(path)
    assert data.n_users == 6  # the ids are their text: nothing is merged
    assert data.report.counts["user_id_numeric_lookalikes"] == 4
    assert "item_id_numeric_lookalikes" not in data.report.counts


def test_ids_beyond_float_precision_are_not_taken_for_lookalikes(tmp_path: Path) -> None:
    # 2**64 + 1 and 2**64 + 2 are one float64 but different numbers; 1e20 is 10**20.
    big = 2**64
    text = f"user,item\n{big + 1},a\n{big + 2},b\n{10**20},a\n1e20,b\n"
    with pytest.warns(
        DataWarning, match=r"2 distinct user_id values .*'100000000000000000000' and '1e20'"
    ):
        data = read_interactions(write(tmp_path, text))
    assert data.report.counts["user_id_numeric_lookalikes"] == 2
    assert data.n_users == 4
