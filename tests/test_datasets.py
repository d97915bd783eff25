"""Tests for the bundled debtags sample (sktext.datasets)."""

import numpy as np
import pytest
from sklearn.preprocessing import MultiLabelBinarizer

from sktext.datasets import load_debtags_sample


@pytest.fixture(scope="module")
def train():
    return load_debtags_sample(subset="train")


@pytest.fixture(scope="module")
def test():
    return load_debtags_sample(subset="test")


def test_sizes(train, test):
    assert len(train.texts) == len(train.labels) == len(train.ids) == 3000
    assert len(test.texts) == len(test.labels) == len(test.ids) == 1000
    assert train.target.shape == (3000, 40)
    assert test.target.shape == (1000, 40)
    everything = load_debtags_sample(subset="all")
    assert len(everything.texts) == 4000
    assert everything.ids == train.ids + test.ids


def test_types(train):
    assert isinstance(train.texts, list)
    assert all(isinstance(text, str) and text.strip() for text in train.texts)
    assert all(isinstance(labels, list) for labels in train.labels)
    assert all(isinstance(label, str) for labels in train.labels for label in labels)
    assert all(isinstance(identifier, str) for identifier in train.ids)
    assert train.target.dtype.kind == "i"
    assert set(np.unique(train.target)) == {0, 1}
    assert "Debian" in train.DESCR
    assert train.frame is None


def test_label_set(train, test):
    assert len(train.label_names) == 40
    assert train.label_names == sorted(set(train.label_names))
    assert test.label_names == train.label_names
    used = {label for labels in train.labels + test.labels for label in labels}
    assert used == set(train.label_names)
    # the sample keeps only records with at least one label, labels sorted per record
    assert all(labels and labels == sorted(labels) for labels in train.labels + test.labels)
    # every label has positives in both splits
    assert train.target.sum(axis=0).min() >= 20
    assert test.target.sum(axis=0).min() >= 1


def test_target_matches_multilabel_binarizer(train):
    mlb = MultiLabelBinarizer(classes=train.label_names)
    np.testing.assert_array_equal(mlb.fit_transform(train.labels), train.target)


def test_no_test_record_in_train(train, test):
    assert len(set(train.ids)) == len(train.ids)
    assert not set(train.ids) & set(test.ids)
    assert not set(train.sources) & set(test.sources)
    assert not set(train.texts) & set(test.texts)


def test_return_x_y(train):
    texts, target = load_debtags_sample(subset="train", return_X_y=True)
    assert texts == train.texts
    np.testing.assert_array_equal(target, train.target)


def test_as_frame(test):
    pytest.importorskip("pandas")
    frame = load_debtags_sample(subset="test", as_frame=True).frame
    assert list(frame.columns) == ["id", "source", "text", "labels", "split"]
    assert len(frame) == 1000
    assert set(frame["split"]) == {"test"}
    assert frame["id"].tolist() == test.ids


def test_deterministic(train):
    again = load_debtags_sample(subset="train")
    assert again.ids == train.ids
    assert again.texts == train.texts


def test_bad_subset():
    with pytest.raises(ValueError, match="'subset' parameter.*got 'validation'"):
        load_debtags_sample(subset="validation")
