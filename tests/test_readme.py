"""The README's grid-search example runs as written, with a tiny model and fewer texts."""

import warnings
from pathlib import Path

import pytest

import sktext.base
import sktext.datasets
import sktext.pretrained

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(marker) + 2  # the marker, then the opening fence
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
    return "\n".join(lines[start:end])


@pytest.fixture
def small_and_tiny(monkeypatch, tiny_bert):
    """The bundled sample cut to 150 texts, and the tiny BERT for the default model."""
    real_loader = sktext.datasets.load_debtags_sample

    def small_sample(**kwargs):
        bunch = real_loader(**kwargs)
        bunch.texts, bunch.labels = bunch.texts[:150], bunch.labels[:150]
        return bunch

    monkeypatch.setattr(sktext.datasets, "load_debtags_sample", small_sample)
    monkeypatch.setattr(sktext.pretrained, "resolve_model_path", lambda name: tiny_bert)


def run_readme_block(marker: str) -> None:
    exec(compile(readme_block(marker), "README.md", "exec"), {})


def test_grid_search_example_runs(small_and_tiny, capsys):
    run_readme_block("<!-- example: grid-search -->")
    printed = capsys.readouterr().out
    assert "clf__lr" in printed and "micro avg" in printed and "role::program" in printed


def test_optuna_search_example_runs(small_and_tiny, monkeypatch, capsys):
    pytest.importorskip("optuna_integration")
    monkeypatch.setattr(sktext.base, "MAX_AUTO_EPOCHS", 3)  # "auto" on 150 texts: 3 epochs, not 40
    optuna = pytest.importorskip("optuna")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # OptunaSearchCV's
        warnings.simplefilter("ignore", FutureWarning)  # optuna's own deprecations
        run_readme_block("<!-- example: optuna-search -->")
    printed = capsys.readouterr().out
    assert "'lr'" in printed and "'max_epochs'" in printed


def test_halving_search_example_runs(small_and_tiny, capsys):
    run_readme_block("<!-- example: halving-search -->")
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "[1, 3] [3, 1]"
    assert "'max_epochs': 3" in printed[1]


def test_ci_runs_the_readme_commands():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "<!-- ci: $1 -->" in ci and "for step in setup tests" in ci
    assert readme_block("<!-- ci: setup -->").endswith("python3 -m sktext.demo")
    tests = readme_block("<!-- ci: tests -->")
    assert tests == "python3 -m ruff check . && python3 -m ruff format --check . && python3 -m pytest"


def test_mlflow_example_writes_runs_we_read_back(small_and_tiny, monkeypatch, tmp_path, capsys):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_block("<!-- example: mlflow -->"), "README.md", "exec"), namespace)
    clf = namespace["clf"]

    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("sktext")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    for metric in ("train_loss", "valid_loss"):
        logged = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
        assert [m.step for m in logged] == list(range(1, len(clf.history_) + 1))
        assert [m.value for m in logged] == pytest.approx([row[metric] for row in clf.history_])
    assert "valid_loss [" in capsys.readouterr().out


def test_distillation_example_runs(small_and_tiny, capsys):
    run_readme_block("<!-- example: distillation -->")
    soft_line, distilled_line = capsys.readouterr().out.strip().splitlines()[-2:]
    assert soft_line.startswith("True ")
    micro, valid_micro = map(float, distilled_line.split())
    assert 0 < micro <= 1 and 0 <= valid_micro <= 1
