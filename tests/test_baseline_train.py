"""Stage-wise training: exact resume after a crash, the crops' geometry, budgets."""

import dataclasses
import json
import os
import signal

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.errors import InputError
from reference_model import training
from reference_model.checkpoint import load_checkpoint
from reference_model.cli import main as baseline_main
from reference_model.config import TINY
from reference_model.training import BUDGETS, TrainBudget, learning_rate, train
from reference_model.training.data import DetectorWindows, person_crop, training_persons
from reference_model.training.runtime import Runtime
from reference_model.training.stages import _DetectorProcess

BUDGET = dataclasses.replace(BUDGETS["tiny"], detector_steps=2, fcn_steps=4, batch_size=2,
                             detector_batch_size=2, checkpoint_every=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_canonical_dataset(tmp_path_factory.mktemp("data"))


class Crash(Exception):
    pass


def run(data, out, crash_at=None):
    """Train up to the FCNs; record every step's losses; crash at (stage, step)."""
    steps = []

    def on_step(stage, step, losses):
        if (stage, step) == crash_at:
            raise Crash
        steps.append((stage, step, losses))

    train(TINY, BUDGET, data["root"], out, stop_after="fcn", progress=False, on_step=on_step)
    return steps


def test_resume_after_a_crash_replays_the_same_steps(data, tmp_path):
    expected = run(data, tmp_path / "a")
    assert [(s, k) for s, k, _ in expected] == [("detector", 1), ("detector", 2),
                                                ("fcn", 1), ("fcn", 2), ("fcn", 3), ("fcn", 4)]
    with pytest.raises(Crash):
        run(data, tmp_path / "b", crash_at=("fcn", 4))  # the state of step 2 is on disk
    assert load_checkpoint(tmp_path / "b" / "state" / "fcn.pt").step == 2
    resumed = run(data, tmp_path / "b")
    assert resumed == expected[-2:]  # bit-identical losses (dropout included)
    a = load_checkpoint(tmp_path / "a" / "state" / "fcn.pt")
    b = load_checkpoint(tmp_path / "b" / "state" / "fcn.pt")
    for name in ("pose", "part"):
        for key, value in a.modules[name].items():
            assert torch.equal(value, b.modules[name][key]), key
    log = json.loads((tmp_path / "b" / "train.json").read_text())
    assert [entry[0] for entry in log["stages"]["fcn"]["loss"]] == [1, 2, 3, 4]
    assert log["stages"]["detector"]["steps"] == 2
    # Finished stages are loaded, not retrained; another budget is refused.
    assert run(data, tmp_path / "b") == []
    with pytest.raises(InputError, match="train.json.*another budget"):
        train(TINY, dataclasses.replace(BUDGET, fcn_steps=5), data["root"], tmp_path / "b",
              stop_after="fcn", progress=False)


def test_a_parallel_detector_trains_what_one_process_trains(data, tmp_path):
    train(TINY, BUDGET, data["root"], tmp_path / "one", stop_after="detector", progress=False)
    log = {"stages": {"fcn": {"seconds": 1.0, "loss": []}}}
    record = _DetectorProcess(TINY, BUDGET, data["root"], tmp_path / "two", 0, None,
                              log).record()
    assert record["steps"] == 2 and [entry[0] for entry in record["loss"]] == [1, 2]
    one = load_checkpoint(tmp_path / "one" / "state" / "detector.pt").modules["detector"]
    two = load_checkpoint(tmp_path / "two" / "state" / "detector.pt").modules["detector"]
    for key, value in one.items():  # the same initial weights, the same steps
        assert torch.equal(value, two[key]), key
    assert not (tmp_path / "two" / "train.json").exists()  # the parent's to write


def test_a_parallel_detector_reports_its_error(data, tmp_path, monkeypatch):
    state = tmp_path / "state" / "detector.pt"
    state.parent.mkdir()
    state.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="detector.pt"):
        _DetectorProcess(TINY, BUDGET, data["root"], tmp_path, 0, None, {"stages": {}}).record()
    with pytest.raises(InputError, match="on_step would not see"):
        train(TINY, BUDGET, data["root"], tmp_path / "b", progress=False,
              on_step=lambda *_: None, parallel_detector=True)
    two_processes = Runtime(rank=0, world=2, device=torch.device("cpu"))  # as under torchrun
    monkeypatch.setattr(Runtime, "start", classmethod(lambda cls, device="auto": two_processes))
    with pytest.raises(InputError, match="one CPU training process .this run: 2 on cpu"):
        train(TINY, BUDGET, data["root"], tmp_path / "c", progress=False,
              parallel_detector=True)


def test_a_killed_parallel_detector_is_one_line_and_exit_code_1(data, tmp_path, monkeypatch):
    """Out of memory, the kernel kills the detector's process: the parent says so in one
    line (no traceback) and how to resume."""
    budget = dataclasses.replace(BUDGET, detector_steps=100_000)
    detector = _DetectorProcess(TINY, budget, data["root"], tmp_path, 0, None, {"stages": {}})
    os.kill(detector.process.pid, signal.SIGKILL)
    with pytest.raises(ChildProcessError) as error:
        detector.record()
    assert str(error.value) == (
        "the detector's training process was killed by signal 9 (SIGKILL: out of memory, or "
        f"stopped from outside) before it finished; the states written so far are in "
        f"{tmp_path}: run the same command again to resume")

    def killed(*args, **kwargs):
        raise error.value

    monkeypatch.setattr(training, "train", killed)
    result = CliRunner().invoke(baseline_main, ["train", "--data", str(data["root"]), "--out",
                                                str(tmp_path / "model"), "--parallel-detector"])
    assert result.exit_code == 1
    assert result.output == f"error: {error.value}\n"


def test_pairwise_stage_needs_proposals(data, tmp_path):
    with pytest.raises(InputError, match="no pair of true joints.*--fcn-steps"):
        train(TINY, dataclasses.replace(BUDGET, detector_steps=0, fcn_steps=0), data["root"],
              tmp_path, stop_after="pairwise", progress=False)


def test_person_crops_mirror_exactly(data):
    dataset = Dataset(data["root"], "train")
    image_index, person, box = training_persons(dataset)[0]
    sample = dataset[image_index]
    crops = {}
    for seed in range(20):  # no jitter: the seed only decides the flip
        crop = person_crop(sample, image_index, box, TINY.zoom, np.random.default_rng(seed))
        crops[crop.flipped] = crop
    plain, mirrored = crops[False], crops[True]
    np.testing.assert_array_equal(mirrored.image, plain.image[:, ::-1])
    np.testing.assert_array_equal(mirrored.labels, plain.labels[:, ::-1])
    width = plain.image.shape[1]
    swapped = mirrored.keypoints[:, schema.FLIP_INDEX]
    labelled = plain.keypoints[..., 2] > 0
    np.testing.assert_array_equal(swapped[..., 2], plain.keypoints[..., 2])
    np.testing.assert_allclose(swapped[labelled][:, 0], width - 1 - plain.keypoints[labelled][:, 0])
    # A visible joint lies on its person's parts in the crop, as in the image.
    visible = plain.keypoints[person, :, 2] == 2
    xy = np.rint(plain.keypoints[person, visible, :2]).astype(int)
    parts = plain.labels[xy[:, 1], xy[:, 0]]
    allowed = [schema.JOINT_PART_IDS[j] for j in np.flatnonzero(visible)]
    assert np.mean([p in a for p, a in zip(parts, allowed)]) > 0.8
    assert plain.box[0] < plain.box[2] and 0 <= plain.box[0] and plain.box[2] <= width


def test_detector_windows_keep_boxes_on_their_people(data):
    dataset = Dataset(data["root"], "train")
    windows = DetectorWindows(dataset, 96, 72, 0.4, seed=0)  # 4:3, as the detector trains
    for epoch in range(3):
        windows.epoch = epoch
        for index in range(len(windows)):
            image, boxes = windows[index]
            assert image.shape == (72, 96, 3) and len(boxes) >= 1
            assert (boxes >= 0).all() and (boxes[:, 0::2] <= 96).all()
            assert (boxes[:, 1::2] <= 72).all()
            assert (boxes[:, 2:] - boxes[:, :2] >= 2).all()
    windows.epoch = 0
    a, b = windows[0], windows[0]
    np.testing.assert_array_equal(a[0], b[0])  # the same (epoch, item) draws the same window


def test_learning_rate_and_budget_checks():
    rates = [learning_rate(step, 100, 1.0) for step in range(100)]
    assert rates[0] == pytest.approx(0.2) and max(rates) == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(0.05, abs=0.01) and rates[4] > rates[50] > rates[99]
    with pytest.raises(InputError, match="batch_size must be >= 1"):
        TrainBudget(detector_steps=1, fcn_steps=1, refine_steps=1, batch_size=0,
                    detector_batch_size=1)
