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


def test_demo_saves_its_model_for_serving(monkeypatch, tiny_bert, tmp_path, capsys):
    from sktext import load_model

    monkeypatch.setattr(sktext.pretrained, "resolve_model_path", lambda name: tiny_bert)
    demo.main(["--max-train", "120", "--max-epochs", "1", "--quiet", "--save", str(tmp_path / "model")])
    model = load_model(tmp_path / "model")
    assert "sktext serve" in capsys.readouterr().out
    assert all(isinstance(name, str) and "::" in name for name in model.classes_)
