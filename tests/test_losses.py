"""The focal loss: its values, its gradients, and the estimators' ``loss`` parameter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from test_sklearn_contract import FACTORIES

from sktext import TransformerMultiLabelClassifier
from sktext.losses import AsymmetricLoss, FocalLoss, criterion_for

from conftest import make_toy_data


def test_gamma_zero_is_binary_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=generator) * 4
    targets = (torch.rand(16, 5, generator=generator) < 0.3).float()
    pos_weight = torch.tensor([1.0, 2.0, 5.0, 10.0, 100.0])
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, targets), torch.nn.BCEWithLogitsLoss()(logits, targets))
    torch.testing.assert_close(
        FocalLoss(gamma=0.0, pos_weight=pos_weight)(logits, targets),
        torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)(logits, targets),
    )


def test_hand_computed_values_down_weight_easy_examples():
    # An easy positive (logit 3), a hard positive (-1), an easy negative (-3), a hard negative (1).
    logits = torch.tensor([[3.0, -1.0, -3.0, 1.0]])
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    sigmoid = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    expected = []
    for z, t in zip(logits[0].tolist(), targets[0].tolist()):
        p_true = sigmoid(z) if t else 1 - sigmoid(z)
        expected.append((1 - p_true) ** 2 * -math.log(p_true))
    loss = FocalLoss(gamma=2.0, reduction="none")(logits, targets)
    np.testing.assert_allclose(loss[0].numpy(), expected, rtol=1e-5)
    # (1 - σ(3))² · log(1 + e⁻³), by hand
    assert math.isclose(expected[0], 0.0474259**2 * 0.0485873, rel_tol=1e-4)
    assert float(FocalLoss(gamma=2.0)(logits, targets)) == pytest.approx(np.mean(expected), rel=1e-5)
    # Relative to cross-entropy, easy examples lose far more weight than hard ones.
    ratio = loss / torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert ratio[0, 0] < 0.01 and ratio[0, 2] < 0.01
    assert ratio[0, 1] > 0.5 and ratio[0, 3] > 0.5


def test_pos_weight_scales_the_positive_terms_only():
    logits = torch.tensor([[0.5, -2.0], [1.5, 0.2]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    plain = FocalLoss(gamma=2.0, reduction="none")(logits, targets)
    weighted = FocalLoss(gamma=2.0, pos_weight=torch.tensor([3.0, 3.0]), reduction="none")(logits, targets)
    torch.testing.assert_close(weighted, plain * torch.where(targets > 0, 3.0, 1.0))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_extreme_logits_give_finite_values_and_gradients(gamma):
    logits = torch.tensor([[1e4, -1e4, 100.0, -100.0, 0.0, 40.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]])
    loss = FocalLoss(gamma=gamma, pos_weight=torch.full((6,), 50.0))(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # Confidently right: no gradient; confidently wrong: the gradient pushes back.
    assert logits.grad[0, 0] == 0 and logits.grad[0, 1] == 0
    assert logits.grad[0, 2] > 0 and logits.grad[0, 3] < 0


def test_reductions_and_criterion_for():
    logits, targets = torch.zeros(3, 2), torch.ones(3, 2)
    assert FocalLoss(reduction="none")(logits, targets).shape == (3, 2)
    assert float(FocalLoss(reduction="sum")(logits, targets)) == pytest.approx(6 * 0.25 * math.log(2))
    with pytest.raises(ValueError, match="reduction must be"):
        FocalLoss(reduction="max")
    assert criterion_for("bce", focal_gamma=2.0) == (torch.nn.BCEWithLogitsLoss, {})
    assert criterion_for("focal", focal_gamma=1) == (FocalLoss, {"gamma": 1.0})


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def make(request, tiny_bert):
    factory, _ = FACTORIES[request.param]
    return lambda **params: factory({"tiny_bert": tiny_bert}, **params)


def test_estimators_learn_the_toy_task_with_focal_loss(make):
    X, Y = make_toy_data(240, seed=0)
    estimator = make(loss="focal", focal_gamma=2.0, pos_weight="balanced").fit(X, Y)
    Xh, Yh = make_toy_data(120, seed=7)
    assert f1_score(Yh, estimator.predict(Xh), average="micro") > 0.85


def test_focal_gamma_zero_trains_like_bce(make):
    X, Y = make_toy_data(80, seed=0)
    params = dict(max_epochs=2, threshold=0.5, validation_fraction=None, random_state=3)
    bce = make(**params).fit(X, Y)
    focal = make(loss="focal", focal_gamma=0.0, **params).fit(X, Y)
    np.testing.assert_allclose(focal.predict_proba(X), bce.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize(
    "params, match",
    [
        (
            {"loss": "hinge"},
            "'loss' parameter of .* must be one of {'bce', 'focal', 'asymmetric'} \\('bce' is binary cross-entropy.*Got 'hinge' instead",
        ),
        ({"loss": None}, "'loss' parameter .* Got None instead"),
        (
            {"loss": "focal", "focal_gamma": -1.0},
            "'focal_gamma' parameter .* must be a finite float >= 0 \\(0 gives plain cross-entropy",
        ),
        ({"loss": "focal", "focal_gamma": float("inf")}, "'focal_gamma' parameter .* Got inf instead"),
        ({"loss": "focal", "focal_gamma": "2"}, "'focal_gamma' parameter .* Got '2' instead"),
    ],
)
def test_bad_loss_params_fail_in_fit_not_init(make, params, match):
    estimator = make(**params)  # no error here
    X, Y = make_toy_data(40, seed=0)
    with pytest.raises(ValueError, match=match):
        estimator.fit(X, Y)


# -- the asymmetric loss -------------------------------------------------------------------
def test_asymmetric_loss_without_focusing_or_clipping_is_cross_entropy():
    logits = torch.randn(8, 5) * 4
    targets = (torch.rand(8, 5) > 0.5).float()
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    loss = AsymmetricLoss(gamma_neg=0.0, gamma_pos=0.0, clip=0.0)(logits, targets)
    torch.testing.assert_close(loss, plain)


def test_asymmetric_loss_follows_the_papers_formula():
    logits = torch.tensor([[-3.0, -0.2, 0.5, 2.0]])
    targets = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    p = torch.sigmoid(logits)
    shifted = (p - 0.05).clamp(min=0)
    expected = torch.where(
        targets > 0.5, -((1 - p) ** 1.0) * torch.log(p), -(shifted**4.0) * torch.log(1 - shifted)
    ).mean()
    loss = AsymmetricLoss(gamma_neg=4.0, gamma_pos=1.0, clip=0.05)(logits, targets)
    torch.testing.assert_close(loss, expected)


def test_asymmetric_loss_drops_easy_negatives_and_stays_finite():
    criterion = AsymmetricLoss(reduction="none")
    easy_negative = criterion(torch.tensor([[-4.0]]), torch.tensor([[0.0]]))  # p = 0.018 < clip
    assert float(easy_negative) == 0.0
    logits = torch.tensor([[-200.0, 200.0, -200.0, 200.0]], requires_grad=True)
    loss = criterion(logits, torch.tensor([[1.0, 0.0, 0.0, 1.0]])).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_classifier_trains_with_the_asymmetric_loss(tiny_bert):
    texts, Y = make_toy_data(80)
    clf = TransformerMultiLabelClassifier(tiny_bert, loss="asymmetric", max_epochs=2, batch_size=16, random_state=0)
    assert clf.fit(texts, Y).predict(texts[:4]).shape == (4, Y.shape[1])


def test_asymmetric_loss_on_categorical_targets_is_refused_before_training(tiny_bert):
    texts, _ = make_toy_data(40)
    y = np.array([["a", "x"], ["b", "y"]] * 20)
    with pytest.raises(ValueError, match="loss='asymmetric' is made for many 0/1 labels"):
        TransformerMultiLabelClassifier(tiny_bert, loss="asymmetric", max_epochs=1).fit(texts, y)
