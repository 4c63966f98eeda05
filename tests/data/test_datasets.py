"""Tests of `load_dataset` on every shared data set, on the embedded demo, and its errors."""

from __future__ import annotations

import importlib.resources
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from metarec_classic.data import DATASETS, Interactions, load_dataset, load_item_titles
from metarec_classic.data._datasets import _data_roots, _detect
from metarec_classic.data._rda import read_rda
from metarec_classic.exceptions import DataError, DataWarning

# name: (users, items, interactions with positive_threshold=None, merged duplicates,
#        interactions at the default threshold). Counts are the MANIFEST's; the merged
#        duplicates are its "rows" minus "distinct pairs".
EXPECTED = {
    "ml-100k": (943, 1682, 100_000, 0, 55_375),
    "ml-latest-small": (610, 9724, 100_836, 0, 48_580),
    "movietweetings-100k": (16_554, 10_506, 100_000, 0, 50_542),
    "filmtrust": (1508, 2071, 35_494, 3, 16_310),
    "ciaodvd": (17_615, 16_121, 72_345, 320, 54_984),
    "douban-monti": (2999, 3000, 136_891, 0, 78_866),
    "lastfm-hetrec-2k": (1892, 17_632, 92_834, 0, 92_834),
    "citeulike-a": (5551, 16_980, 204_986, 0, 204_986),
    "jester5k": (5000, 100, 363_209, 0, 94_562),
    "msweb": (32_711, 285, 98_654, 0, 98_654),
    "amazon-magazine": (72_098, 2428, 88_318, 1371, 65_526),
    "coat": (290, 300, 6960 + 4640 - 366, 366, 2674),
    "foursquare-sg": (2321, 5596, 98_258, 0, 98_258),
    "bookcrossing-caserec": (2946, 17_384, 272_678, 0, 272_678),
    "retailrocket-caserec": (3431, 8885, 79_595, 92_487 - 79_595, 79_595),
}

_CACHE: dict[str, Interactions] = {}


def load_raw(name: str, root: Path) -> Interactions:
    """Each data set read once per test session, with every rating kept."""
    if name not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            _CACHE[name] = load_dataset(name, data_root=root, positive_threshold=None)
    return _CACHE[name]


def test_every_shared_folder_is_known(shared_data: Path) -> None:
    folders = {p.name for p in shared_data.iterdir() if p.is_dir()}
    assert folders == set(EXPECTED)
    assert set(DATASETS) == set(EXPECTED) | {"demo"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dataset_counts_match_manifest(shared_data: Path, name: str) -> None:
    users, items, interactions, merged, positives = EXPECTED[name]
    data = load_raw(name, shared_data)
    info = DATASETS[name]
    assert (data.n_users, data.n_items, data.n_interactions) == (users, items, interactions)
    assert data.report.counts.get("duplicate_rows_merged", 0) == merged
    assert data.name == name
    assert data.feedback == info.feedback
    assert (data.ratings is not None) == (info.feedback == "explicit")
    threshold = info.default_threshold
    binary = data.binarize(threshold)
    assert binary.n_interactions == positives
    assert np.all(binary.user_items.data == 1.0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dataset_is_recognised_by_its_files(shared_data: Path, name: str) -> None:
    assert _detect(shared_data / name) == name


def test_renamed_folder_loads_by_its_files(shared_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "my-coats"
    shutil.copytree(shared_data / "coat", copy)
    with pytest.warns(DataWarning, match="366 rows repeated"):
        data = load_dataset(copy)
    assert data.name == "coat"
    assert data.n_interactions == 2674


def test_default_threshold_is_applied(shared_data: Path) -> None:
    with pytest.warns(DataWarning, match="rule 'last'"):
        data = load_dataset("filmtrust", data_root=shared_data)
    assert data.n_interactions == 16_310
    assert data.report.counts["below_threshold_dropped"] == 35_494 - 16_310
    assert data.ratings is not None
    assert data.ratings.min() >= 3.5


def test_threshold_can_be_overridden(shared_data: Path) -> None:
    data = load_dataset("ml-100k", data_root=shared_data, positive_threshold=5)
    raw = load_raw("ml-100k", shared_data)
    assert raw.ratings is not None
    assert data.n_interactions == int((raw.ratings >= 5).sum())


def test_short_name_resolves_through_environment(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METAREC_DATA", str(shared_data))
    data = load_dataset("msweb")
    assert data.n_users == 32_711


@pytest.mark.parametrize(
    ("name", "variant", "counts"),
    [
        ("msweb", "test", (5000, 236, 15_191)),
        ("coat", "train", (290, 300, 6960)),
        ("coat", "test", (290, 300, 4640)),
        ("douban-monti", "train", (None, 3000, 123_202)),
        ("douban-monti", "test", (None, None, 13_689)),
        ("foursquare-sg", "test", (None, None, 29_099)),
        ("bookcrossing-caserec", "ratings", (1295, 14_684, 62_656)),
        ("retailrocket-caserec", "add_to_cart", (1557, 4447, 9028)),
        ("retailrocket-caserec", "purchase", (824, 3077, 5088)),
    ],
)
def test_variants(
    shared_data: Path, name: str, variant: str, counts: tuple[int | None, ...]
) -> None:
    data = load_dataset(name, data_root=shared_data, variant=variant, positive_threshold=None)
    got = (data.n_users, data.n_items, data.n_interactions)
    for expected, value in zip(counts, got, strict=True):
        if expected is not None:
            assert value == expected


def test_bookcrossing_ratings_variant_has_its_own_threshold(shared_data: Path) -> None:
    data = load_dataset("bookcrossing-caserec", data_root=shared_data, variant="ratings")
    assert data.feedback == "explicit"
    assert data.ratings is not None
    assert data.ratings.min() == 8.0
    assert data.n_interactions == 15_629 + 12_008 + 13_884


def test_id_types_are_kept(shared_data: Path) -> None:
    movies = load_raw("movietweetings-100k", shared_data)
    assert movies.item_ids.dtype == object
    assert "0104257" in set(movies.item_ids)
    assert movies.user_ids.dtype == np.int64
    places = load_raw("foursquare-sg", shared_data)
    assert "USER_894" in set(places.user_ids)
    jokes = load_raw("jester5k", shared_data)
    assert {"u7452", "j1", "j100"} <= set(jokes.user_ids) | set(jokes.item_ids)
    amazon = load_raw("amazon-magazine", shared_data)
    assert "B00005N7P0" in set(amazon.item_ids)
    assert "AH2IFH762VY5U" in set(amazon.user_ids)


def test_values_follow_the_manifest(shared_data: Path) -> None:
    places = load_raw("foursquare-sg", shared_data)
    assert places.user_items.sum() == pytest.approx(156_772)
    lastfm = load_raw("lastfm-hetrec-2k", shared_data)
    assert lastfm.user_items.data.max() == 352_698
    jokes = load_raw("jester5k", shared_data)
    assert jokes.ratings is not None
    assert jokes.ratings.min() == pytest.approx(-9.95)
    assert jokes.ratings.max() == pytest.approx(9.90)
    retail = load_raw("retailrocket-caserec", shared_data)
    assert retail.user_items.sum() == pytest.approx(92_487)
    assert retail.user_items.data.max() == 3
    ml = load_raw("ml-100k", shared_data)
    assert ml.timestamps is not None
    assert ml.timestamps.min() == 874724710


def test_families_group_movielens() -> None:
    assert DATASETS["ml-100k"].family == DATASETS["ml-latest-small"].family == "movielens"
    assert DATASETS["demo"].family == DATASETS["movietweetings-100k"].family
    # Apart from MovieLens and the demo's copy of MovieTweetings, every source is its own family.
    skip = ("ml-", "demo")
    others = [info.family for name, info in DATASETS.items() if not name.startswith(skip)]
    assert len(set(others)) == len(others) == len(DATASETS) - 3


def test_plain_file_path_is_read(shared_data: Path) -> None:
    data = load_dataset(shared_data / "filmtrust" / "trust.txt")
    assert data.n_interactions == 1853
    assert data.name == "trust.txt"


def test_plain_file_path_takes_read_options(shared_data: Path) -> None:
    path = shared_data / "ciaodvd" / "movie-ratings.txt"
    with pytest.warns(DataWarning, match="320 rows repeated"):
        data = load_dataset(
            path, columns=["user_id", "item_id", None, None, "rating", None], positive_threshold=5
        )
    assert data.ratings is not None
    assert data.ratings.min() == 5.0


def test_unknown_name_is_an_error() -> None:
    with pytest.raises(DataError, match="neither an existing file or folder nor a known data set"):
        load_dataset("no-such-set")


def test_missing_folder_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="set the environment variable METAREC_DATA"):
        load_dataset("coat", data_root=tmp_path)


def test_unknown_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("1 2\n")
    with pytest.raises(DataError, match="holds none of the known data sets"):
        load_dataset(tmp_path)


def test_bad_variant_is_an_error(shared_data: Path) -> None:
    with pytest.raises(ValueError, match="`variant` must be one of"):
        load_dataset("coat", data_root=shared_data, variant="valid")


def test_bad_threshold_is_an_error() -> None:
    with pytest.raises(ValueError, match="`positive_threshold` must be a finite number"):
        load_dataset("demo", positive_threshold=float("nan"))


def test_read_options_for_a_known_set_are_an_error(shared_data: Path) -> None:
    with pytest.raises(TypeError, match=r"Reading options \['sep'\] only apply"):
        load_dataset("coat", data_root=shared_data, sep=",")


def test_an_unknown_option_is_named_with_the_nearest_one(tmp_path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,rating\n1,1,5\n2,1,3\n")
    with pytest.raises(
        TypeError, match=r"no option \['threshold'\] \(did you mean `positive_threshold`\?\)"
    ):
        load_dataset(path, threshold=4)
    with pytest.raises(TypeError, match=r"did you mean `sep`\?"):
        load_dataset(path, sepp=",")


def test_non_r_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.rda"
    path.write_bytes(b"not R at all")
    with pytest.raises(DataError, match="is not an R data file"):
        read_rda(path)


# -- the embedded demo (needs no shared data) --------------------------------------------
def test_demo_loads_from_the_package() -> None:
    raw = load_dataset("demo", positive_threshold=None)
    assert (raw.n_users, raw.n_items, raw.n_interactions) == (16_554, 10_506, 100_000)
    assert raw.item_ids.dtype == object
    assert "0104257" in set(raw.item_ids)
    assert raw.ratings is not None and raw.ratings.max() == 10
    default = load_dataset("demo")
    assert default.n_interactions == 50_542
    assert default.name == "demo"


def test_demo_titles_keep_string_ids() -> None:
    titles = load_item_titles("demo")
    assert len(titles) >= 10_506
    assert titles["0002844"].startswith("Fantômas")
    demo = load_dataset("demo", positive_threshold=None)
    assert set(demo.item_ids) <= set(titles.index)


def test_demo_files_are_small_and_licensed() -> None:
    folder = importlib.resources.files("metarec_classic").joinpath("datasets/demo")
    names = {entry.name for entry in folder.iterdir()}
    assert {"ratings.dat.gz", "movies.dat.gz", "LICENSE", "README.md"} <= names
    total = sum(len(folder.joinpath(n).read_bytes()) for n in names)
    assert total < 2 * 1024 * 1024
    assert "MIT" in folder.joinpath("LICENSE").read_text()
    assert "Dooms" in folder.joinpath("README.md").read_text()


def test_movielens_titles(shared_data: Path) -> None:
    titles = load_item_titles("ml-100k", data_root=shared_data)
    assert titles[1] == "Toy Story (1995)"
    assert len(titles) == 1682
    with pytest.raises(DataError, match="No item titles are known for 'coat'"):
        load_item_titles("coat", data_root=shared_data)


def test_each_data_root_is_searched_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METAREC_DATA", raising=False)
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the repository
    roots = _data_roots(None)
    assert len({root.resolve() for root in roots}) == len(roots) == 1
