"""Model folders written by sktext 0.1.0 still load and predict what they predicted then."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sktext import load_model
from sktext.language_model import LanguageModel

FOLDERS = Path(__file__).parent / "data" / "v0_1_0"
EXPECTED = json.loads((FOLDERS / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["transformer_classifier", "ulmfit_classifier", "transformer_regressor"])
def test_0_1_0_model_folder_predicts_as_before(name):
    estimator = load_model(FOLDERS / name)
    assert estimator.precision == "auto"  # 0.1.0 had no precision: the folder gets the default

    def predicted():
        if hasattr(estimator, "predict_proba"):
            return estimator.predict_proba(EXPECTED["texts"])
        return estimator.predict(EXPECTED["texts"])

    # 0.1.0 computed in fp32 on a CPU; "auto" is bf16 on a CPU with fast bf16 arithmetic
    # (a transformer there predicts within bf16 rounding), so the exact check pins fp32.
    np.testing.assert_allclose(predicted(), EXPECTED[name], rtol=0, atol=0.02)
    estimator.set_params(precision="fp32")
    np.testing.assert_allclose(predicted(), EXPECTED[name], rtol=1e-5, atol=1e-6)


def test_0_1_0_multioutput_folder_keeps_its_heads():
    estimator = load_model(FOLDERS / "ulmfit_multioutput")
    proba = estimator.predict_proba(EXPECTED["texts"])
    assert len(proba) == 2
    for got, expected in zip(proba, EXPECTED["ulmfit_multioutput"]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert list(estimator.classes_[0]) == ["a", "b", "c"]


def test_0_1_0_classifier_keeps_string_classes():
    estimator = load_model(FOLDERS / "transformer_classifier")
    assert list(estimator.classes_) == ["game", "editor", "audio"]


def test_0_1_0_language_model_folder_loads():
    language_model = LanguageModel.load(FOLDERS / "language_model")
    total = sum(float(t.double().sum()) for t in language_model.encoder_state_dict().values())
    assert total == pytest.approx(EXPECTED["language_model_encoder_sum"], rel=1e-9)
