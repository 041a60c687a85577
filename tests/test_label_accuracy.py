"""The proposal accuracy figures (label.accuracy), on hand-computed cases."""

import json

import numpy as np
import pytest

from pascal_person_pose import schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.label import accuracy

R_WRIST, L_WRIST, NECK = (schema.name2joint[n].index for n in ("r_wrist", "l_wrist", "neck"))


def test_figures_of_a_hand_computed_person():
    truth = np.zeros((1, 14, 3))
    truth[0, R_WRIST] = (10, 10, 2)
    truth[0, L_WRIST] = (30, 10, 1)
    truth[0, NECK] = (20, 0, 2)
    proposed = np.zeros((1, 14, 3))
    proposed[0, R_WRIST] = (30, 11, 2)  # lies on the left wrist: a swapped pair
    proposed[0, L_WRIST] = (10, 14, 2)  # 4 px from the right wrist
    # neck: no proposal
    unit = accuracy.box_units([[0, 0, 48, 64]])  # diagonal 80 / 8 = 10 px
    assert unit.tolist() == [10.0]
    rows = {r.name: r for r in accuracy.accuracy(truth, proposed, unit)}
    r = rows["r_wrist"]
    assert (r.compared, r.named, r.either_side) == (1, 1.0, 1.0)
    assert r.pck == {1.0: 0.0, 0.5: 0.0}  # its own proposal is 20 px away
    assert r.pck_any_side == {1.0: 1.0, 0.5: 1.0}  # the mirror one is 4 px away
    assert rows["l_wrist"].pck_any_side == {1.0: 1.0, 0.5: 1.0}  # 1 px from l_wrist's own
    assert rows["neck"].named == 0.0 and rows["neck"].pck[1.0] == 0.0
    total = rows["all joints"]
    assert total.compared == 3
    assert total.named == pytest.approx(2 / 3) and total.pck_any_side[0.5] == pytest.approx(2 / 3)
    assert np.isnan(rows["forehead"].named)  # nothing compared
    # compare: only the visible joints
    visible = accuracy.accuracy(truth, proposed, unit, truth[..., 2] == 2)
    assert visible[-1].compared == 2
    assert "r_wrist" in accuracy.format_table(visible)


def test_read_labels(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"persons": [
        {"voc_id": "2008_000001", "instance": 2, "joints": {"neck": [3, 4, 2], "l_hip": [5, 6, 1]}}]}))
    labels = accuracy.read_labels(path)
    joints = labels["2008_000001", 2]
    assert joints[NECK].tolist() == [3, 4, 2] and joints[:, 2].sum() == 3


@pytest.mark.parametrize("doc, message", [
    ("{", "labels.json"),
    ('{"people": []}', "list 'persons'"),
    ('{"persons": [{"voc_id": "x", "instance": 1}]}', "needs voc_id"),
    ('{"persons": [{"voc_id": "x", "instance": 1, "joints": {"chin": [1, 2, 2]}}]}',
     "unknown joint 'chin'"),
    ('{"persons": [{"voc_id": "x", "instance": 1, "joints": {"neck": [1, 2, 0]}}]}',
     r"\[x, y, v\]"),
    ('{"persons": [{"voc_id": "x", "instance": 1, "joints": {}},'
     ' {"voc_id": "x", "instance": 1, "joints": {}}]}', "listed twice"),
])
def test_broken_label_files_name_the_record(tmp_path, doc, message):
    path = tmp_path / "labels.json"
    path.write_text(doc)
    with pytest.raises(InputError, match=message):
        accuracy.read_labels(path)


def test_link_part_samples_refuses_an_empty_folder(tmp_path):
    with pytest.raises(InputError, match="holds no"):
        accuracy.link_part_samples(tmp_path, tmp_path / "raw")
