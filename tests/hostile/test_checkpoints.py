"""Damaged and hand-edited training directories: every one ends in one line naming the file
and the field, exit code 2, never a traceback (``ppp-baseline predict`` and ``train``)."""

import dataclasses
import io
import json
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from reference_model.checkpoint import load_checkpoint, save_checkpoint
from reference_model.cli import main
from reference_model.config import TINY, config_to_dict
from reference_model.fcrf import PairwiseModel
from reference_model.fcrf.features import NUM_OFFSET_FEATURES, NUM_PAIR_TYPES
from reference_model.model import MODEL_FILE, TRAIN_LOG, Networks, pairwise_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_canonical_dataset(tmp_path_factory.mktemp("data"))


def pairwise_model(use_segment_features: bool) -> PairwiseModel:
    shape = (NUM_PAIR_TYPES, NUM_OFFSET_FEATURES)
    empty = PairwiseModel(np.zeros((NUM_PAIR_TYPES, 0)), np.zeros(shape), np.ones(shape),
                          use_segment_features)
    return dataclasses.replace(empty, weights=np.zeros((NUM_PAIR_TYPES, empty.num_inputs)))


@pytest.fixture
def trained(tmp_path):
    """A complete training directory with random networks (what predict reads)."""
    torch.manual_seed(0)
    out = tmp_path / "model"
    save_checkpoint(out / MODEL_FILE, TINY, Networks.build(TINY).modules())
    for use_segment in (True, False):
        pairwise_model(use_segment).save(out / pairwise_file(use_segment))
    (out / TRAIN_LOG).write_text(json.dumps({"data": "somewhere"}))
    return out


def one_line_error(args, *fragments):
    """Run ``ppp-baseline ARGS``: exit 2 and one line holding every fragment."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def predict_args(trained, data, tmp_path):
    return ["predict", "--checkpoint", trained, "--data", data["root"], "--out",
            tmp_path / "submission", "--quiet"]


def rewrite(path, change):
    """Load a checkpoint's raw payload, let ``change`` edit it, save it back."""
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)


@pytest.mark.parametrize("edit, field, message", [
    (lambda c: c["zoom"].update(crop_size="abc"), "config.zoom.crop_size",
     "expected an integer, got 'abc'"),
    (lambda c: c["zoom"].update(crop_size=True), "config.zoom.crop_size", "an integer"),
    (lambda c: c["zoom"].update(crop_size=-128), "config.zoom.crop_size", ">= 1"),
    (lambda c: c["zoom"].update(margin=float("nan")), "config.zoom.margin", "finite"),
    (lambda c: c["part"]["backbone"].update(stages=[[16], "a"]),
     "config.part.backbone.stages[1]", "a non-empty list"),
    (lambda c: c["part"]["backbone"].update(dropout=1.5), "config.part.backbone.dropout",
     "< 1"),
    (lambda c: c["pose"]["backbone"].update(block="giant"), "config.pose.backbone.block",
     "one of ['bottleneck', 'basic']"),
    (lambda c: c["pose"]["backbone"].update(output_stride=7),
     "config", "does not build the networks"),
    (lambda c: c.pop("fcrf"), "config", "missing key 'fcrf'"),
    (lambda c: c["refine"].update(use_pose="yes"), "config.refine.use_pose", "bool"),
    (lambda c: c.update(name=["tiny"]), "config.name", "str"),
], ids=["string", "bool", "negative", "nan", "nested list", "fraction", "literal",
        "unbuildable", "missing section", "flag", "name"])
def test_wrong_typed_configs(trained, data, tmp_path, edit, field, message):
    rewrite(trained / MODEL_FILE, lambda payload: edit(payload["config"]))
    one_line_error(predict_args(trained, data, tmp_path), str(trained / MODEL_FILE),
                   f"field {field}", message)


@pytest.mark.parametrize("edit, field, message", [
    (lambda p: p.update(step="10"), "step", "integer"),
    (lambda p: p.update(modules=[1, 2]), "modules", "state dicts"),
    (lambda p: p["modules"]["pose"].update(bad=[1.0, 2.0]), "modules.pose",
     "not a named tensor"),
    (lambda p: p["modules"]["pose"].pop("offset_std"), None, "does not fit"),
    (lambda p: p.update(format="ppp-reference-model/1"), "format", "another version"),
    (lambda p: p.update(format=3), "format", "not a reference-model checkpoint"),
], ids=["step", "modules", "tensor", "missing weights", "old format", "foreign"])
def test_malformed_checkpoints(trained, data, tmp_path, edit, field, message):
    rewrite(trained / MODEL_FILE, edit)
    fragments = [str(trained / MODEL_FILE), message] + ([f"field {field}"] if field else [])
    one_line_error(predict_args(trained, data, tmp_path), *fragments)


def test_truncated_and_foreign_model_files(trained, data, tmp_path):
    path = trained / MODEL_FILE
    path.write_bytes(path.read_bytes()[:5000])
    one_line_error(predict_args(trained, data, tmp_path), str(path), "not a readable checkpoint")
    path.write_bytes(b"")
    one_line_error(predict_args(trained, data, tmp_path), str(path), "not a readable checkpoint")


def truncated(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def garbage_member(path):
    """Valid zip, a member whose bytes are not a .npy array."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members["weights.npy"] = b"\x93NUMPY garbage"
    with zipfile.ZipFile(path, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)


def rewrite_npz(path, **changes):
    with np.load(path, allow_pickle=False) as saved:
        arrays = {k: saved[k] for k in saved.files}
    arrays.update(changes)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("damage, fragments", [
    (truncated, ["not a pairwise model .npz"]),
    (garbage_member, ["not a pairwise model .npz"]),
    (lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 40), ["not a pairwise model .npz"]),
    (lambda p: rewrite_npz(p, weights=np.full((91, 19), np.nan)),
     ["field weights", "non-finite"]),
    (lambda p: rewrite_npz(p, weights=np.array([["a"] * 19] * 91)),
     ["field weights", "expected numbers"]),
    (lambda p: rewrite_npz(p, use_segment_features=np.array([1, 0])),
     ["field use_segment_features", "expected one bool"]),
    (lambda p: rewrite_npz(p, use_segment_features=np.array(False), weights=np.zeros((91, 9))),
     ["field use_segment_features", "expected True"]),
    (lambda p: rewrite_npz(p, feature_params=np.array('{"boundary_radius": "x"}')),
     ["field feature_params"]),
    (lambda p: rewrite_npz(p, feature_params=np.array("[" * 100000)),
     ["field feature_params"]),
    (lambda p: rewrite_npz(p, format=np.array(7)), ["field format", "expected one str"]),
], ids=["truncated", "garbage member", "empty zip", "nan", "strings", "flag array",
        "swapped", "feature type", "deep json", "format type"])
def test_damaged_pairwise_models(trained, data, tmp_path, damage, fragments):
    path = trained / pairwise_file(True)
    damage(path)
    one_line_error(predict_args(trained, data, tmp_path), str(path), *fragments)


def train_args(data, out, **steps):
    options = {"detector_steps": 2, "fcn_steps": 0, **steps}
    args = ["train", "--data", data["root"], "--out", out, "--quiet", "--threads", "1",
            "--batch-size", "2", "--detector-batch-size", "2", "--stop-after", "detector"]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", value]
    return args


@pytest.fixture
def stopped(data, tmp_path):
    """A training directory stopped after the detector, with its resumable state."""
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [str(a) for a in train_args(data, out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("edit, field, message", [
    (lambda p: p.update(torch_rng=torch.randint(0, 255, (5056,), dtype=torch.uint8)),
     "torch_rng", "not a torch random state"),
    (lambda p: p.update(torch_rng=torch.zeros(10, dtype=torch.uint8)), "torch_rng",
     "not a torch random state"),
    (lambda p: p.update(torch_rng=torch.zeros(5056)), "torch_rng", "uint8"),
    (lambda p: p.update(generator="seed"), "generator", "not a torch random state"),
    (lambda p: p.update(numpy_rng={"bit_generator": "PCG64", "state": "x"}), "numpy_rng",
     "not a numpy random state"),
    (lambda p: p.update(numpy_rng=[1, 2]), "numpy_rng", "not a numpy random state"),
], ids=["garbage bytes", "short", "float", "generator", "numpy state", "numpy list"])
def test_garbage_random_states_on_resume(stopped, data, edit, field, message):
    state = stopped / "state" / "detector.pt"
    rewrite(state, edit)
    one_line_error(train_args(data, stopped), str(state), f"field {field}", message)


def test_foreign_optimizer_state_on_resume(stopped, data):
    state = stopped / "state" / "detector.pt"
    rewrite(state, lambda p: p["optimizers"]["detector"].update(param_groups=[]))
    one_line_error(train_args(data, stopped), str(state), "record optimizer detector",
                   "does not fit")
    assert load_checkpoint(state).step == 2  # the file itself is well-formed


@pytest.mark.parametrize("text, fragments", [
    ("{not json", ["not valid JSON"]),
    ("[" * 100000 + "]" * 100000, ["not valid JSON"]),
    ("[1, 2]", ["field stages", "not a training log"]),
    ('{"stages": {"detector": 3}}', ["field stages"]),
], ids=["syntax", "deep", "list", "stage"])
def test_hand_edited_train_log(stopped, data, text, fragments):
    log = stopped / TRAIN_LOG
    if "stages" in text:
        edited = json.loads(log.read_text())
        edited["stages"] = json.loads(text)["stages"]
        text = json.dumps(edited)
    log.write_text(text)
    one_line_error(train_args(data, stopped), str(log), *fragments)


def test_a_resumed_run_refuses_another_config(stopped, data):
    log = json.loads((stopped / TRAIN_LOG).read_text())
    assert log["config"] == config_to_dict(TINY)
    log["config"]["zoom"]["crop_size"] = 96
    (stopped / TRAIN_LOG).write_text(json.dumps(log))
    one_line_error(train_args(data, stopped), "field config", "another config")
