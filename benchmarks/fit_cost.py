"""Where a fit's seconds go, and what is spent outside the network.

Two parts, each printing a table and writing JSON to ``benchmarks/results/``:

``proxy`` (issue 24's CPU proxies; run it in every session, with or without a GPU)
    A tiny random 2-layer encoder (hidden size 32, the default model's tokenizer), so
    that the network costs little, fitted with ``max_epochs=1`` on all 24,607 debtags
    train texts; then ``predict_proba`` of the 5,693 test texts. It reports the fit's
    seconds outside the network (the fit's wall time minus skorch's epoch ``dur``), the
    fit's stages (``fit_seconds_``), and ``predict_proba``'s seconds split into
    tokenizing, the network and the lexical margins, each timed alone, with the
    previous way in the same run (``predict_serial_s``: the tokenizer's own call, then
    the network, then the margins by scikit-learn's ``transform`` and the sparse
    product, one after the other; ``predict_tokenize_hf_s``: that tokenizing alone;
    ``predict_lexical_before_s``: those margins alone), and for requests of 1 and 16
    texts the milliseconds of ``predict_proba`` and of the lexical margins, now and the
    way before (``request_*_ms``). Beside sktext 0.1's behaviour,
    set by parameter in the same run (the lexical part's two fits on one core:
    ``lexical=TfidfLinearClassifier(class_weight="balanced")`` with ``n_jobs=None``;
    prediction in batches of ``2 * batch_size`` texts with the lexical margins after the
    network), the default until its SVMs weighed every text alike and fitted once from
    10,000 texts on ("balanced SVMs": cost-sensitive SVMs on every core, fitted twice), and
    ``lexical_refit=True`` (two lexical fits; ``lexical_refit=False``, one, is the default
    at this size).

``stages``
    Each estimator at its defaults (``TransformerMultiLabelClassifier()``, the same
    with ``freeze_encoder=True``, ``ULMFiTClassifier()``) on ``--n-train`` debtags
    texts, short (the descriptions as they are) and long (``--join`` descriptions of
    the training texts joined into one, about 330 words, their labels united):
    ``fit_seconds_`` (tokenizing, for ULMFiT the vocabulary and the language-model
    stage, the network's epochs, validation logits, the lexical part, the blend,
    threshold tuning), the seconds of each epoch, saving the model folder, and for the
    transformer the forward and backward seconds of each encoder layer over
    ``--layer-steps`` training steps.

Every result records the CPU (model, family, bf16 / AMX flags), torch's threads and
the commit.

Examples
--------
The CPU proxy (about 15 minutes on two idle cores)::

    python benchmarks/fit_cost.py proxy

Where the defaults' seconds go on 250 short and 250 long texts::

    python benchmarks/fit_cost.py stages --n-train 250 --estimators transformer frozen
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    add_data_arguments,
    build_tiny_encoder,
    format_table,
    load_debtags,
    machine_info,
    scores,
    subsample,
    write_results,
)

STAGES = ("encoding", "training", "validation_logits", "lexical", "blend", "thresholds")


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


# ----------------------------------------------------------------------------- proxy
def _old_predict_proba(clf, texts: list[str]) -> tuple[np.ndarray, dict[str, float]]:
    """``predict_proba`` as sktext 0.1 ran it: batches of ``2 * batch_size`` texts, lexical margins after the network."""
    from scipy.special import expit

    from sktext.lexical import apply_blend

    parts = {}
    dataset, parts["tokenize_s"] = _timed(_hf_call_encode, clf, texts)
    logits, parts["network_s"] = _timed(clf._logits, dataset, by_tokens=False)
    margins, parts["lexical_s"] = _timed(_lexical_margins_before, clf.lexical_, texts)
    logits = apply_blend(clf.blend_weights_, clf.blend_centre_, logits, margins)
    return expit(logits), parts


def _lexical_margins_before(lexical, texts: list[str]) -> np.ndarray:
    """The lexical margins as computed before the term index and the gathered weights:
    scikit-learn's ``transform``, then the sparse product (or the dense one)."""
    features, coef = lexical.vectorizer_.transform(texts), lexical.coef_
    if not sp.issparse(coef):
        return np.asarray(features @ coef.T, dtype=np.float64) + lexical.intercept_
    return np.asarray((coef @ features.T.tocsr()).T.toarray(), dtype=np.float64) + lexical.intercept_


def _hf_call_encode(clf, texts: list[str]):
    """Tokenizing as before the private backend: the Hugging Face tokenizer's own call."""
    from sktext.transformer import effective_max_length, encode_by_tokenizer_call, position_limit

    tokenizer = clf.tokenizer_
    max_length = effective_max_length(tokenizer, clf._kept_length(), position_limit(clf.module_.encoder.config))
    return encode_by_tokenizer_call(tokenizer, texts, max_length)


def _new_predict_parts(clf, texts: list[str]) -> dict[str, float]:
    """The default prediction's parts, each timed alone, and the previous way in a row.

    ``serial_s``: tokenizing (the tokenizer's own call), the network and the lexical
    margins (the way before, below) one after the other, as ``predict_proba`` ran them
    before the margins moved to a thread beside the network; ``tokenize_hf_s`` that tokenizing alone;
    ``lexical_before_s`` the margins as before the term index and the gathered weights
    (scikit-learn's ``transform`` and the sparse product). A dense
    ``coef_`` is stored in Fortran order; ``lexical_c_order_s`` times the lexical part
    once more with a C-ordered copy, as it was kept before.
    """
    from scipy.special import expit

    from sktext.lexical import apply_blend

    parts = {}
    dataset, parts["tokenize_s"] = _timed(clf._encode, texts)
    _, parts["tokenize_hf_s"] = _timed(_hf_call_encode, clf, texts)
    _, parts["network_s"] = _timed(clf._logits, dataset)
    _, parts["lexical_s"] = _timed(clf.lexical_.decision_function, texts)
    _, parts["lexical_before_s"] = _timed(_lexical_margins_before, clf.lexical_, texts)

    def serial():
        logits = clf._logits(_hf_call_encode(clf, texts))
        margins = _lexical_margins_before(clf.lexical_, texts)
        return expit(apply_blend(clf.blend_weights_, clf.blend_centre_, logits, margins))

    _, parts["serial_s"] = _timed(serial)
    coef = clf.lexical_.coef_
    if isinstance(coef, np.ndarray):
        clf.lexical_.coef_ = np.ascontiguousarray(coef)
        _, parts["lexical_c_order_s"] = _timed(clf.lexical_.decision_function, texts)
        clf.lexical_.coef_ = coef
    return parts


def _small_requests(clf, texts: list[str], sizes=(1, 16), repeats: int = 30) -> dict[str, float]:
    """Milliseconds (median of ``repeats``) of ``predict_proba`` and of the lexical margins
    for a request of each of ``sizes`` texts, the margins also the way before."""
    row = {}
    for size in sizes:
        request = texts[:size]
        calls = {
            f"request_{size}_predict_proba_ms": (clf.predict_proba, request),
            f"request_{size}_lexical_ms": (clf.lexical_.decision_function, request),
            f"request_{size}_lexical_before_ms": (_lexical_margins_before, clf.lexical_, request),
        }
        for key, (function, *arguments) in calls.items():
            function(*arguments)
            row[key] = 1000 * statistics.median(_timed(function, *arguments)[1] for _ in range(repeats))
    return row


def run_proxy(args) -> dict:
    from sktext import TransformerMultiLabelClassifier
    from sktext.distributed import available_cores
    from sktext.lexical import TfidfLinearClassifier

    data = load_debtags(args.data_dir)
    train_texts, train_Y = subsample(data.train_texts, data.train_Y, args.max_train, random_state=0)
    test_texts, test_Y = data.test_texts[: args.max_test], data.test_Y[: args.max_test]
    work = Path(tempfile.mkdtemp(prefix="sktext-fit-cost-"))
    encoder = str(build_tiny_encoder(work / "encoder"))
    settings = {
        "sktext 0.1": dict(lexical=TfidfLinearClassifier(class_weight="balanced", random_state=0), lexical_refit=True),
        "balanced SVMs": dict(
            lexical=TfidfLinearClassifier(class_weight="balanced", random_state=0, n_jobs=available_cores()),
            lexical_refit=True,
        ),
        "default": {},
        "lexical_refit=True": dict(lexical_refit=True),
        "lexical_refit=False": dict(lexical_refit=False),
    }
    rows = []
    for name in args.settings:
        params = settings[name]
        clf = TransformerMultiLabelClassifier(encoder, max_epochs=1, random_state=args.seed, **params)
        _, fit_s = _timed(clf.fit, train_texts, train_Y)
        epochs_s = float(sum(row["dur"] for row in clf.history_))
        row = {
            "setting": name,
            "fit_s": fit_s,
            "epochs_s": epochs_s,
            "outside_network_s": fit_s - epochs_s,
            **{f"{stage}_s": clf.fit_seconds_.get(stage, 0.0) for stage in STAGES},
        }
        clf.predict_proba(test_texts[:200])  # warm-up
        predict_times, parts = [], []
        for _ in range(args.repeats):
            if name != "sktext 0.1":
                proba, seconds = _timed(clf.predict_proba, test_texts)
                parts.append(_new_predict_parts(clf, test_texts))
            else:
                (proba, part), seconds = _timed(_old_predict_proba, clf, test_texts)
                parts.append(part)
            predict_times.append(seconds)
        row["predict_proba_s"] = statistics.median(predict_times)
        for key in parts[0]:
            row[f"predict_{key}"] = statistics.median(part[key] for part in parts)
        if name != "sktext 0.1":
            row.update(_small_requests(clf, test_texts))
        predicted = (proba >= clf.thresholds_).astype(int)
        metrics = scores(test_Y, predicted, proba)
        row.update(micro_f1=metrics["micro_f1"], macro_f1=metrics["macro_f1"])
        rows.append(row)
        print(
            f"  {name}: fit {fit_s:.1f} s (epochs {epochs_s:.1f} s, outside {fit_s - epochs_s:.1f} s), "
            f"predict_proba {row['predict_proba_s']:.2f} s",
            flush=True,
        )
    columns = [
        "setting",
        "fit_s",
        "epochs_s",
        "outside_network_s",
        *[f"{stage}_s" for stage in STAGES],
        "predict_proba_s",
        "predict_serial_s",
        "predict_tokenize_s",
        "predict_tokenize_hf_s",
        "predict_network_s",
        "predict_lexical_s",
        "predict_lexical_before_s",
        "request_1_predict_proba_ms",
        "request_1_lexical_ms",
        "request_1_lexical_before_ms",
        "request_16_lexical_ms",
        "request_16_lexical_before_ms",
        "micro_f1",
        "macro_f1",
    ]
    print(
        f"\nTiny 2-layer encoder, max_epochs=1, {len(train_texts)} train texts; predict_proba of "
        f"{len(test_texts)} test texts (median of {args.repeats}); its parts timed one by one."
    )
    print(format_table(rows, columns))
    return {"rows": rows, "n_train": len(train_texts), "n_test": len(test_texts)}


# ---------------------------------------------------------------------------- stages
def long_texts(texts: list[str], Y: np.ndarray, n: int, join: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` long texts, each ``join`` random descriptions joined, with the union of their labels."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(texts), size=(n, join), replace=len(texts) < n * join)
    joined = ["\n\n".join(texts[i] for i in group) for group in rows]
    return joined, np.stack([Y[group].max(axis=0) for group in rows])


def layer_seconds(clf, texts: list[str], Y: np.ndarray, steps: int) -> list[dict]:
    """Forward and backward seconds of each encoder layer over ``steps`` training steps of the fitted model."""
    import torch

    from sktext.batching import LengthBucketSampler

    module = clf.module_
    layers = list(module.encoder.encoder.layer) if hasattr(module.encoder, "encoder") else []
    if not layers:
        return []
    dataset = clf._encode(texts).with_targets(np.asarray(Y, dtype=np.float32))
    sampler = itertools.cycle(list(LengthBucketSampler(dataset.lengths, clf.batch_size, seed=0)))  # steps > batches
    clock: dict[tuple[int, str], float] = {}
    marks: dict[tuple[int, str], float] = {}
    handles = []
    for index, layer in enumerate(layers):

        def start(name, i=index):
            return lambda *_: marks.__setitem__((i, name), time.perf_counter())

        def stop(name, i=index):
            def hook(*_):
                clock[(i, name)] = clock.get((i, name), 0.0) + time.perf_counter() - marks[(i, name)]

            return hook

        handles += [
            layer.register_forward_pre_hook(start("forward")),
            layer.register_forward_hook(stop("forward")),
            layer.register_full_backward_pre_hook(start("backward")),
            layer.register_full_backward_hook(stop("backward")),
        ]
    module.train()
    criterion = torch.nn.BCEWithLogitsLoss()
    dtype = clf._compute_dtype()
    try:
        for _ in range(steps):
            inputs, targets = dataset.__getitems__(next(sampler))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                logits = module(**inputs)
            criterion(logits.float(), targets).backward()
            module.zero_grad(set_to_none=True)
    finally:
        for handle in handles:
            handle.remove()
        module.eval()
    return [
        {"layer": i, "forward_s": clock.get((i, "forward"), 0.0), "backward_s": clock.get((i, "backward"), 0.0)}
        for i in range(len(layers))
    ]


def make_estimator(name: str, seed: int):
    from sktext import TransformerMultiLabelClassifier, ULMFiTClassifier

    if name == "transformer":
        return TransformerMultiLabelClassifier(random_state=seed)
    if name == "frozen":
        return TransformerMultiLabelClassifier(freeze_encoder=True, random_state=seed)
    if name == "ulmfit":
        return ULMFiTClassifier(random_state=seed)
    raise ValueError(f"unknown estimator {name!r}")


def run_stages(args) -> dict:
    data = load_debtags(args.data_dir)
    short = subsample(data.train_texts, data.train_Y, args.n_train, random_state=args.seed)
    corpora = {"short": short, "long": long_texts(data.train_texts, data.train_Y, args.n_train, args.join, args.seed)}
    rows, layers = [], []
    for corpus in args.corpora:
        texts, Y = corpora[corpus]
        words = float(np.mean([len(text.split()) for text in texts]))
        for name in args.estimators:
            clf = make_estimator(name, args.seed)
            _, fit_s = _timed(clf.fit, texts, Y)
            with tempfile.TemporaryDirectory() as folder:
                _, save_s = _timed(clf.save, Path(folder) / "model")
            epochs = [float(row["dur"]) for row in clf.history_]
            row = {
                "estimator": name,
                "texts": corpus,
                "words": words,
                "fit_s": fit_s,
                **{f"{stage}_s": clf.fit_seconds_.get(stage, 0.0) for stage in STAGES},
                "epochs": len(epochs),
                "epoch_s": float(np.mean(epochs)) if epochs else 0.0,
                "save_s": save_s,
            }
            rows.append(row)
            print(f"  {name} on {corpus} texts: fit {fit_s:.1f} s", flush=True)
            if name == "transformer" and args.layer_steps:  # the frozen encoder takes no backward
                for layer in layer_seconds(clf, texts, Y, args.layer_steps):
                    layers.append({"estimator": name, "texts": corpus, **layer})
    columns = ["estimator", "texts", "words", "fit_s", *[f"{s}_s" for s in STAGES], "epochs", "epoch_s", "save_s"]
    print(f"\n{args.n_train} debtags train texts, each estimator at its defaults")
    print(format_table(rows, columns))
    if layers:
        print(f"\nEncoder layers over {args.layer_steps} training steps (batch {32}), seconds")
        print(format_table(layers, ["estimator", "texts", "layer", "forward_s", "backward_s"]))
    return {"rows": rows, "layers": layers}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["proxy", "stages"])
    add_data_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="proxy: predict_proba runs (median)")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["sktext 0.1", "balanced SVMs", "default", "lexical_refit=True"],
        choices=["sktext 0.1", "balanced SVMs", "default", "lexical_refit=True", "lexical_refit=False"],
        help=(
            "proxy: which fits to run (sktext 0.1's behaviour set by parameter; the default before its "
            "SVMs weighed every text alike and lexical_refit was 'auto'; the default; two lexical fits; one)"
        ),
    )
    parser.add_argument("--n-train", type=int, default=250, help="stages: texts per corpus")
    parser.add_argument("--join", type=int, default=6, help="stages: descriptions joined into one long text")
    parser.add_argument("--corpora", nargs="+", default=["short", "long"], choices=["short", "long"])
    parser.add_argument("--estimators", nargs="+", default=["transformer", "frozen", "ulmfit"])
    parser.add_argument("--layer-steps", type=int, default=10, help="stages: steps timed per layer (0: none)")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/fit_cost_<part>.json)")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_proxy(args) if args.part == "proxy" else run_stages(args)
    payload = {
        "benchmark": f"fit_cost_{args.part}",
        "machine": machine_info("cpu"),
        "torch_threads": torch.get_num_threads(),
        "config": vars(args),
        **result,
    }
    path = write_results(f"fit_cost_{args.part}", payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
