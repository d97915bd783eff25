"""The evaluation report: its metrics, its curves and its page, at few and at many labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import accuracy_score, classification_report, f1_score, ndcg_score

from sktext.report import (
    MANY_LABELS,
    MIN_LISTED_SUPPORT,
    N_LISTED_LABELS,
    evaluation_metrics,
    ranking_metrics,
    threshold_curves,
    write_report,
)


def _random_case(n_samples: int, n_labels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Zipf-like labels, probabilities that lean towards them, per-label thresholds."""
    rng = np.random.default_rng(seed)
    frequency = 0.4 / np.arange(1, n_labels + 1) ** 0.7
    Y = (rng.random((n_samples, n_labels)) < frequency).astype(np.int64)
    Y[:, -1] = 0  # a label with no positive
    proba = np.clip(0.6 * rng.random((n_samples, n_labels)) + 0.4 * Y, 0, 1).astype(np.float32)
    thresholds = rng.uniform(0.3, 0.7, n_labels)
    thresholds[-2] = 1.01  # a label never predicted
    return Y, proba, thresholds, [f"tag::{j}" for j in range(n_labels)]


# -- thresholded predictions -------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
def test_the_classification_report_is_scikit_learns(sparse):
    Y, proba, thresholds, names = _random_case(80, 12)
    predicted = (proba >= thresholds).astype(int)
    metrics = evaluation_metrics(sp.csr_matrix(Y) if sparse else Y, proba, thresholds, names)
    expected = classification_report(Y, predicted, target_names=names, output_dict=True, zero_division=0)
    report = metrics["classification_report"]
    assert list(report) == list(expected)
    for name, row in expected.items():
        assert list(report[name]) == list(row)
        assert report[name] == pytest.approx(row, abs=1e-12)
    for average in ("micro", "macro", "samples", "weighted"):
        assert metrics[f"f1_{average}"] == pytest.approx(f1_score(Y, predicted, average=average, zero_division=0))
    assert metrics["subset_accuracy"] == pytest.approx(accuracy_score(Y, predicted))
    json.dumps(metrics)  # JSON-serialisable as it is


# -- ranking metrics ---------------------------------------------------------------------------
HAND_Y = np.array([[1, 0, 1, 0], [0, 0, 0, 1]])
HAND_PROBA = np.array([[0.9, 0.8, 0.1, 0.3], [0.2, 0.1, 0.4, 0.3]])
# text 0 ranks labels 0, 1, 3, 2 (true: 0 and 2); text 1 ranks 2, 3, 0, 1 (true: 3)


def test_precision_and_ndcg_at_k_on_a_hand_computed_case():
    metrics = ranking_metrics(HAND_Y, HAND_PROBA)
    assert set(metrics) == {"precision_at_k", "ndcg_at_k"}  # no PSP@k without training counts
    assert list(metrics["precision_at_k"]) == [1, 3]  # k = 5 is more than the 4 labels
    assert metrics["precision_at_k"] == pytest.approx({1: (1 + 0) / 2, 3: (1 / 3 + 1 / 3) / 2})
    second = 1 / np.log2(3)  # the discount of rank 2
    assert metrics["ndcg_at_k"] == pytest.approx({1: (1 + 0) / 2, 3: (1 / (1 + second) + second / 1) / 2})


def test_psp_at_k_on_a_hand_computed_case():
    support, n_training = np.array([8, 0, 1, 3]), 10
    metrics = ranking_metrics(HAND_Y, HAND_PROBA, label_support=support, n_training_samples=n_training)
    # Jain, Prabhu and Varma's propensity, A = 0.55, B = 1.5; PSP counts 1 / p of each true label hit
    c = (np.log(n_training) - 1) * (1.5 + 1) ** 0.55
    inverse = 1 + c * np.exp(-0.55 * np.log(support + 1.5))
    # normalised by the best ranking: text 0 would rank label 2 (the rarer) before label 0
    assert metrics["psp_at_k"] == pytest.approx(
        {
            1: inverse[0] / (inverse[2] + inverse[3]),
            3: (inverse[0] + inverse[3]) / (inverse[0] + inverse[2] + inverse[3]),
        }
    )
    perfect = ranking_metrics(HAND_Y, HAND_Y + inverse / 100, label_support=support, n_training_samples=n_training)
    assert perfect["psp_at_k"] == pytest.approx({1: 1.0, 3: 1.0})


def test_ndcg_at_k_is_scikit_learns():
    Y, proba, _, _ = _random_case(60, 30, seed=3)
    Y[:5] = 0  # texts without a true label count 0, as in scikit-learn
    metrics = ranking_metrics(Y, proba)
    for k in (1, 3, 5):
        assert metrics["ndcg_at_k"][k] == pytest.approx(ndcg_score(Y, proba, k=k), abs=1e-12)


def test_evaluation_metrics_hold_the_ranking_metrics():
    Y, proba, thresholds, names = _random_case(40, 8)
    support = Y.sum(axis=0) * 4
    metrics = evaluation_metrics(Y, proba, thresholds, names, label_support=support, n_training_samples=200)
    assert metrics["precision_at_k"] == ranking_metrics(Y, proba)["precision_at_k"]
    assert set(metrics["psp_at_k"]) == {1, 3, 5}
    assert metrics["propensity"] == {"a": 0.55, "b": 1.5, "n_training_samples": 200}


def test_psp_needs_both_training_counts():
    with pytest.raises(ValueError, match="PSP@k needs both label_support .* and n_training_samples"):
        ranking_metrics(HAND_Y, HAND_PROBA, label_support=[1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"one count per label \(4\); got shape \(3,\)"):
        ranking_metrics(HAND_Y, HAND_PROBA, label_support=[1, 2, 3], n_training_samples=10)


# -- curves ------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid", [np.linspace(0, 1, 21), np.array([0.7, 0.05, 0.5, 0.33])])
def test_threshold_curves_are_the_scores_of_predict(grid):
    Y, _, _, _ = _random_case(90, 6, seed=1)
    rng = np.random.default_rng(2)
    proba = rng.choice(np.linspace(0, 1, 41), size=Y.shape)  # many probabilities exactly on a threshold
    curves = threshold_curves(Y, proba, grid)
    for t, threshold in enumerate(grid):
        predicted = proba >= threshold
        hits = (predicted & (Y == 1)).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.testing.assert_allclose(curves["precision"][:, t], hits / predicted.sum(axis=0))
            np.testing.assert_allclose(curves["recall"][:, t], hits / Y.sum(axis=0))
        assert curves["micro_precision"][t] == pytest.approx(hits.sum() / predicted.sum())
        assert curves["micro_recall"][t] == pytest.approx(hits.sum() / Y.sum())
    chosen = threshold_curves(Y, proba, grid, labels=[4, 0])
    np.testing.assert_array_equal(chosen["recall"], curves["recall"][[4, 0]])
    np.testing.assert_array_equal(chosen["micro_precision"], curves["micro_precision"])


# -- the page ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def many_labels_report(tmp_path_factory):
    pytest.importorskip("matplotlib")
    Y, proba, thresholds, names = _random_case(300, 400)
    folder = tmp_path_factory.mktemp("report")
    metrics = write_report(folder, Y, proba, thresholds, names, context={"model": "tiny"})
    return folder, metrics, (folder / "report.html").read_text(encoding="utf-8")


def _section(page: str, title_start: str) -> str:
    return page.split(f"<h2>{title_start}", 1)[1].split("<h2>", 1)[0]


def test_many_labels_show_the_top_and_bottom_labels_and_fold_the_rest(many_labels_report):
    _, metrics, page = many_labels_report
    report = metrics["classification_report"]
    names = [name for name in report if not name.endswith(" avg")]
    frequent = sorted(names, key=lambda name: -report[name]["support"])[:N_LISTED_LABELS]
    top = _section(page, "The 20 most frequent labels")
    assert all(f"<td>{name}</td>" in top for name in frequent) and top.count("<tr>") == N_LISTED_LABELS + 1
    ranked = [name for name in names if report[name]["support"] >= MIN_LISTED_SUPPORT]
    worst = min(ranked, key=lambda name: report[name]["f1-score"])
    bottom = _section(page, "The 20 worst labels")
    assert f"<td>{worst}</td>" in bottom and bottom.count("<tr>") == N_LISTED_LABELS + 1
    assert all(report[name]["support"] >= MIN_LISTED_SUPPORT for name in names if f"<td>{name}</td>" in bottom)
    folded = _section(page, "Every label").split("<details>", 1)[1].split("</details>", 1)[0]
    assert "<summary>All 400 labels, in the model's order</summary>" in folded
    assert 'id="label-filter"' in folded and all(f"<td>{name}</td>" in folded for name in names)
    assert '<script>\ndocument.getElementById("label-filter")' in page and "http" not in page  # no external asset


def test_many_labels_show_the_ranking_metrics(many_labels_report):
    folder, metrics, page = many_labels_report
    ranking = _section(page, "Ranking metrics")
    for k in (1, 3, 5):
        assert f"<td>{metrics['precision_at_k'][k]:.3f}</td><td>{metrics['ndcg_at_k'][k]:.3f}</td>" in ranking
    assert "PSP@k (propensity-scored precision) is not shown" in ranking and "psp_at_k" not in metrics
    saved = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert saved["precision_at_k"] == {str(k): value for k, value in metrics["precision_at_k"].items()}


def test_many_labels_give_a_small_page(many_labels_report):
    _, metrics, page = many_labels_report
    # the folded table dominates: about a hundred bytes a label, whatever the number of texts
    assert len(page.encode()) < 120 * metrics["n_labels"] + 20_000


def test_the_page_shows_psp_with_the_training_counts(tmp_path):
    pytest.importorskip("matplotlib")
    Y, proba, thresholds, names = _random_case(100, MANY_LABELS + 1)
    write_report(tmp_path, Y, proba, thresholds, names, label_support=Y.sum(axis=0) * 9, n_training_samples=900)
    ranking = _section((tmp_path / "report.html").read_text(encoding="utf-8"), "Ranking metrics")
    assert "<th>PSP@k</th>" in ranking and "900 training texts" in ranking


def test_up_to_many_labels_the_page_lists_every_label(tmp_path):
    pytest.importorskip("matplotlib")
    Y, proba, thresholds, names = _random_case(100, MANY_LABELS)
    metrics = write_report(tmp_path, Y, proba, thresholds, names)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<details>" not in page and "Ranking metrics" not in page and "<h2>Classification report</h2>" in page
    assert all(f"<td>{name}</td>" in page for name in [*names, "micro avg", "samples avg"])
    assert set(metrics["ndcg_at_k"]) == {1, 3, 5}  # metrics.json has them at any size
