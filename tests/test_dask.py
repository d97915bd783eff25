"""sktext on a Dask LocalCluster (2 worker processes): a grid search, and prediction by partition."""

from __future__ import annotations

import sys

import joblib
import numpy as np
import pytest
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import GridSearchCV

import sktext
from sktext import TransformerMultiLabelClassifier, TransformerRegressor, load_model
from sktext.dask import local_cluster, predict_dask, worker_environment

from conftest import make_toy_data

dd = pytest.importorskip("dask.dataframe")  # the sktext[dask] extra
pd = pytest.importorskip("pandas")
distributed = pytest.importorskip("distributed")
dask_bag = pytest.importorskip("dask.bag")
Client, get_task_stream = distributed.Client, distributed.get_task_stream

LABELS = ["game", "editor", "audio"]


@pytest.fixture(scope="module")
def client():
    with local_cluster(2, gpus=None, torch_threads=1) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        yield client


def _worker_state() -> tuple[str, str, int]:
    import os

    import torch

    import sktext

    return sktext.__file__, os.environ["CUDA_VISIBLE_DEVICES"], torch.get_num_threads()


def test_workers_run_this_sktext_on_cpu_one_thread_each(client):
    states = client.run(_worker_state)
    assert len(states) == 2
    assert set(states.values()) == {(sktext.__file__, "", 1)}
    assert all(info["nthreads"] == 1 for info in client.scheduler_info()["workers"].values())


def test_one_gpu_per_worker_environment():
    assert worker_environment(3, torch_threads=2) == {
        "CUDA_VISIBLE_DEVICES": "3",
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
    }
    assert worker_environment(None)["CUDA_VISIBLE_DEVICES"] == ""
    with pytest.raises(ValueError, match="only 1 GPU.*one worker per GPU"):
        local_cluster(2, gpus=[0])
    with pytest.raises(ValueError, match="gpus must be 'auto', a list"):
        local_cluster(1, gpus="0,1")


def _search(tiny_bert):
    return GridSearchCV(
        TransformerMultiLabelClassifier(
            tiny_bert, max_epochs=1, batch_size=16, random_state=0, threshold=0.5, validation_fraction=None
        ),
        {"lr": [1e-3, 3e-3]},
        cv=MultilabelStratifiedKFold(n_splits=2, shuffle=True, random_state=0),
        scoring="f1_micro",
        refit=False,
    )


def test_grid_search_on_dask_matches_the_sequential_search(client, tiny_bert, toy_data):
    texts, Y = toy_data[0][:80], toy_data[1][:80]
    sequential = _search(tiny_bert).fit(texts, Y)
    with get_task_stream(client) as stream, joblib.parallel_backend("dask", scatter=[texts, Y]):
        on_dask = _search(tiny_bert).fit(texts, Y)
    assert on_dask.cv_results_["params"] == sequential.cv_results_["params"]
    for key in ("split0_test_score", "split1_test_score", "mean_test_score", "rank_test_score"):
        np.testing.assert_allclose(on_dask.cv_results_[key], sequential.cv_results_[key], atol=1e-6, err_msg=key)
    assert len({task["worker"] for task in stream.data}) == 2  # both workers fitted


@pytest.fixture(scope="module")
def model_folder(tiny_bert, tmp_path_factory):
    texts, Y = make_toy_data(120, seed=0)
    clf = TransformerMultiLabelClassifier(tiny_bert, max_epochs=2, batch_size=16, lr=3e-3, random_state=0)
    clf.fit(texts, Y)
    clf.classes_ = np.asarray(LABELS, dtype=object)
    return clf.save(tmp_path_factory.mktemp("dask") / "model")


def _loaded_models() -> int:
    from sktext import dask as sktext_dask

    return len(sktext_dask._MODELS)


def test_predict_dask_dataframe_by_partition(client, model_folder):
    texts = make_toy_data(50, seed=9)[0]
    frame = pd.DataFrame({"id": range(50), "text": texts}, index=pd.RangeIndex(100, 150))
    ddf = dd.from_pandas(frame, npartitions=6)
    expected = load_model(model_folder)
    labels = predict_dask(model_folder, ddf, text_column="text")
    assert list(labels.columns) == LABELS
    result = labels.compute()
    assert list(result.index) == list(frame.index) and result.dtypes.unique().tolist() == [np.int8]
    np.testing.assert_array_equal(result.to_numpy(), expected.predict(texts))
    proba = predict_dask(model_folder, ddf["text"], proba=True).compute()
    np.testing.assert_allclose(proba.to_numpy(), expected.predict_proba(texts), atol=1e-6)
    # Six partitions, twice over, and each worker loaded the model once.
    assert sorted(client.run(_loaded_models).values()) == [1, 1]


def test_predict_dask_bag_of_records_and_of_texts(client, model_folder):
    texts = make_toy_data(20, seed=4)[0]
    expected = load_model(model_folder).predict(texts)
    records = dask_bag.from_sequence([{"text": text} for text in texts], npartitions=3)
    lists = predict_dask(model_folder, records).compute()
    assert lists == [[name for name, on in zip(LABELS, row) if on] for row in expected]
    proba = predict_dask(
        model_folder, dask_bag.from_sequence(texts, npartitions=2), text_column=None, proba=True
    ).compute()
    assert list(proba[0]) == LABELS and len(proba) == 20


def test_a_partition_is_predicted_a_chunk_of_texts_at_a_time(model_folder, monkeypatch):
    """Many labels: no dense (partition, n_labels) probabilities for 0/1 predictions, the same labels."""
    import sktext.thresholds
    from sktext import dask as sktext_dask

    texts = make_toy_data(23, seed=6)[0]
    estimator = load_model(model_folder)
    expected = estimator.predict(texts)
    sizes = []
    monkeypatch.setattr(sktext_dask, "_worker_model", lambda folder: estimator)
    monkeypatch.setattr(sktext.thresholds, "PREDICT_CHUNK_ENTRIES", 4 * len(LABELS))  # 4 texts a chunk
    original = type(estimator).predict_proba
    monkeypatch.setattr(type(estimator), "predict_proba", lambda self, X: sizes.append(len(X)) or original(self, X))
    lists = sktext_dask._predict_bag_partition(texts, str(model_folder), None, False, LABELS)
    assert sizes == [4] * 5 + [3]
    assert lists == [[name for name, on in zip(LABELS, row) if on] for row in expected]
    frame = sktext_dask._predict_frame(pd.DataFrame({"text": texts}), str(model_folder), "text", False, LABELS)
    np.testing.assert_array_equal(frame.to_numpy(), expected)


def test_predict_dask_refuses_what_it_cannot_label(model_folder, tiny_bert, tmp_path):
    ddf = dd.from_pandas(pd.DataFrame({"body": ["a game"]}), npartitions=1)
    with pytest.raises(ValueError, match="no text column 'text'.*'body'"):
        predict_dask(model_folder, ddf)
    with pytest.raises(TypeError, match="from_pandas"):
        predict_dask(model_folder, pd.DataFrame({"text": ["a game"]}))
    texts, Y = make_toy_data(40, seed=0)
    regressor = TransformerRegressor(tiny_bert, max_epochs=1, random_state=0).fit(texts, Y[:, 0] * 1.0)
    with pytest.raises(ValueError, match="multi-label classifier.*TransformerRegressor"):
        predict_dask(regressor.save(tmp_path / "regressor"), ddf)


def test_without_dask_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "sktext\[dask\]"'):
        local_cluster(1, gpus=None)
