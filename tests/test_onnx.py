"""ONNX export and the torch-free predictor: same probabilities (lexical part included), no torch in the serving process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import sktext  # noqa: E402
from sktext import TransformerMultiLabelClassifier  # noqa: E402
from sktext.deploy import LexicalMargins, OnnxPredictor  # noqa: E402
from sktext.lexical import TfidfLinearClassifier  # noqa: E402

from conftest import make_many_rare_labels, make_toy_data, ulmfit_factory  # noqa: E402

LABELS = ["game", "editor", "audio"]
REPO_ROOT = Path(sktext.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def texts():
    return make_toy_data(50, seed=5)[0] + ["", "naïve café 東京 🎮", "game " * 300, "x"]


def _fit(tiny_bert, **params):
    X, Y = make_toy_data(120, seed=0)
    defaults = dict(max_epochs=2, batch_size=16, device="cpu", precision="fp32", random_state=0)
    clf = TransformerMultiLabelClassifier(tiny_bert, **{**defaults, **params})
    return clf.fit(X, pd.DataFrame(Y, columns=LABELS))


@pytest.fixture(scope="module")
def fitted(tiny_bert):
    """With the default lexical part (lexical="tfidf"), which decision_function blends in."""
    clf = _fit(tiny_bert)
    assert clf.lexical_ is not None and clf.blend_weights_[1] > 0  # the lexical part counts
    return clf


@pytest.fixture(scope="module")
def exported(fitted, tmp_path_factory):
    return fitted.export_onnx(tmp_path_factory.mktemp("onnx") / "model")


@pytest.fixture(scope="module")
def network_only(tiny_bert):
    return _fit(tiny_bert, lexical=None)


def test_folder_holds_the_graph_the_tokenizer_json_labels_and_the_lexical_part(exported, fitted):
    assert {p.name for p in exported.iterdir()} == {
        "model.onnx",
        "tokenizer.json",
        "predictor.json",
        "lexical.json",
        "lexical.npz",
    }
    config = json.loads((exported / "predictor.json").read_text())
    assert config["classes"] == {"type": "str", "values": LABELS}
    np.testing.assert_allclose(config["thresholds"], fitted.thresholds_)
    assert config["quantize"] is None
    np.testing.assert_allclose(config["lexical"]["blend_weights"], fitted.blend_weights_)
    lexical = json.loads((exported / "lexical.json").read_text())
    vocabulary = fitted.lexical_.vectorizer_.vocabulary_
    assert lexical["terms"] == sorted(vocabulary, key=vocabulary.get)
    with np.load(exported / "lexical.npz", allow_pickle=False) as arrays:
        coef = sp.csr_matrix(fitted.lexical_.coef_)
        assert "coef" not in arrays  # the weights as CSR arrays, not a dense matrix
        np.testing.assert_array_equal(arrays["coef_data"], coef.data)
        np.testing.assert_array_equal(arrays["coef_indices"], coef.indices)
        np.testing.assert_array_equal(arrays["coef_indptr"], coef.indptr)
        np.testing.assert_array_equal(arrays["idf"], fitted.lexical_.vectorizer_.idf_)


def test_without_a_lexical_part_the_folder_has_none(network_only, texts, tmp_path):
    folder = network_only.export_onnx(tmp_path / "plain")
    assert {p.name for p in folder.iterdir()} == {"model.onnx", "tokenizer.json", "predictor.json"}
    predictor = OnnxPredictor(folder)
    assert predictor.lexical_ is None and predictor.blend_weights_ is None
    np.testing.assert_allclose(predictor.predict_proba(texts), network_only.predict_proba(texts), atol=1e-4, rtol=0)


TRICKY = [
    "",
    "Naïve CAFÉ crème brûlée, déjà vu",
    "東京 the game_engine v2.0 x y",
    "ﬁle ﬂow (ligatures) and Ångström",
    "audio audio audio player player",
    "a b c d e f",
    "🎮 game-play; text/editor: vim!",
]


@pytest.mark.parametrize("layout", ["csr", "dense"])  # dense: exports written before the weights were sparse
@pytest.mark.parametrize("ngram_range, loss", [((1, 2), "squared_hinge"), ((1, 3), "log_loss"), ((2, 2), "log_loss")])
def test_numpy_tfidf_margins_equal_scikit_learns(ngram_range, loss, layout):
    X, Y = make_toy_data(120, seed=2)
    X = X + TRICKY * 3
    Y = np.vstack([Y, np.tile(Y[:1], (len(TRICKY) * 3, 1))])
    lexical = TfidfLinearClassifier(ngram_range=ngram_range, loss=loss, min_df=1, threshold=0.5).fit(X, Y)
    state, arrays = lexical.to_state()
    settings = {k: state["vectorizer"][k] for k in ("lowercase", "strip_accents", "token_pattern", "ngram_range")}
    settings.update(binary=False, sublinear_tf=True, use_idf=True, norm="l2")
    config = {"vectorizer": settings, "terms": sorted(state["vocabulary"], key=state["vocabulary"].get)}
    coef = (arrays["coef_data"], arrays["coef_indices"], arrays["coef_indptr"])
    if layout == "dense":
        coef = sp.csr_matrix(lexical.coef_).toarray()
    margins = LexicalMargins(config, arrays["idf"], coef, arrays["intercept"])
    texts = TRICKY + make_toy_data(30, seed=9)[0]
    np.testing.assert_allclose(margins(texts), lexical.decision_function(texts), atol=1e-5, rtol=1e-5)


def test_numpy_margins_of_many_rare_labels_gather_the_sparse_weights():
    """Hundreds of rare labels: the margins come from the weights kept by term, never a dense matrix."""
    texts, Y = make_many_rare_labels(1000, 1000)
    lexical = TfidfLinearClassifier(threshold=0.5, random_state=0).fit(texts, Y)
    state, arrays = lexical.to_state()
    settings = {k: state["vectorizer"][k] for k in ("lowercase", "strip_accents", "token_pattern", "ngram_range")}
    settings.update(binary=False, sublinear_tf=True, use_idf=True, norm="l2")
    config = {"vectorizer": settings, "terms": sorted(state["vocabulary"], key=state["vocabulary"].get)}
    coef = (arrays["coef_data"], arrays["coef_indices"], arrays["coef_indptr"])
    margins = LexicalMargins(config, arrays["idf"], coef, arrays["intercept"])
    assert margins.coef_by_term is None
    probe = texts[:40] + ["sign3word sign7word common1", "nothing known here"]
    np.testing.assert_allclose(margins(probe), lexical.decision_function(probe), atol=1e-5, rtol=1e-5)


def test_fp32_probabilities_equal_the_estimators(exported, fitted, texts):
    predictor = OnnxPredictor(exported)
    assert predictor.lexical_ is not None
    assert list(predictor.classes_) == list(fitted.classes_)
    np.testing.assert_allclose(predictor.thresholds_, fitted.thresholds_)
    expected = fitted.predict_proba(texts)
    proba = predictor.predict_proba(texts)
    assert proba.shape == expected.shape == (len(texts), 3)
    np.testing.assert_allclose(proba, expected, atol=1e-4, rtol=0)
    clear = np.abs(expected - fitted.thresholds_) > 1e-4
    np.testing.assert_array_equal(predictor.predict(texts)[clear], fitted.predict(texts)[clear])
    np.testing.assert_allclose(predictor.decision_function(texts), fitted.decision_function(texts), atol=1e-4)


def test_a_folder_exported_with_dense_lexical_weights_predicts_the_same(exported, fitted, texts, tmp_path):
    """Exports written before the lexical weights were sparse hold one dense ``coef`` in ``lexical.npz``."""
    import shutil

    older = Path(shutil.copytree(exported, tmp_path / "older"))
    with np.load(older / "lexical.npz", allow_pickle=False) as arrays:
        dense = {key: arrays[key] for key in ("idf", "intercept")}
    dense["coef"] = sp.csr_matrix(fitted.lexical_.coef_).toarray()
    np.savez(older / "lexical.npz", **dense)
    config = json.loads((older / "predictor.json").read_text())
    (older / "predictor.json").write_text(json.dumps({**config, "format_version": 1}))
    np.testing.assert_allclose(
        OnnxPredictor(older).predict_proba(texts), OnnxPredictor(exported).predict_proba(texts), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("batch_size", [1, 7])
def test_any_batch_and_sequence_length_runs(exported, texts, batch_size):
    reference = OnnxPredictor(exported).predict_proba(texts)
    np.testing.assert_allclose(
        OnnxPredictor(exported, batch_size=batch_size).predict_proba(texts), reference, atol=1e-5
    )


def test_predictor_imports_no_torch(exported, fitted, texts):
    script = f"""
import json, sys
from sktext.deploy import OnnxPredictor
predictor = OnnxPredictor({str(exported)!r}, n_threads=1)
proba = predictor.predict_proba({texts[:5]!r})
heavy = sorted(m for m in ("torch", "sklearn", "transformers", "skorch", "scipy") if m in sys.modules)
print(json.dumps({{"heavy": heavy, "proba": proba.tolist()}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert "torch" not in result["heavy"], result["heavy"]
    assert result["heavy"] == []
    np.testing.assert_allclose(result["proba"], fitted.predict_proba(texts[:5]), atol=1e-4)


def test_int8_export_is_close_and_says_so(fitted, texts, tmp_path):
    folder = fitted.export_onnx(tmp_path / "int8", quantize="int8")
    predictor = OnnxPredictor(folder)
    assert predictor.quantize_ == "int8"
    np.testing.assert_allclose(predictor.predict_proba(texts), fitted.predict_proba(texts), atol=0.05)


def test_export_refuses_bad_requests(fitted, tiny_bert, exported, tmp_path):
    with pytest.raises(ValueError, match="quantize must be None .* or 'int8'.*got 'int4'"):
        fitted.export_onnx(tmp_path / "a", quantize="int4")
    with pytest.raises(ValueError, match="is not empty.*overwrite=True"):
        fitted.export_onnx(exported)
    assert fitted.export_onnx(exported, overwrite=True) == exported
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        TransformerMultiLabelClassifier(tiny_bert).export_onnx(tmp_path / "b")


def test_a_vectorizer_the_predictor_cannot_reproduce_is_refused(tiny_bert, tmp_path):
    clf = _fit(tiny_bert, max_epochs=1)
    clf.lexical_.vectorizer_.set_params(stop_words=["the"])
    with pytest.raises(ValueError, match="supports the vectorizer.*stop_words"):
        clf.export_onnx(tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_multi_output_fits_are_refused(tiny_bert, tmp_path):
    X, Y = make_toy_data(60)
    frame = pd.DataFrame({"game": Y[:, 0], "kind": np.where(Y[:, 1] == 1, "editor", "other")})
    clf = TransformerMultiLabelClassifier(tiny_bert, max_epochs=1, threshold=0.5, validation_fraction=None)
    with pytest.raises(ValueError, match="categorical targets"):
        clf.fit(X, frame).export_onnx(tmp_path / "m")


def test_ulmfit_is_refused_with_the_reason(tmp_path):
    from sktext.export import export_onnx

    X, Y = make_toy_data(60)
    with pytest.warns(UserWarning, match="no pretrained language model"):
        clf = ulmfit_factory({}, max_epochs=1, threshold=0.5, validation_fraction=None).fit(X, Y)
    with pytest.raises(ValueError, match="bptt-token chunks"):
        export_onnx(clf, tmp_path / "u")


def test_predictor_explains_a_wrong_folder(fitted, tmp_path):
    with pytest.raises(ValueError, match="No exported ONNX model.*export_onnx"):
        OnnxPredictor(tmp_path / "missing")
    with pytest.raises(ValueError, match="No exported ONNX model.*has no predictor.json"):
        OnnxPredictor(fitted.save(tmp_path / "saved"))
    with pytest.raises(ValueError, match="single str.*Wrap it in a list"):
        OnnxPredictor(fitted.export_onnx(tmp_path / "ok")).predict("one text")
