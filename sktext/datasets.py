"""The real multi-label text sample bundled with sktext.

``debtags_sample.jsonl.gz`` holds 4,000 Debian package descriptions, each tagged
with one or more Debtags: 3,000 for training and 1,000 for testing, over the 40
most frequent tags.

Provenance
----------
The full data set ("debtags") was built from the Debian 12 *bookworm* **main**
archive lists for amd64 (archive release 12.15): the ``Packages`` list (package,
source package, ``Tag:`` field) and ``i18n/Translation-en`` (long descriptions).
Each text is the package's short description, a newline, and its long description
as plain text; the labels are the package's debtags (``facet::tag``), without the
``*::TODO`` review placeholders. The full data is split by *source* package (source
packages that ship an identical text are grouped first), so sibling binaries such as
``libfoo1`` / ``libfoo-dev`` / ``libfoo-doc`` never straddle train and test and no test
text appears verbatim in train. It has 24,607 train and 5,693 test records over
326 labels.

The sample was drawn from it by ``benchmarks/build_sample.py`` (deterministic):

1. keep the 40 most frequent labels of the full train split and remove every
   other label from every record;
2. drop the records left with no label (so every record has at least one);
3. draw 3,000 of the remaining train records and 1,000 of the remaining test
   records at random (``random.Random(20261122)``).

Since the sample's splits come from the full data's splits, the sample's test
records share no package, source package or text with its train records.

License: the texts and tags are the Debian archive's package metadata (package
descriptions written by each package's maintainers or upstream authors, tags from
the Debtags project), redistributed as archive metadata; no package contents are
included.

Tags are noisy and incomplete: Debtags coverage is uneven, so a missing tag often
means "not tagged" rather than "does not apply". Expect modest F1 scores.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
from sklearn.utils import Bunch

from .io import read_jsonl

__all__ = ["load_debtags_sample"]

_SAMPLE_FILE = "debtags_sample.jsonl.gz"
_SUBSETS = ("train", "test", "all")

_DESCR = """\
.. _debtags_sample:

Debtags sample (Debian package descriptions -> debtags)
-------------------------------------------------------

Multi-label text classification: predict the Debtags of a Debian package from
its description.

**Data set characteristics**

=================  ==========================================
Records            4,000 (3,000 train, 1,000 test)
Labels             40 (the most frequent debtags in train)
Labels per record  2.7 on average, at least 1
Text               short description + newline + long description,
                   plain English, median about 50 words
Source             Debian 12 bookworm main (amd64): Packages and
                   Translation-en lists, Debtags ``Tag:`` field
=================  ==========================================

The train and test records come from disjoint sets of Debian source packages.
Tags are incomplete: a missing tag often means "not tagged" rather than "does
not apply". The texts and tags are Debian archive metadata, redistributed as
such. See ``sktext.datasets`` for how the sample was drawn.
"""


def _read_sample() -> list[dict[str, Any]]:
    """All records of the bundled sample, train first, in file order."""
    with resources.as_file(resources.files("sktext") / "data" / _SAMPLE_FILE) as path:
        return read_jsonl(path)


def load_debtags_sample(
    *, subset: str = "train", as_frame: bool = False, return_X_y: bool = False
) -> Bunch | tuple[list[str], np.ndarray]:
    """Load the bundled sample of Debian package descriptions and their debtags.

    A small real multi-label text data set: 3,000 train and 1,000 test records,
    40 labels, every record with at least one label. Read the module docstring
    (``sktext.datasets``) for its provenance.

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="train"
        Which records to return. ``"all"`` gives the train records then the test
        records.
    as_frame : bool, default=False
        If True, also return the records as a pandas DataFrame in ``frame``
        (columns ``id``, ``source``, ``text``, ``labels``, ``split``). Needs pandas.
    return_X_y : bool, default=False
        If True, return ``(texts, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the fields:

        texts : list of str of length n_samples
            The package descriptions.
        labels : list of list of str
            The labels of each record, sorted; each is in ``label_names``.
        target : ndarray of shape (n_samples, n_labels), dtype=int
            ``labels`` as a binary indicator matrix, columns in the order of
            ``label_names`` (what ``MultiLabelBinarizer(classes=label_names)``
            gives).
        label_names : list of str of length n_labels
            The 40 labels, sorted alphabetically (the same for every subset).
        ids : list of str
            Binary package names, unique over the whole sample.
        sources : list of str
            Source package names.
        frame : pandas.DataFrame or None
            The records as a DataFrame if ``as_frame=True``, else None.
        DESCR : str
            A description of the data set.

    (texts, target) : tuple
        If ``return_X_y=True``.

    Examples
    --------
    >>> from sktext.datasets import load_debtags_sample
    >>> train = load_debtags_sample(subset="train")
    >>> len(train.texts), train.target.shape
    (3000, (3000, 40))
    >>> train.label_names[:3]
    ['devel::doc', 'devel::lang:c', 'devel::lang:java']

    To binarize label lists yourself, for example predictions turned back into
    tags, fix the classes to ``label_names``:

    >>> from sklearn.preprocessing import MultiLabelBinarizer
    >>> mlb = MultiLabelBinarizer(classes=train.label_names)
    >>> Y = mlb.fit_transform(train.labels)
    >>> bool((Y == train.target).all())
    True
    >>> mlb.inverse_transform(Y[:1])
    [('role::documentation',)]
    """
    if subset not in _SUBSETS:
        raise ValueError(
            f"The 'subset' parameter of load_debtags_sample must be one of {_SUBSETS}; got {subset!r} instead."
        )
    records = _read_sample()
    label_names = sorted({label for record in records for label in record["labels"]})
    if subset != "all":
        records = [record for record in records if record["split"] == subset]

    texts = [record["text"] for record in records]
    labels = [list(record["labels"]) for record in records]
    column = {label: index for index, label in enumerate(label_names)}
    target = np.zeros((len(records), len(label_names)), dtype=int)
    for row, record_labels in enumerate(labels):
        target[row, [column[label] for label in record_labels]] = 1
    if return_X_y:
        return texts, target

    frame = None
    if as_frame:
        import pandas as pd

        frame = pd.DataFrame.from_records(records, columns=["id", "source", "text", "labels", "split"])
    return Bunch(
        texts=texts,
        labels=labels,
        target=target,
        label_names=label_names,
        ids=[record["id"] for record in records],
        sources=[record["source"] for record in records],
        frame=frame,
        DESCR=_DESCR,
    )
