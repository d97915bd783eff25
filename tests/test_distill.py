"""DistilledClassifier: a student fitted on a teacher's probabilities, thresholds tuned on real labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline

from sktext import TransformerMultiLabelClassifier, load_model
from sktext.distill import DistilledClassifier, shallow_encoder
from sktext.lexical import TfidfLinearClassifier

from conftest import TOPIC_WORDS, make_toy_data


class KeywordTeacher(BaseEstimator):
    """A fitted teacher that knows the toy's labels but is under-confident: 0.3 where a label holds, else 0.02.

    Its hard view (p >= 0.5) has no positive at all, so a student whose thresholds were
    tuned on it could not recover the labels.
    """

    def fit(self, X, y):
        self.fitted_ = True
        return self

    def predict_proba(self, X):
        return np.array(
            [[0.3 if set(text.split()) & set(words) else 0.02 for words in TOPIC_WORDS.values()] for text in X]
        )


def lexical_student(**params):
    return TfidfLinearClassifier(loss="log_loss", C=10.0, random_state=0, **params)


def test_thresholds_come_from_real_labels_not_from_the_teachers_hard_view():
    texts, Y = make_toy_data(300, seed=0)
    unlabeled, _ = make_toy_data(400, seed=1)
    teacher = KeywordTeacher().fit(texts, Y)
    distilled = DistilledClassifier(teacher, lexical_student(), random_state=0).fit(texts, Y, X_unlabeled=unlabeled)
    assert distilled.teacher_ is teacher  # a fitted teacher is used as it is
    assert distilled.n_student_texts_ == 270 + 400  # the held-out tenth is not trained on
    assert (distilled.thresholds_ < 0.5).all()
    new_texts, Y_new = make_toy_data(200, seed=2)
    assert f1_score(Y_new, distilled.predict(new_texts), average="micro") > 0.9
    # the student alone predicts as the distilled model: its thresholds were replaced
    np.testing.assert_array_equal(distilled.student_.predict(new_texts), distilled.predict(new_texts))
    assert distilled.validation_scores_["f1_micro"] > 0.9


class BlindTeacher(KeywordTeacher):
    """A fitted teacher that knows nothing: 0.1 for every label of every text."""

    def predict_proba(self, X):
        return np.full((len(X), len(TOPIC_WORDS)), 0.1)


def test_label_weight_mixes_the_real_labels_into_the_labeled_texts_targets():
    texts, Y = make_toy_data(300, seed=0)
    new_texts, Y_new = make_toy_data(200, seed=2)
    teacher = BlindTeacher().fit(texts, Y)
    f1 = {}
    for weight in (0.0, 1.0):
        distilled = DistilledClassifier(teacher, lexical_student(), label_weight=weight, random_state=0)
        f1[weight] = f1_score(Y_new, distilled.fit(texts, Y).predict(new_texts), average="micro")
    # taught by the blind teacher alone the student learns nothing (about 0.57 here: every label on every
    # text); with the real labels mixed in it learns them
    assert f1[1.0] > 0.9 and f1[0.0] < 0.7


def test_centring_on_the_teachers_thresholds_teaches_its_decisions_to_a_hard_view_student():
    texts, Y = make_toy_data(300, seed=0)
    unlabeled, _ = make_toy_data(400, seed=1)
    new_texts, Y_new = make_toy_data(200, seed=2)
    teacher = KeywordTeacher().fit(texts, Y)  # 0.3 where a label holds: never 0.5, so its hard view is empty
    svm_student = TfidfLinearClassifier(random_state=0)  # linear SVMs: they learn the hard view (p >= 0.5)
    f1 = {}
    for centre in (False, True):
        teacher.thresholds_ = np.full(len(TOPIC_WORDS), 0.2)  # the teacher predicts a label from 0.2
        distilled = DistilledClassifier(teacher, svm_student, centre_on_thresholds=centre, random_state=0)
        distilled.fit(texts, Y, X_unlabeled=unlabeled)
        f1[centre] = f1_score(Y_new, distilled.predict(new_texts), average="micro")
    # centred, 0.3 becomes 0.63 and 0.02 becomes 0.08: the hard view holds the teacher's decisions
    assert f1[True] > 0.9 and f1[False] < 0.7
    del teacher.thresholds_
    with pytest.raises(ValueError, match=r"centre_on_thresholds=True needs the teacher's per-label thresholds_"):
        DistilledClassifier(teacher, svm_student, centre_on_thresholds=True).fit(texts, Y)


class SpyTeacher(KeywordTeacher):
    """A KeywordTeacher that keeps the texts it was asked to label: the student's texts."""

    def predict_proba(self, X):
        self.asked_ = list(X)
        return super().predict_proba(X)


def test_groups_hold_out_whole_groups_and_their_unlabeled_siblings():
    texts, Y = make_toy_data(300, seed=0)
    unlabeled, _ = make_toy_data(400, seed=1)
    texts, unlabeled = [f"{t} l{i}" for i, t in enumerate(texts)], [f"{t} u{i}" for i, t in enumerate(unlabeled)]
    groups, groups_unlabeled = np.arange(300) % 30, np.arange(400) % 40  # groups 30-39 have no labeled text
    teacher = SpyTeacher().fit(texts, Y)
    distilled = DistilledClassifier(teacher, lexical_student(), random_state=0)
    distilled.fit(texts, Y, X_unlabeled=unlabeled, groups=groups, groups_unlabeled=groups_unlabeled)
    group_of = {**dict(zip(unlabeled, groups_unlabeled)), **dict(zip(texts, groups))}
    asked = set(teacher.asked_)
    held_out = {group_of[text] for text in texts if text not in asked}
    assert len(held_out) == 3  # a tenth of the 30 labeled groups, whole
    assert not any(group_of[text] in held_out for text in asked)  # no sibling of a held-out text trains
    assert distilled.n_student_texts_ == len(asked) == 270 + 400 - 30
    new_texts, Y_new = make_toy_data(200, seed=2)
    assert f1_score(Y_new, distilled.predict(new_texts), average="micro") > 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"groups_unlabeled": np.zeros(10)}, r"groups_unlabeled was given without groups"),
        ({"groups": np.zeros(5)}, r"groups must hold one group per labeled text \(80\); got shape \(5,\)"),
        ({"groups": np.zeros(80)}, r"at least 2 distinct groups"),
    ],
)
def test_bad_groups_get_a_clear_error(kwargs, message):
    texts, Y = make_toy_data(80, seed=0)
    with pytest.raises(ValueError, match=message):
        DistilledClassifier(KeywordTeacher().fit(texts, Y), lexical_student()).fit(texts, Y, **kwargs)


def test_an_unfitted_teacher_is_fitted_on_the_labeled_texts_in_a_pipeline(tiny_bert, tmp_path):
    texts, Y = make_toy_data(200, seed=3)
    unlabeled, _ = make_toy_data(200, seed=4)
    teacher = TransformerMultiLabelClassifier(tiny_bert, max_epochs=10, lr=3e-3, batch_size=16, random_state=0)
    student = TransformerMultiLabelClassifier(
        tiny_bert, max_epochs=10, lr=3e-3, batch_size=16, precision="fp32", random_state=0
    )
    pipeline = Pipeline([("distilled", DistilledClassifier(teacher, student, random_state=0))])
    pipeline.fit(texts, Y, distilled__X_unlabeled=unlabeled)
    distilled = pipeline.named_steps["distilled"]
    assert distilled.teacher_ is not teacher and distilled.student_.soft_targets_
    new_texts, Y_new = make_toy_data(120, seed=5)
    assert f1_score(Y_new, pipeline.predict(new_texts), average="micro") > 0.8
    # the student saved alone (e.g. for sktext serve) predicts as the distilled model
    distilled.student_.save(tmp_path / "student")
    np.testing.assert_array_equal(load_model(tmp_path / "student").predict(new_texts), pipeline.predict(new_texts))


def test_a_grid_search_over_the_student_with_a_frozen_teacher():
    from sklearn.frozen import FrozenEstimator

    texts, Y = make_toy_data(240, seed=6)
    teacher = FrozenEstimator(KeywordTeacher().fit(texts, Y))
    search = GridSearchCV(
        DistilledClassifier(teacher, lexical_student(), random_state=0), {"student__C": [10.0, 1e-4]}, cv=KFold(2)
    ).fit(texts, Y)
    assert search.best_params_ == {"student__C": 10.0}
    assert search.best_estimator_.teacher_ is teacher


def test_a_student_that_cannot_take_probabilities_gets_a_clear_error():
    texts, Y = make_toy_data(80, seed=0)
    student = make_pipeline(TfidfVectorizer(), OneVsRestClassifier(LogisticRegression()))
    with pytest.raises(ValueError, match=r"did not take the teacher's probabilities.*soft targets"):
        DistilledClassifier(KeywordTeacher().fit(texts, Y), student).fit(texts, Y)


def test_a_teacher_of_other_labels_gets_a_clear_error():
    texts, Y = make_toy_data(80, seed=0)
    with pytest.raises(ValueError, match=r"teacher's predict_proba gave shape \(72, 3\).*for the 2 labels of y"):
        DistilledClassifier(KeywordTeacher().fit(texts, Y), lexical_student()).fit(texts, Y[:, :2])


def test_shallow_encoder_keeps_the_first_layers(tiny_bert, tmp_path):
    from transformers import AutoConfig, AutoModel

    folder = shallow_encoder(tmp_path / "shallow", n_layers=1, model_name_or_path=tiny_bert)
    assert AutoConfig.from_pretrained(folder).num_hidden_layers == 1
    shallow, full = AutoModel.from_pretrained(folder).state_dict(), AutoModel.from_pretrained(tiny_bert).state_dict()
    assert set(shallow) < set(full) and all(torch.equal(shallow[name], full[name]) for name in shallow)
    texts, Y = make_toy_data(60, seed=0)
    TransformerMultiLabelClassifier(folder, max_epochs=1, batch_size=16).fit(texts, Y)
    with pytest.raises(ValueError, match="n_layers must be an int from 1 to the encoder's 2 layers"):
        shallow_encoder(tmp_path / "deep", n_layers=3, model_name_or_path=tiny_bert)


class TimidTeacher(KeywordTeacher):
    """Sure of the toy's first labels, but gives its rare last label only 0.04 where it holds (0.01 elsewhere)."""

    def predict_proba(self, X):
        proba = super().predict_proba(X)
        proba[:, :-1] = np.where(proba[:, :-1] > 0.1, 0.9, 0.02)
        proba[:, -1] = np.where(proba[:, -1] > 0.1, 0.04, 0.01)
        return proba


def rare_last_label(texts: list[str], Y: np.ndarray, keep_every: int) -> tuple[list[str], np.ndarray]:
    """The toy with its last label kept on one in ``keep_every`` of its texts (its words dropped elsewhere)."""
    rare_words = set(list(TOPIC_WORDS.values())[-1])
    Y = Y.copy()
    seen = 0
    for i, text in enumerate(texts):
        if Y[i, -1]:
            seen += 1
            if seen % keep_every:
                Y[i, -1] = 0
                texts[i] = " ".join(word for word in text.split() if word not in rare_words)
    return texts, Y


def test_label_rates_floor_the_thresholds_of_a_label_the_teacher_is_timid_about():
    texts, Y = rare_last_label(*make_toy_data(400, seed=0), keep_every=8)
    unlabeled, _ = rare_last_label(*make_toy_data(400, seed=1), keep_every=8)
    new_texts, Y_new = rare_last_label(*make_toy_data(400, seed=2), keep_every=8)
    teacher = TimidTeacher().fit(texts, Y)
    predicted = {}
    for floor in (False, True):
        distilled = DistilledClassifier(teacher, lexical_student(), floor_at_label_rates=floor, random_state=0)
        predicted[floor] = distilled.fit(texts, Y, X_unlabeled=unlabeled).predict(new_texts)
    # a rare label (about 5 % of the texts, 2 of the 40 held out): tuned on two positives, the
    # threshold falls back to the global one, far above what the timid student gives the label
    assert predicted[False][:, -1].sum() == 0
    assert f1_score(Y_new[:, -1], predicted[True][:, -1]) > 0.5
    # the sure labels keep their decisions
    np.testing.assert_array_equal(predicted[True][:, :-1], predicted[False][:, :-1])
