"""``callbacks=[...]``: the user's skorch callbacks join the training runs, cloneable and searchable."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

from sktext import TransformerMultiLabelClassifier, ULMFiTClassifier, load_model

from conftest import ESTIMATOR_FACTORIES, make_toy_data

TRAINING_FACTORIES = {name: f for name, f in ESTIMATOR_FACTORIES.items() if f.kind in ("classifier", "regressor")}


class EpochRecorder(Callback):
    """Remembers what each epoch's history row held, and how many runs began."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag

    def initialize(self):
        self.runs_ = getattr(self, "runs_", 0)
        self.epochs_ = getattr(self, "epochs_", [])
        return self

    def on_train_begin(self, net, **kwargs):
        self.runs_ += 1

    def on_epoch_end(self, net, **kwargs):
        self.epochs_.append(dict(net.history[-1]))


def _targets(name, Y):
    return Y if TRAINING_FACTORIES[name].kind == "classifier" else Y[:, 0] * 2.0 - Y[:, 1]


@pytest.mark.parametrize("name", sorted(TRAINING_FACTORIES))
def test_every_estimator_runs_the_users_callbacks(name, resources, toy_data):
    texts, Y = toy_data
    recorder = EpochRecorder()
    estimator = TRAINING_FACTORIES[name].build(resources, max_epochs=3, callbacks=[recorder])
    estimator.fit(texts[:80], _targets(name, Y[:80]))
    assert recorder.runs_ == 1
    assert len(recorder.epochs_) == len(estimator.history_) == 3
    losses = [row["train_loss"] for row in recorder.epochs_]
    assert losses == [row["train_loss"] for row in estimator.history_]
    assert all("valid_loss" in row for row in recorder.epochs_)


def test_ulmfit_callbacks_see_every_unfreezing_stage(toy_data):
    texts, Y = toy_data
    recorder = EpochRecorder()
    classifier = ULMFiTClassifier(
        preset="tiny", lm_epochs=1, min_freq=1, bptt=16, max_epochs=4, batch_size=16, random_state=0,
        callbacks=[("recorder", recorder)],
    )  # fmt: skip
    classifier.fit(texts[:80], Y[:80])
    stages = {row["stage"] for row in classifier.history_}
    assert len(stages) > 1  # gradual unfreezing: several skorch runs
    assert recorder.runs_ == len(stages)
    assert len(recorder.epochs_) == len(classifier.history_)


def test_callbacks_clone_and_grid_search(tiny_bert):
    texts, Y = make_toy_data(60)
    recorder = EpochRecorder(tag="first")
    classifier = TransformerMultiLabelClassifier(tiny_bert, max_epochs=1, batch_size=16, callbacks=[recorder])
    cloned = clone(classifier)
    assert cloned.callbacks[0] is not recorder and cloned.callbacks[0].tag == "first"
    search = GridSearchCV(
        TransformerMultiLabelClassifier(tiny_bert, max_epochs=1, batch_size=16, random_state=0),
        {"callbacks": [None, [EpochRecorder(tag="searched")]]},
        cv=2,
        scoring="f1_micro",
    ).fit(texts, Y)
    assert [params["callbacks"] is None for params in search.cv_results_["params"]] == [True, False]


def test_callbacks_leave_the_fit_unchanged_and_are_not_saved(tiny_bert, tmp_path):
    texts, Y = make_toy_data(60)
    params = dict(max_epochs=2, batch_size=16, random_state=0)
    plain = TransformerMultiLabelClassifier(tiny_bert, **params).fit(texts, Y)
    observed = TransformerMultiLabelClassifier(tiny_bert, callbacks=[EpochRecorder()], **params).fit(texts, Y)
    np.testing.assert_array_equal(plain.predict_proba(texts), observed.predict_proba(texts))
    observed.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.callbacks is None
    np.testing.assert_allclose(loaded.predict_proba(texts), observed.predict_proba(texts), atol=1e-6)


@pytest.mark.parametrize(
    ("callbacks", "message"),
    [
        ([("early_stopping", EpochRecorder())], "'early_stopping' is taken by one of sktext's own callbacks"),
        ([("mine", EpochRecorder()), ("mine", EpochRecorder())], "'mine' is taken by another callback"),
        ([EpochRecorder, "print_log"], "The 'callbacks' parameter of TransformerMultiLabelClassifier must be"),
        (EpochRecorder(), "a list of skorch callbacks or \\(name, callback\\) pairs"),
    ],
)
def test_bad_callbacks_are_named(tiny_bert, callbacks, message):
    texts, Y = make_toy_data(40)
    with pytest.raises(ValueError, match=message):
        TransformerMultiLabelClassifier(tiny_bert, max_epochs=1, callbacks=callbacks).fit(texts, Y)
