import numpy as np
import pytest

from sclseg.data import labels as L

cs_labels = pytest.importorskip("cityscapesscripts.helpers.labels")


def test_table_matches_cityscapesscripts():
    evaluated = [lab for lab in cs_labels.labels if lab.trainId not in (255, -1) and not lab.ignoreInEval]
    evaluated.sort(key=lambda lab: lab.trainId)
    assert [lab.trainId for lab in evaluated] == list(range(19))
    assert tuple(lab.id for lab in evaluated) == L.TRAIN_ID_TO_LABEL_ID
    assert tuple(lab.name for lab in evaluated) == L.CLASS_NAMES
    assert tuple(tuple(lab.color) for lab in evaluated) == L.PALETTE
    for lab in cs_labels.labels:
        if 0 <= lab.id < 34:
            assert L.LABEL_NAMES[lab.id] == lab.name
            expected = lab.trainId if lab.trainId in range(19) and not lab.ignoreInEval else 255
            assert L.LABEL_ID_TO_TRAIN_ID[lab.id] == expected, lab.name


def test_round_trip_and_colorize():
    train = np.array([[0, 18, 255], [13, 5, 10]])
    label_ids = L.train_ids_to_label_ids(train)
    assert label_ids.tolist() == [[7, 33, 0], [26, 17, 23]]
    back = L.label_ids_to_train_ids(label_ids)
    assert back.tolist() == [[0, 18, 255], [13, 5, 10]]
    rgb = L.colorize(train)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (128, 64, 128) and tuple(rgb[0, 2]) == (0, 0, 0)


def test_negative_and_large_ids_are_ignored():
    assert L.label_ids_to_train_ids(np.array([-1, 300, 34])).tolist() == [255, 255, 255]
