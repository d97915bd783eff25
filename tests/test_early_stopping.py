"""Early stopping on the validation part's blended, threshold-tuned F1 (``monitor="valid_f1"``)."""

from __future__ import annotations

import numpy as np
import pytest

from sktext import TransformerMultiLabelClassifier

from conftest import make_toy_data, ulmfit_factory


@pytest.fixture(scope="module")
def toy():
    return make_toy_data(240, seed=0)


def _classifier(tiny_bert, **params):
    options = dict(max_epochs=4, lr=3e-3, batch_size=16, precision="fp32", random_state=0)
    return TransformerMultiLabelClassifier(tiny_bert, **{**options, **params})


@pytest.mark.parametrize("targets", ["0/1", "soft"])
def test_valid_f1_is_what_the_fit_then_scores_and_its_best_epoch_is_kept(tiny_bert, toy, targets):
    X, Y = toy
    if targets == "soft":  # probabilities: the blend learns them, the F1 reads their hard view
        Y = np.where(Y > 0, 0.9, 0.1) - 0.05 * np.random.default_rng(0).random(Y.shape)
    clf = _classifier(tiny_bert, monitor="valid_f1", patience=4).fit(X, Y)
    scores = [row["valid_f1"] for row in clf.history_]
    assert len(scores) == 4 and all(0 <= score <= 1 for score in scores)
    # The weights kept are the best epoch's: blended and tuned after training, they score as it did.
    assert clf.validation_scores_["f1_micro"] == pytest.approx(max(scores), abs=1e-9)


def test_the_first_epoch_is_scored_with_the_lexical_part(tiny_bert, toy):
    X, Y = toy
    frozen = dict(monitor="valid_f1", lr=1e-6, max_epochs=1)  # a network that learns nothing
    blended = _classifier(tiny_bert, **frozen).fit(X, Y)
    alone = _classifier(tiny_bert, lexical=None, **frozen).fit(X, Y)
    assert blended.history_[0]["valid_f1"] > 0.9 > alone.history_[0]["valid_f1"] + 0.2
    assert blended.fit_seconds_["lexical"] > 0


def test_a_score_that_stops_improving_stops_the_run(tiny_bert, toy):
    X, Y = toy
    clf = _classifier(tiny_bert, monitor="valid_f1", lr=1e-7, patience=1, max_epochs=6).fit(X, Y)
    scores = [row["valid_f1"] for row in clf.history_]
    assert len(scores) < 6
    assert max(scores[1:]) <= scores[0] + 1e-12  # no epoch beat the first by more than skorch's threshold


def test_loss_stays_the_default_and_watches_no_f1(tiny_bert, toy):
    X, Y = toy
    clf = _classifier(tiny_bert, max_epochs=2).fit(X, Y)
    assert clf.monitor == "valid_loss"
    assert "valid_f1" not in clf.history_[-1]


def test_ulmfit_stages_watch_it_too(toy):
    X, Y = toy
    clf = ulmfit_factory(None, monitor="valid_f1", max_epochs=2).fit(X, Y)
    assert "valid_f1" in clf.history_[-1]


def test_bad_monitor_values_and_targets_are_clear_errors(tiny_bert, toy):
    X, Y = toy
    with pytest.raises(ValueError, match="monitor.*valid_loss.*valid_f1"):
        _classifier(tiny_bert, monitor="f1").fit(X, Y)
    classes = np.array(["a", "b", "c"])[Y.argmax(axis=1)][:, None]
    with pytest.raises(ValueError, match="monitor='valid_f1'.*categorical.*monitor='valid_loss'"):
        _classifier(tiny_bert, monitor="valid_f1").fit(X, np.hstack([classes, classes]))


def test_the_model_card_names_the_best_f1_and_its_epoch(tiny_bert, toy, tmp_path):
    from sktext import save_model

    X, Y = toy
    clf = _classifier(tiny_bert, monitor="valid_f1", max_epochs=2).fit(X, Y)
    save_model(clf, tmp_path / "model")
    card = (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    scores = [row["valid_f1"] for row in clf.history_]
    best = int(np.argmax(scores))
    assert (
        f"best validation micro-F1 (blended, early stopping's measure) {scores[best]:.4g}, at epoch {best + 1}" in card
    )


def test_a_users_valid_f1_callback_is_refused_only_where_sktext_records_one(tiny_bert, toy):
    from skorch.callbacks import EpochScoring

    X, Y = toy
    mine = ("valid_f1", EpochScoring("f1_micro", lower_is_better=False, name="valid_f1"))
    with pytest.raises(ValueError, match="'valid_f1' is taken by one of sktext's own callbacks"):
        _classifier(tiny_bert, monitor="valid_f1", callbacks=[mine], max_epochs=1).fit(X, Y)
    clf = _classifier(tiny_bert, callbacks=[("mine", EpochScoring(lambda net, X, y: 0.5, name="valid_f1"))])
    clf.set_params(max_epochs=1).fit(X, Y)
    assert clf.history_[-1]["valid_f1"] == 0.5


# -- epochs of a fixed number of steps (``steps_per_epoch``) ---------------------------------
def _train_steps(row) -> int:
    return sum("train_loss" in batch for batch in row["batches"])


def test_steps_per_epoch_validates_every_k_steps_and_the_schedule_ends_with_the_last(tiny_bert, toy):
    X, Y = toy  # 216 texts to train on: 14 steps a pass
    clf = _classifier(tiny_bert, steps_per_epoch=5, max_epochs=4, patience=None).fit(X, Y)
    assert clf.n_epochs_ == 4 and len(clf.history_) == 4
    assert [_train_steps(row) for row in clf.history_] == [5, 5, 5, 5]
    assert all("valid_loss" in row for row in clf.history_)  # the validation part scored every 5 steps
    # The warm-up and decay span the 20 steps taken: the last step runs at the schedule's floor.
    rates = [batch["event_lr"] for row in clf.history_ for batch in row["batches"] if "event_lr" in batch]
    assert len(rates) == 20 and rates[-1] < 1e-3 * max(rates)
    by_pass = _classifier(tiny_bert, max_epochs=2, patience=None).fit(X, Y)
    assert [_train_steps(row) for row in by_pass.history_] == [14, 14]
    # Epochs of one pass's steps are the default's epochs: the same batches, the same model.
    same = _classifier(tiny_bert, steps_per_epoch=14, max_epochs=2, patience=None).fit(X, Y)
    np.testing.assert_allclose(same.history_[:, "valid_loss"], by_pass.history_[:, "valid_loss"], rtol=1e-6)
    np.testing.assert_allclose(same.predict_proba(X[:20]), by_pass.predict_proba(X[:20]), rtol=1e-5, atol=1e-6)


def test_auto_epochs_of_fixed_steps_keep_the_steps_of_auto_passes_and_patience_counts_them(tiny_bert, toy):
    X, Y = toy
    still = dict(max_epochs="auto", lr=1e-7, patience=1)  # learns nothing: stops after two epochs
    by_pass = _classifier(tiny_bert, **still).fit(X, Y)
    by_steps = _classifier(tiny_bert, steps_per_epoch=50, **still).fit(X, Y)
    steps = by_pass.n_epochs_ * _train_steps(by_pass.history_[0])  # what "auto" plans in passes
    assert by_steps.n_epochs_ * 50 >= steps > (by_steps.n_epochs_ - 1) * 50
    assert [_train_steps(row) for row in by_steps.history_] == [50, 50]  # patience 1: stopped after two


@pytest.mark.parametrize("value", [0, -3, 2.5, "auto"])
def test_a_bad_steps_per_epoch_is_a_clear_error(tiny_bert, toy, value):
    X, Y = toy
    with pytest.raises(ValueError, match="steps_per_epoch.*None is one pass"):
        _classifier(tiny_bert, steps_per_epoch=value).fit(X, Y)
