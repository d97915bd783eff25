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
