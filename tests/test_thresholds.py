import numpy as np
import pytest

from sktext.thresholds import tune_thresholds


def test_per_label_thresholds_find_the_separating_point():
    rng = np.random.default_rng(0)
    y = rng.random((400, 2)) < 0.3
    proba = np.where(y, 0.35, 0.15) + rng.normal(0, 0.02, y.shape)
    proba[:, 1] = np.where(y[:, 1], 0.85, 0.6) + rng.normal(0, 0.02, 400)
    thresholds, _ = tune_thresholds(y, proba, min_positives=5, shrinkage=0)
    assert 0.2 < thresholds[0] < 0.3 and 0.65 < thresholds[1] < 0.8


def test_shrinkage_pulls_towards_the_global_threshold_by_evidence():
    rng = np.random.default_rng(0)
    y = np.zeros((400, 2), dtype=bool)
    y[:200, 0] = True  # plenty of positives
    y[:6, 1] = True  # few positives
    proba = np.where(y, 0.8, 0.1) + rng.normal(0, 0.01, y.shape)
    proba[:, 1] = np.where(y[:, 1], 0.3, 0.05)
    own, global_threshold = tune_thresholds(y, proba, shrinkage=0)
    shrunk, same_global = tune_thresholds(y, proba, shrinkage=2.0)
    assert same_global == global_threshold
    pulls = np.abs(shrunk - own) / np.abs(global_threshold - own)
    np.testing.assert_allclose(pulls, [2 / 202, 2 / 8], rtol=1e-6)


def test_rare_labels_get_the_global_threshold():
    y = np.zeros((100, 3), dtype=int)
    y[:40, 0] = y[:40, 1] = 1
    y[:2, 2] = 1
    proba = np.where(y == 1, 0.7, 0.2).astype(float)
    proba[:, 2] = np.where(y[:, 2] == 1, 0.95, 0.9)
    thresholds, global_threshold = tune_thresholds(y, proba, min_positives=5)
    assert thresholds[2] == global_threshold
    assert 0.2 < global_threshold <= 0.7


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same|shape"):
        tune_thresholds(np.zeros((3, 2)), np.zeros((3, 3)))


def test_floor_at_rates_lowers_a_threshold_only_where_a_label_would_be_predicted_below_its_rate():
    from sktext.thresholds import floor_at_rates

    proba = np.array([[0.9, 0.30, 0.2], [0.8, 0.20, 0.1], [0.1, 0.10, 0.1], [0.1, 0.05, 0.1]])
    # label 0 is predicted on 2 texts at 0.5, as its rate (0.5) asks; label 1 on none where it
    # should be on 2; label 2's rate rounds to no text
    floored = floor_at_rates(0.5, proba, [0.5, 0.5, 0.1])
    np.testing.assert_array_equal(floored, [0.5, 0.2, 0.5])
    assert ((proba >= floored).sum(axis=0) >= [2, 2, 0]).all()
    np.testing.assert_array_equal(floor_at_rates([0.05, 0.05, 0.05], proba, [0.5, 0.5, 0.5]), [0.05] * 3)


def _reference_thresholds(Y, P, candidates, sample_weight=None, min_positives=5, shrinkage=2.0):
    """The documented rule, written with scikit-learn's F1 at each candidate in turn."""
    from sklearn.metrics import f1_score

    micro = np.array(
        [f1_score(Y, P >= t, average="micro", zero_division=0, sample_weight=sample_weight) for t in candidates]
    )
    per_label = np.array(
        [f1_score(Y, P >= t, average=None, zero_division=0, sample_weight=sample_weight) for t in candidates]
    )

    def middle_of_best(scores):
        best = np.flatnonzero(scores >= scores.max() - 1e-12)
        return float(candidates[best[len(best) // 2]])

    global_threshold = middle_of_best(micro)
    thresholds = np.full(Y.shape[1], global_threshold)
    for label, positives in enumerate(Y.sum(axis=0)):
        if positives >= min_positives:
            weight = positives / (positives + shrinkage)
            thresholds[label] = weight * middle_of_best(per_label[:, label]) + (1 - weight) * global_threshold
    return thresholds, global_threshold


@pytest.mark.parametrize("weighted", [False, True])
def test_thresholds_follow_the_rule_at_every_candidate_with_ties_and_sparse_labels(weighted):
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, n_labels = 300, 12
    Y = (rng.random((n, n_labels)) < np.linspace(0.01, 0.4, n_labels)).astype(int)
    P = np.clip(Y * 0.35 + rng.random((n, n_labels)) * 0.6, 0, 1)
    P[:, :4] = np.round(P[:, :4], 2)  # probabilities exactly at candidates: ">=" counts them
    P = P.astype(np.float32)
    weights = rng.random(n) * 2 if weighted else None
    candidates = np.round(np.arange(0.01, 1.0, 0.01), 2)
    expected, expected_global = _reference_thresholds(Y, P, candidates, weights)
    for y_true in (Y, sp.csr_matrix(Y)):
        thresholds, global_threshold = tune_thresholds(y_true, P, sample_weight=weights)
        assert global_threshold == pytest.approx(expected_global)
        np.testing.assert_allclose(thresholds, expected, atol=1e-12)


def test_thresholds_take_candidates_in_any_order():
    rng = np.random.default_rng(1)
    Y = (rng.random((200, 5)) < 0.2).astype(int)
    P = np.clip(Y * 0.4 + rng.random((200, 5)) * 0.5, 0, 1)
    candidates = np.array([0.7, 0.2, 0.45, 0.3, 0.9, 0.55])
    expected, expected_global = _reference_thresholds(Y, P.astype(np.float32), np.sort(candidates))
    thresholds, global_threshold = tune_thresholds(Y, P, candidates=candidates)
    assert global_threshold == pytest.approx(expected_global)
    np.testing.assert_allclose(thresholds, expected, atol=1e-12)
