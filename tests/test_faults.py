"""Faults and hostile files: nothing silent, nothing lost, nothing executed.

One test (or a few) per item of the reliability contract, through the public API, on
the tiny BERT and the tiny AWD-LSTM: interrupts sent for real, a failing writer,
planted ``auto_map`` code answered "y" on stdin, tampered model folders; then
property-based tests feeding generated texts and targets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

import sktext.classification
from sktext import (
    TransformerEmbedder,
    TransformerMultiLabelClassifier,
    TransformerRegressor,
    ULMFiTClassifier,
    load_model,
    save_model,
)
from sktext.callbacks import TrainingCheckpoint
from sktext.cli import main
from sktext.language_model import LanguageModel, LanguageModelNet, fine_tune_language_model
from sktext.net import TextNet
from sktext.persistence import MANIFEST_FILE, read_safetensors_header
from sktext.reliability import TrainingDivergedError

from conftest import ULMFIT_DEFAULTS, build_tiny_bert, make_toy_data

ROOT = Path(__file__).resolve().parents[1]
FIT = dict(max_epochs=2, batch_size=16, lr=3e-3, random_state=0)


@pytest.fixture(scope="module")
def data():
    return make_toy_data(64, seed=3)


@pytest.fixture(scope="module")
def fitted(tiny_bert, data):
    X, Y = data
    return TransformerMultiLabelClassifier(tiny_bert, **FIT).fit(X, Y)


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    return save_model(fitted, tmp_path_factory.mktemp("faults") / "model")


def _copy(folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(folder, tmp_path / name))


def _edit_manifest(folder: Path, edit) -> None:
    path = folder / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


# A process started in the background of a non-interactive shell (``nohup pytest ... &``, a CI
# step) inherits SIGINT as ignored, and Python then installs no KeyboardInterrupt handler: a
# SIGINT would be dropped. The tests that send one therefore set the handler they rely on, in
# this process (the fixture below) and in the child they start (``SKTEXT_WITH_SIGINT_HANDLER``).
@pytest.fixture
def sigint_raises_keyboard_interrupt():
    """For the test's duration, SIGINT raises ``KeyboardInterrupt`` here, as at a terminal."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous is not None:  # None: a handler not set from Python, which cannot be put back
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def sigint_on_batch(monkeypatch, sigint_raises_keyboard_interrupt):
    """``sigint_on_batch(net_class, batch)``: a real SIGINT to this process in the ``batch``-th step."""

    def arm(net_class, batch: int) -> None:
        original = net_class.train_step_single
        calls = []

        def step(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == batch:
                os.kill(os.getpid(), signal.SIGINT)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(net_class, "train_step_single", step)

    return arm


# ``python -m sktext``, in a child that sets Python's SIGINT handler itself: a child inherits
# SIGINT as ignored from an ignoring parent (and exec resets the parent's handler, whatever it is).
SKTEXT_WITH_SIGINT_HANDLER = [
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('sktext', run_name='__main__', alter_sys=True)",
]


def _state(estimator) -> dict:
    return dict(vars(estimator))


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


# -- 1. interrupts -------------------------------------------------------------------------------
def test_sigint_mid_epoch_propagates_and_keeps_the_previous_model(fitted, data, sigint_on_batch):
    X, Y = data
    before, proba = _state(fitted), fitted.predict_proba(X)
    sigint_on_batch(TextNet, batch=3)
    with pytest.raises(KeyboardInterrupt):
        fitted.fit(X, Y)
    assert _state(fitted).keys() == before.keys()
    assert all(vars(fitted)[key] is value for key, value in before.items())
    np.testing.assert_array_equal(fitted.predict_proba(X), proba)


def test_an_interrupted_first_fit_leaves_an_unfitted_estimator(tiny_bert, data, sigint_on_batch):
    X, Y = data
    estimator = TransformerMultiLabelClassifier(tiny_bert, **FIT)
    before = _state(estimator)
    sigint_on_batch(TextNet, batch=2)
    with pytest.raises(KeyboardInterrupt):
        estimator.fit(X, Y)
    assert _state(estimator) == before
    with pytest.raises(NotFittedError):
        estimator.predict(X)


@pytest.mark.parametrize("stage", ["language model", "classifier"])
def test_ulmfit_interrupted_in_either_stage(data, sigint_on_batch, stage):
    X, Y = data
    estimator = ULMFiTClassifier(**{**ULMFIT_DEFAULTS, "max_epochs": 2})
    sigint_on_batch(LanguageModelNet if stage == "language model" else TextNet, batch=2)
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="from scratch"):
        estimator.fit(X, Y)
    assert not hasattr(estimator, "module_") and not hasattr(estimator, "vocabulary_")


def test_interrupt_while_tuning_thresholds(fitted, data, monkeypatch):
    X, Y = data
    before = _state(fitted)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sktext.classification, "tune_thresholds", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fitted.fit(X, Y)
    assert all(vars(fitted)[key] is value for key, value in before.items()) and vars(fitted).keys() == before.keys()


def test_early_stopping_is_not_an_interrupt(tiny_bert, data):
    X, Y = data
    estimator = TransformerMultiLabelClassifier(tiny_bert, **{**FIT, "max_epochs": 30, "patience": 1, "lr": 1e-6})
    estimator.fit(X, Y)
    assert len(estimator.history_) < 30


def test_cli_fit_interrupted_by_sigint(tiny_bert, data, tmp_path):
    X, Y = data
    train = tmp_path / "train.jsonl"
    with open(train, "w", encoding="utf-8") as handle:
        for text, row in zip(X, Y):
            handle.write(json.dumps({"text": text, "labels": [str(j) for j in np.flatnonzero(row)]}) + "\n")
    out = tmp_path / "model"
    command = [*SKTEXT_WITH_SIGINT_HANDLER, "fit", str(train), "--labels-column", "labels", "--model", "transformer"]
    # no early stopping: the fit is still running when the signal comes, however loaded the machine
    command += ["--param", f"model_name_or_path={tiny_bert}", "max_epochs=500", "patience=None"]
    command += ["--out", str(out), "--quiet"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("fitting"):
            break
    time.sleep(2.0)
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130
    assert rest.strip().splitlines()[-1] == "sktext fit: interrupted; nothing was saved."
    assert not out.exists()
    assert not list(tmp_path.glob(".model*")), "no temporary folder is left behind"


# -- 2. checkpoints ------------------------------------------------------------------------------
@pytest.mark.parametrize("steps_per_epoch", [None, 3])  # 3: epochs that end mid-pass
def test_a_fit_interrupted_after_epoch_2_of_4_resumes_where_it_stopped(
    tiny_bert, data, tmp_path, monkeypatch, steps_per_epoch
):
    X, Y = data
    params = {**FIT, "max_epochs": 4, "patience": None, "steps_per_epoch": steps_per_epoch}
    reference = TransformerMultiLabelClassifier(tiny_bert, **params).fit(X, Y)

    original = TrainingCheckpoint.on_epoch_end

    def interrupt_after_epoch_2(self, net, **kwargs):
        original(self, net, **kwargs)
        if len(net.history) == 2:
            raise KeyboardInterrupt

    estimator = TransformerMultiLabelClassifier(tiny_bert, **params, checkpoint_dir=tmp_path / "checkpoints")
    with monkeypatch.context() as patch:
        patch.setattr(TrainingCheckpoint, "on_epoch_end", interrupt_after_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            estimator.fit(X, Y)
    assert not hasattr(estimator, "module_")
    assert len(list((tmp_path / "checkpoints").glob("*/train.pt"))) == 1
    estimator.fit(X, Y)  # the same call: resumes at epoch 3
    resumed = estimator.history_[:, "valid_loss"]
    assert len(resumed) == 4
    np.testing.assert_allclose(resumed, reference.history_[:, "valid_loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(estimator.predict_proba(X), reference.predict_proba(X), rtol=1e-4, atol=1e-5)


def test_ulmfit_resumes_in_a_later_stage(data, tmp_path, monkeypatch):
    X, Y = data
    params = {**ULMFIT_DEFAULTS, "max_epochs": 3, "gradual_unfreezing": True, "patience": None}
    with pytest.warns(UserWarning, match="from scratch"):
        reference = ULMFiTClassifier(**params).fit(X, Y)
    original = TrainingCheckpoint.on_epoch_end

    def interrupt_in_stage_2(self, net, **kwargs):
        original(self, net, **kwargs)
        if Path(self.path).name == "stage-2.pt":
            raise KeyboardInterrupt

    estimator = ULMFiTClassifier(**params, checkpoint_dir=tmp_path)
    with monkeypatch.context() as patch, pytest.warns(UserWarning, match="from scratch"):
        patch.setattr(TrainingCheckpoint, "on_epoch_end", interrupt_in_stage_2)
        with pytest.raises(KeyboardInterrupt):
            estimator.fit(X, Y)
    with pytest.warns(UserWarning, match="from scratch"):
        estimator.fit(X, Y)
    np.testing.assert_allclose(
        estimator.history_[:, "valid_loss"], reference.history_[:, "valid_loss"], rtol=1e-5, atol=1e-6
    )


def test_checkpoint_dir_is_not_saved_in_the_model_folder(tiny_bert, data, tmp_path):
    X, Y = data
    estimator = TransformerMultiLabelClassifier(
        tiny_bert, **{**FIT, "max_epochs": 1}, checkpoint_dir=tmp_path / "checkpoints"
    ).fit(X, Y)
    folder = save_model(estimator, tmp_path / "model")
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert "checkpoint_dir" in manifest["dropped_params"] and str(tmp_path) not in json.dumps(manifest["params"])


# -- 3. divergence ------------------------------------------------------------------------------
def test_a_nan_loss_stops_fit_naming_the_learning_rate(tiny_bert, data, monkeypatch):
    X, Y = data
    original = TextNet.get_loss

    def nan_loss(self, *args, **kwargs):
        return original(self, *args, **kwargs) * float("nan")

    monkeypatch.setattr(TextNet, "get_loss", nan_loss)
    estimator = TransformerMultiLabelClassifier(tiny_bert, **FIT)
    with pytest.raises(TrainingDivergedError, match=r"training loss became nan.*lr=0\.003.*lower learning rate"):
        estimator.fit(X, Y)
    assert not hasattr(estimator, "module_")


def test_a_huge_learning_rate_is_refused_or_stopped(tiny_bert, data):
    X, Y = data
    with pytest.raises(ValueError, match="'lr' parameter"):
        TransformerMultiLabelClassifier(tiny_bert, **{**FIT, "lr": float("inf")}).fit(X, Y)
    with pytest.raises(ValueError, match="each finite"):
        TransformerMultiLabelClassifier(tiny_bert, **FIT, pos_weight=[float("nan"), 1.0, 1.0]).fit(X, Y)
    estimator = TransformerRegressor(tiny_bert, **{**FIT, "lr": 1e30, "gradient_clip_norm": None})
    try:
        estimator.fit(X, Y * 1e30)
    except ValueError as error:  # diverged: stopped with the fix, or weights refused
        assert "lr" in str(error)
    else:
        assert np.isfinite(estimator.predict(X)).all()


def test_no_nan_reaches_predict_or_the_cli(fitted, data, saved, tmp_path, capsys):
    X, _ = data
    broken = _copy(saved, tmp_path)
    model = load_model(broken)
    with torch.no_grad():
        model.module_.output_layer.weight.fill_(float("nan"))
    for method in (model.predict, model.predict_proba, model.decision_function):
        with pytest.raises(ValueError, match="non-finite"):
            method(X)
    save_model(model, broken, overwrite=True)
    with pytest.raises(ValueError, match="not finite"):
        load_model(broken)
    data_file = tmp_path / "new.jsonl"
    data_file.write_text("".join(json.dumps({"text": text}) + "\n" for text in X[:5]), encoding="utf-8")
    assert main(["predict", str(broken), str(data_file), "--out", str(tmp_path / "p.jsonl"), "--proba"]) == 2
    assert "not finite" in capsys.readouterr().err and not (tmp_path / "p.jsonl").exists()
    assert main(["predict", str(saved), str(data_file), "--out", str(tmp_path / "p.jsonl"), "--proba"]) == 0
    for line in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in the JSONL"))


# -- 4. atomic saves -----------------------------------------------------------------------------
@pytest.mark.parametrize("fault", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failing_save_keeps_the_old_model(fitted, data, saved, tmp_path, monkeypatch, fault):
    X, _ = data
    folder = _copy(saved, tmp_path, "model")
    manifest = (folder / MANIFEST_FILE).read_text(encoding="utf-8")
    import sktext.persistence

    def failing_writer(*args, **kwargs):
        raise fault

    monkeypatch.setattr(sktext.persistence, "_save_lexical", failing_writer)
    with pytest.raises(type(fault)):
        save_model(fitted, folder, overwrite=True)
    with pytest.raises(type(fault)):
        save_model(fitted, tmp_path / "new")
    assert (folder / MANIFEST_FILE).read_text(encoding="utf-8") == manifest
    assert not (tmp_path / "new").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"], "no temporary folder is left"
    np.testing.assert_array_equal(load_model(folder).predict_proba(X), fitted.predict_proba(X))


def test_a_leftover_temporary_folder_never_blocks_a_save(fitted, tmp_path):
    leftover = tmp_path / ".model.tmp-killed"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    folder = save_model(fitted, tmp_path / "model")
    save_model(fitted, folder, overwrite=True)
    assert load_model(folder).n_outputs_ == fitted.n_outputs_
    assert oct(folder.stat().st_mode & 0o777) != oct(0o700)


def test_overwrite_keeps_the_users_other_files(fitted, saved, tmp_path):
    folder = _copy(saved, tmp_path)
    (folder / "NOTES.md").write_text("mine", encoding="utf-8")
    save_model(fitted, folder, overwrite=True, metadata={"again": True})
    assert (folder / "NOTES.md").read_text(encoding="utf-8") == "mine"


@pytest.fixture(scope="module")
def language_model():
    corpus = ["the cat sat on the mat . the dog ate the bone ."] * 20
    return fine_tune_language_model(
        corpus, preset="tiny", batch_size=4, bptt=10, min_freq=1, lm_epochs=1, random_state=0, device="cpu"
    )


@pytest.mark.parametrize("fault", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failing_language_model_save_keeps_the_old_one(language_model, tmp_path, monkeypatch, fault):
    folder = language_model.save(tmp_path / "lm")
    manifest = (folder / MANIFEST_FILE).read_text(encoding="utf-8")
    (folder / "NOTES.md").write_text("mine", encoding="utf-8")

    def failing_save(*args, **kwargs):
        raise fault

    monkeypatch.setattr(type(language_model.vocabulary), "save", failing_save)
    with pytest.raises(type(fault)):
        language_model.save(folder, overwrite=True)
    with pytest.raises(type(fault)):
        language_model.save(tmp_path / "new")
    assert (folder / MANIFEST_FILE).read_text(encoding="utf-8") == manifest
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lm"], "no temporary folder is left"
    monkeypatch.undo()
    language_model.save(folder, overwrite=True)
    assert (folder / "NOTES.md").read_text(encoding="utf-8") == "mine"
    assert isinstance(LanguageModel.load(folder), LanguageModel)


def test_a_nan_language_model_loss_stops_naming_lm_lr(monkeypatch):
    original = LanguageModelNet.get_loss

    def nan_loss(self, *args, **kwargs):
        return original(self, *args, **kwargs) * float("nan")

    monkeypatch.setattr(LanguageModelNet, "get_loss", nan_loss)
    with pytest.raises(TrainingDivergedError, match=r"loss became nan.*lm_lr="):
        fine_tune_language_model(
            ["the cat sat on the mat ."] * 20, preset="tiny", batch_size=4, bptt=10, min_freq=1, lm_epochs=1
        )


def test_tampered_language_model_and_embedder_folders_are_refused(language_model, tiny_bert, data, tmp_path):
    folder = language_model.save(tmp_path / "lm")
    wrong_size = _copy(folder, tmp_path, "size")
    _edit_manifest(
        wrong_size, lambda manifest: manifest["config"].update(vocab_size=manifest["config"]["vocab_size"] + 1)
    )
    with pytest.raises(ValueError, match="shape"):
        load_model(wrong_size)
    outside = _copy(folder, tmp_path, "outside")
    _edit_manifest(outside, lambda manifest: manifest["module"]["files"].update(vocabulary="../vocabulary.json"))
    with pytest.raises(ValueError, match="outside the model folder"):
        load_model(outside)
    truncated = _copy(folder, tmp_path, "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16])
    with pytest.raises(ValueError, match="model.safetensors"):
        load_model(truncated)
    X, _ = data
    embedder = TransformerEmbedder(tiny_bert).fit(X[:8])
    saved_embedder = save_model(embedder, tmp_path / "embedder")
    np.testing.assert_allclose(load_model(saved_embedder).transform(X[:4]), embedder.transform(X[:4]), atol=1e-6)
    with_outputs = _copy(saved_embedder, tmp_path, "with-outputs")
    _edit_manifest(with_outputs, lambda manifest: manifest.update(n_outputs=3))
    with pytest.raises(ValueError, match="embedder"):
        load_model(with_outputs)


# -- 5. no code from files -----------------------------------------------------------------------
EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"


def _plant(folder: Path, config_name: str, marker: Path) -> None:
    (folder / "evil.py").write_text(EVIL.format(marker=str(marker)), encoding="utf-8")
    path = folder / config_name
    config = json.loads(path.read_text(encoding="utf-8"))
    config["auto_map"] = {
        "AutoConfig": "evil.EvilConfig",
        "AutoModel": "evil.EvilModel",
        "AutoTokenizer": ["evil.T", None],
    }
    path.write_text(json.dumps(config), encoding="utf-8")


def _run_answering_yes(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        input="y\ny\ny\n",
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=300,
    )


def test_planted_auto_map_code_never_runs_on_fit(tiny_bert, tmp_path):
    folder = _copy(Path(tiny_bert), tmp_path, "hub-model")
    marker = tmp_path / "marker"
    _plant(folder, "config.json", marker)
    code = (
        "from sktext import TransformerMultiLabelClassifier\n"
        "try:\n"
        f"    TransformerMultiLabelClassifier({str(folder)!r}, max_epochs=1, threshold=0.5,"
        " validation_fraction=None).fit(['a b', 'c d'], [[0, 1], [1, 0]])\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    result = _run_answering_yes(code, tmp_path)
    assert "asks for custom code" in result.stdout, result.stderr[-2000:]
    assert not marker.exists()


@pytest.mark.parametrize("where", ["tokenizer/tokenizer_config.json", "encoder/config.json"])
def test_planted_auto_map_code_never_runs_on_load(saved, tmp_path, where):
    folder = _copy(saved, tmp_path, "shared-model")
    marker = tmp_path / "marker"
    _plant(folder / Path(where).parent, Path(where).name, marker)
    code = f"from sktext import load_model\ntry:\n    load_model({str(folder)!r})\nexcept ValueError as error:\n    print(error)\n"
    result = _run_answering_yes(code, tmp_path)
    assert "asks for custom code" in result.stdout and where.split("/")[0] in result.stdout, result.stderr[-2000:]
    assert not marker.exists()


# -- 6. targets ----------------------------------------------------------------------------------
def test_lists_of_label_names_are_refused_with_the_fix(tiny_bert):
    with pytest.raises(ValueError, match=r"lists of label names.*MultiLabelBinarizer\(\)"):
        TransformerMultiLabelClassifier(tiny_bert, **FIT).fit(["a", "b"], [["game", "audio"], ["editor", "game"]])


def test_object_arrays_of_0_1_are_multilabel(tiny_bert, data):
    X, Y = data
    params = {**FIT, "max_epochs": 1}
    as_int = TransformerMultiLabelClassifier(tiny_bert, **params).fit(X, Y)
    as_object = TransformerMultiLabelClassifier(tiny_bert, **params).fit(X, Y.astype(object))
    assert as_object.output_layout_.is_multilabel and as_object.n_outputs_ == Y.shape[1]
    np.testing.assert_array_equal(as_object.predict_proba(X), as_int.predict_proba(X))


@pytest.mark.parametrize("validation_fraction", [0.25, None])
def test_one_label_column_fits(tiny_bert, data, validation_fraction):
    X, Y = data
    threshold = "auto" if validation_fraction else 0.5
    estimator = TransformerMultiLabelClassifier(
        tiny_bert, **FIT, validation_fraction=validation_fraction, threshold=threshold
    ).fit(X, Y[:, :1])
    assert estimator.predict(X).shape == (len(X), 1) and estimator.predict_proba(X).shape == (len(X), 1)


# -- 7. load-time validation ----------------------------------------------------------------------
def _tamper_classes(manifest):
    manifest["classes"]["values"].append("extra")


def _tamper_thresholds(manifest):
    manifest["thresholds"]["__ndarray__"] = [-1.0, 2.0, 0.5]


def _tamper_batch_size(manifest):
    manifest["params"]["batch_size"] = 0


def _tamper_device(manifest):
    manifest["params"]["device"] = "meta"


def _tamper_path(manifest):
    manifest["module"]["files"]["weights"] = "../outside.safetensors"


def _tamper_absolute(manifest):
    manifest["module"]["files"]["tokenizer"] = "/etc"


def _tamper_n_outputs(manifest):
    manifest["n_outputs"] = 30_000_000  # the head alone would take 3.8 GB


def _tamper_outputs(manifest):
    n = 5_000  # classes and thresholds agree: the weights' header does not
    manifest["n_outputs"] = n
    manifest["classes"] = {"type": "int", "values": list(range(n))}
    manifest["thresholds"] = {"__ndarray__": [0.5] * n, "dtype": "<f8"}


@pytest.mark.parametrize(
    "tamper, match",
    [
        (_tamper_classes, "4 classes for n_outputs=3"),
        (_tamper_thresholds, r"threshold must lie in \[0, 1\]"),
        (_tamper_batch_size, "'batch_size' parameter"),
        (_tamper_device, "'device' parameter"),
        (_tamper_path, "outside the model folder"),
        (_tamper_absolute, "outside the model folder"),
        (_tamper_n_outputs, "3 classes for n_outputs=30000000"),
        (_tamper_outputs, r"model.safetensors holds 'output.weight' with shape \(3, 32\) but .* needs \(5000, 32\)"),
    ],
    ids=["classes", "thresholds", "batch_size", "device", "dotdot-path", "absolute-path", "n_outputs", "weights"],
)
def test_tampered_manifests_are_refused(saved, tmp_path, tamper, match):
    folder = _copy(saved, tmp_path)
    (tmp_path / "outside.safetensors").write_bytes((saved / "model.safetensors").read_bytes())
    _edit_manifest(folder, tamper)
    with pytest.raises(ValueError, match=match):
        load_model(folder)


def test_truncated_files_are_named(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"model\.safetensors is damaged or truncated"):
        load_model(folder)
    folder = _copy(saved, tmp_path, "tokenizer-broken")
    tokenizer = folder / "tokenizer" / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text(encoding="utf-8")[:200], encoding="utf-8")
    with pytest.raises(ValueError, match="damaged or refused encoding file .*tokenizer"):
        load_model(folder)
    with pytest.raises(ValueError, match="not a safetensors file or is truncated"):
        (tmp_path / "tiny.safetensors").write_bytes(b"\x01\x00")
        read_safetensors_header(tmp_path / "tiny.safetensors")


def test_a_damaged_lexical_part_is_named(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    path = folder / "lexical.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["thresholds"] = config["thresholds"][:1]
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match=r"lexical\.json and lexical\.safetensors"):
        load_model(folder)


def test_the_manifest_holds_no_absolute_path_of_the_author(saved, tiny_bert):
    for path in saved.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".txt"):
            assert tiny_bert not in path.read_text(encoding="utf-8"), path
    params = json.loads((saved / MANIFEST_FILE).read_text(encoding="utf-8"))["params"]
    assert params["model_name_or_path"] == Path(tiny_bert).name


# -- 8. small data -------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["transformer", "ulmfit"])
@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_small_data_fits_or_says_what_to_do(tiny_bert, family, n, recwarn):
    X, Y = make_toy_data(n, seed=n)
    if family == "transformer":
        estimator = TransformerMultiLabelClassifier(tiny_bert, **{**FIT, "max_epochs": 1})
    else:
        estimator = ULMFiTClassifier(**{**ULMFIT_DEFAULTS, "max_epochs": 1, "bptt": 4, "batch_size": 4})
    try:
        estimator.fit(X, Y)
    except ValueError as error:
        assert "validation_fraction=None" in str(error) or "batch_size" in str(error), error
        estimator.set_params(validation_fraction=None, threshold=0.5)
        estimator.fit(X, Y)
    assert estimator.predict(X).shape == Y.shape


# -- 9. truncation and text encoding -----------------------------------------------------------
def test_a_tokenizer_without_model_max_length_and_long_texts(tmp_path, data):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(build_tiny_bert(tmp_path / "short"))
    config = BertConfig.from_pretrained(folder)
    config.max_position_embeddings = 24
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer_config = folder / "tokenizer_config.json"
    settings_ = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    settings_.pop("model_max_length", None)
    tokenizer_config.write_text(json.dumps(settings_), encoding="utf-8")
    assert BertTokenizerFast.from_pretrained(folder).model_max_length > 10**6
    X, Y = data
    long_texts = [text + " game" * 100 for text in X]
    estimator = TransformerMultiLabelClassifier(str(folder), **{**FIT, "max_epochs": 1}, max_length=256)
    estimator.fit(long_texts, Y)
    assert estimator.predict_proba(long_texts).shape == Y.shape


def test_lone_surrogates_are_refused_naming_the_index(fitted, data):
    X, Y = data
    texts = list(X)
    texts[5] = "broken \udc80 text"
    with pytest.raises(ValueError, match=r"X\[5\] is not valid Unicode"):
        fitted.predict(texts)
    with pytest.raises(ValueError, match=r"X\[5\] is not valid Unicode"):
        TransformerMultiLabelClassifier("unused").fit(texts, Y)


# -- 10. global random state ---------------------------------------------------------------------
def test_fit_and_predict_leave_the_global_random_state(tiny_bert, data):
    X, Y = data
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    estimator = TransformerMultiLabelClassifier(tiny_bert, **{**FIT, "max_epochs": 1}).fit(X, Y)
    estimator.predict(X)
    estimator.predict_proba(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


# -- what held, and must keep holding ------------------------------------------------------------
def test_eight_threads_predict_bitwise_like_one(fitted, data):
    X, _ = data
    expected = fitted.predict_proba(X)
    results = [None] * 8

    def work(index):
        results[index] = fitted.predict_proba(X)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_label_names_with_dotdot_round_trip(tiny_bert, data, tmp_path):
    import pandas as pd

    X, Y = data
    names = ["../../etc/passwd", "..", "a/../b"]
    estimator = TransformerMultiLabelClassifier(tiny_bert, **{**FIT, "max_epochs": 1})
    estimator.fit(X, pd.DataFrame(Y, columns=names))
    before = sorted(path.name for path in tmp_path.iterdir())
    folder = save_model(estimator, tmp_path / "model")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*before, "model"])
    assert list(load_model(folder).classes_) == names


@pytest.mark.parametrize("suffix", [".bin", ".pkl", ".pth"])
def test_pickle_payloads_are_refused(tmp_path, suffix):
    import pickle

    from sktext.language_model import load_fastai_weights

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "ran"))

    payload = tmp_path / f"weights{suffix}"
    payload.write_bytes(pickle.dumps(Payload(), protocol=2))
    vocab = tmp_path / f"vocab{suffix}"
    vocab.write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(ValueError):
        load_fastai_weights(payload, ["a", "b"])
    with pytest.raises(ValueError):
        load_fastai_weights(payload, vocab)
    assert not marker.exists()


# -- 11. generated inputs ------------------------------------------------------------------------
WORDS = st.sampled_from(["game", "editor", "audio", "the", "", " ", "é", "東京", "🎮", "\x00", "\n", "a" * 50])
TEXTS = st.lists(st.lists(WORDS, max_size=6).map(" ".join), min_size=0, max_size=8)
SOME_TEXTS = st.lists(st.lists(WORDS, max_size=6).map(" ".join), min_size=1, max_size=8)
CELLS = st.one_of(
    st.sampled_from([0, 1, 2, -1, 0.5, True, False, None, float("nan"), "a", "b", "0", "1"]),
    st.integers(-3, 3),
)


def _targets(n_rows: int):
    """Targets of every shape and kind, most of them a valid 0/1 matrix (so that fits run)."""
    width = st.integers(0, 3)
    binary = st.integers(1, 3).flatmap(
        lambda w: st.lists(st.lists(st.sampled_from([0, 1]), min_size=w, max_size=w), min_size=n_rows, max_size=n_rows)
    )
    rows = width.flatmap(lambda w: st.lists(st.lists(CELLS, min_size=w, max_size=w), min_size=n_rows, max_size=n_rows))
    kinds = {
        "int": binary.map(np.array),
        "object": binary.map(lambda value: np.array(value, dtype=object)),
        "bool": binary.map(lambda value: np.array(value, dtype=bool)),
        "list": binary,
        "rows": rows,
        "object rows": rows.map(lambda value: np.array(value, dtype=object)),
        "flat": st.lists(st.sampled_from([0, 1, "x"]), min_size=n_rows, max_size=n_rows),
        "none": st.just(None),
    }
    weights = ["int"] * 4 + ["object", "bool", "list"] * 2 + ["rows"] * 2 + ["object rows", "flat", "none"]
    return st.sampled_from(weights).flatmap(kinds.__getitem__)


def _allowed(error: BaseException) -> bool:
    """A ValueError / TypeError raised by sktext itself, not from inside a dependency."""
    if not isinstance(error, (ValueError, TypeError)):
        return False
    frames = []
    traceback = error.__traceback__
    while traceback is not None:
        frames.append(traceback.tb_frame.f_code.co_filename)
        traceback = traceback.tb_next
    return "sktext" in Path(frames[-1]).parts


PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_generated_inputs_fit_or_raise_a_clear_error(tiny_bert, data):
    X = data.draw(SOME_TEXTS)
    n_rows = len(X) if data.draw(st.integers(0, 5)) else data.draw(st.integers(0, 9))
    y = data.draw(_targets(n_rows))
    estimator = TransformerMultiLabelClassifier(
        tiny_bert, max_epochs=1, batch_size=4, validation_fraction=None, threshold=0.5, lexical=None, device="cpu"
    )
    try:
        estimator.fit(X, y)
    except (ValueError, TypeError) as error:
        assert _allowed(error), f"{type(error).__name__} from inside a dependency: {error}"
        event(f"refused: {str(error)[:40]}")
        return
    event("fitted")
    predicted = estimator.predict(X)
    assert len(predicted) == len(X)


@PROPERTY_SETTINGS
@given(texts=st.one_of(TEXTS, st.lists(st.one_of(st.text(max_size=20), st.none(), st.integers()), max_size=6)))
def test_generated_texts_predict_or_raise_a_clear_error(fitted, texts):
    try:
        proba = fitted.predict_proba(texts)
    except (ValueError, TypeError) as error:
        assert _allowed(error), f"{type(error).__name__} from inside a dependency: {error}"
        event(f"refused: {str(error)[:40]}")
        return
    event("predicted")
    assert proba.shape == (len(texts), fitted.n_outputs_) and np.isfinite(proba).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_inputs_for_ulmfit(data):
    X = data.draw(st.lists(st.lists(WORDS, min_size=1, max_size=6).map(" ".join), min_size=2, max_size=10))
    y = data.draw(_targets(len(X)))
    estimator = ULMFiTClassifier(
        **{**ULMFIT_DEFAULTS, "max_epochs": 1, "bptt": 4, "batch_size": 4, "validation_fraction": None},
        threshold=0.5,
        lexical=None,
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            estimator.fit(X, y)
        except (ValueError, TypeError) as error:
            assert _allowed(error), f"{type(error).__name__} from inside a dependency: {error}"
            event(f"refused: {str(error)[:40]}")
            return
    event("fitted")
    assert len(estimator.predict(X)) == len(X)
