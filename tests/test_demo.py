"""The main job prints the deep model beside both tuned linear baselines."""

import sktext.pretrained
from sktext import demo


def test_demo_reports_the_model_beside_both_tuned_baselines(monkeypatch, tiny_bert, capsys):
    monkeypatch.setattr(sktext.pretrained, "resolve_model_path", lambda name: tiny_bert)
    results = demo.main(["--max-train", "200", "--max-epochs", "1", "--quiet"])
    assert list(results) == [
        "TransformerMultiLabelClassifier",
        "TF-IDF + LR, tuned thresholds",
        "TF-IDF + LinearSVC, tuned thresholds",
    ]
    printed = capsys.readouterr().out
    assert "micro avg" in printed and "TF-IDF + LinearSVC, tuned thresholds" in printed
    for name, scores in results.items():
        assert 0 <= scores["macro_f1"] <= 1 and 0 <= scores["micro_f1"] <= 1
        if name != "TransformerMultiLabelClassifier":  # one epoch of a tiny model may learn nothing
            assert scores["micro_f1"] > 0.3
