import numpy as np
import pytest

from sktext.thresholds import tune_thresholds


def test_per_label_thresholds_find_the_separating_point():
    rng = np.random.default_rng(0)
    y = rng.random((400, 2)) < 0.3
    proba = np.where(y, 0.35, 0.15) + rng.normal(0, 0.02, y.shape)
    proba[:, 1] = np.where(y[:, 1], 0.85, 0.6) + rng.normal(0, 0.02, 400)
    thresholds, _ = tune_thresholds(y, proba, min_positives=5)
    assert 0.2 < thresholds[0] < 0.3 and 0.65 < thresholds[1] < 0.8


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
