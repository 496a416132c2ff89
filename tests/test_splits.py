"""Semi-supervised splits: exact counts, disjoint, seeded, nested; list files and their errors."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sclseg.data.cityscapes import CityscapesItem
from sclseg.data.splits import (
    labeled_count,
    make_semi_supervised_split,
    read_id_list,
    select_items,
    write_id_list,
)

CITYSCAPES_TRAIN = [f"city{i % 18:02d}_{i:06d}_000019" for i in range(2975)]


@pytest.mark.parametrize("fraction, expected", [("1/16", 186), (1 / 8, 372), (Fraction(1, 4), 744), (0.5, 1488)])
def test_cityscapes_counts(fraction, expected):
    assert labeled_count(2975, fraction) == expected
    split = make_semi_supervised_split(CITYSCAPES_TRAIN, fraction, seed=3)
    assert len(split.labeled) == expected and len(split.unlabeled) == 2975 - expected
    assert set(split.labeled).isdisjoint(split.unlabeled)
    assert set(split.labeled) | set(split.unlabeled) == set(CITYSCAPES_TRAIN)


def test_seeded_nested_and_order_independent():
    a = make_semi_supervised_split(CITYSCAPES_TRAIN, "1/8", seed=1)
    assert a == make_semi_supervised_split(reversed(CITYSCAPES_TRAIN), "1/8", seed=1)
    assert a != make_semi_supervised_split(CITYSCAPES_TRAIN, "1/8", seed=2)
    sixteenth = make_semi_supervised_split(CITYSCAPES_TRAIN, "1/16", seed=1)
    assert set(sixteenth.labeled) < set(a.labeled)
    assert list(a.labeled) == sorted(a.labeled)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 300), denominator=st.sampled_from([1, 2, 4, 8, 16, 10, 3]), seed=st.integers(0, 2**32 - 1))
def test_split_properties(n, denominator, seed):
    ids = [f"x_{i:06d}_000019" for i in range(n)]
    split = make_semi_supervised_split(ids, Fraction(1, denominator), seed=seed)
    assert len(split.labeled) == -(-n // denominator) >= 1
    assert set(split.labeled).isdisjoint(split.unlabeled) and len(split.labeled) + len(split.unlabeled) == n


def test_bad_fraction_and_duplicates():
    with pytest.raises(ValueError, match="fraction"):
        make_semi_supervised_split(["a"], 0)
    with pytest.raises(ValueError, match="duplicates"):
        make_semi_supervised_split(["a", "a"], 0.5)


def test_list_file_round_trip_and_comments(tmp_path):
    path = write_id_list(tmp_path / "sub" / "labeled.txt", ["b_1", "a_1"], header="seed 0\n1/8 of train")
    assert path.read_text().splitlines() == ["# seed 0", "# 1/8 of train", "a_1", "b_1"]
    path.write_text(path.read_text() + "\n  c_1   # trailing comment\n\n")
    assert read_id_list(path, known_ids=["a_1", "b_1", "c_1", "d_1"]) == ["a_1", "b_1", "c_1"]


def test_list_file_errors(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no image ids"):
        read_id_list(path)
    path.write_text("a\nb\na\n")
    with pytest.raises(ValueError, match="duplicate image id.*: a"):
        read_id_list(path)
    path.write_text("\n".join(["ok"] + [f"bad{i}" for i in range(8)]))
    with pytest.raises(ValueError,
                       match=r"8 image id\(s\) not in the data set: bad0, bad1, bad2, bad3, bad4, \.\.\.") as e:
        read_id_list(path, known_ids=["ok"])
    assert str(path) in str(e.value)


def test_select_items():
    items = [CityscapesItem(f"c_{i}", "c", "train", tmp, None) for i, tmp in enumerate(["p0", "p1", "p2"])]
    chosen, rest = select_items(items, ["c_2", "c_0"])
    assert [i.image_id for i in chosen] == ["c_0", "c_2"] and [i.image_id for i in rest] == ["c_1"]
    with pytest.raises(ValueError, match="not in the data set: zz"):
        select_items(items, ["zz"])
