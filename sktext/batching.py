"""Token-id storage, length-bucketed batching and vectorised dynamic padding.

Texts are tokenized once per fit into :class:`TokenizedTexts`, a flat id array plus
offsets. A batch is built for a whole list of indices at once (``__getitems__``), so
the hot path does no per-sample Python work: padding is one fancy-indexing step.
:class:`LanguageModelBatches` is the language model's counterpart: the texts as
parallel token streams cut into BPTT windows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, Sampler

from .validation import dense_rows


class TokenizedTexts(Dataset):
    """Ragged token ids of many texts, with optional 0/1 targets.

    Parameters
    ----------
    ids : ndarray of shape (n_tokens,)
        All texts' token ids, concatenated.
    offsets : ndarray of shape (n_texts + 1,)
        Text ``i`` holds ``ids[offsets[i]:offsets[i + 1]]``.
    pad_id : int
        Id written into padding positions.
    y : ndarray of shape (n_texts, n_labels), default=None
        Targets, float32.
    sample_weight : ndarray of shape (n_texts,), default=None
        Weight of each text in the loss; batches then carry it as the input
        ``"sample_weight"``, which :class:`~sktext.net.TextNet` takes out before the
        forward pass.
    """

    def __init__(
        self,
        ids: np.ndarray,
        offsets: np.ndarray,
        pad_id: int,
        y: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        self.ids = ids
        self.offsets = offsets
        self.pad_id = int(pad_id)
        self._y = y
        self._target_rows: np.ndarray | None = None  # a subset's rows of ``_y``, read per batch
        self.sample_weight = sample_weight

    @classmethod
    def from_sequences(
        cls, sequences: Sequence[Sequence[int]], pad_id: int, y: np.ndarray | None = None
    ) -> TokenizedTexts:
        """Build from one id sequence per text."""
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(offsets[-1]))
        return cls(ids, offsets, pad_id, y)

    @property
    def y(self) -> np.ndarray | None:
        """The texts' targets (a subset's are gathered from its parent's on each access)."""
        if self._y is None or self._target_rows is None:
            return self._y
        return self._y[self._target_rows]

    @property
    def lengths(self) -> np.ndarray:
        """Number of tokens of each text."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def with_targets(self, y: np.ndarray | None, sample_weight: np.ndarray | None = None) -> TokenizedTexts:
        """The same texts with other targets (and weights)."""
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
        return TokenizedTexts(self.ids, self.offsets, self.pad_id, y, weights)

    def subset(self, indices: np.ndarray) -> TokenizedTexts:
        """A new dataset holding the texts at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        starts, lengths = self.offsets[indices], self.lengths[indices]
        offsets = np.zeros(len(indices) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        weights = None if self.sample_weight is None else self.sample_weight[indices]
        subset = TokenizedTexts(self.ids[positions], offsets, self.pad_id, self._y, weights)
        # The targets stay where they are, the subset keeps its rows of them: the training
        # and validation parts of a fit at 20,000 labels would copy 1.6 GB of float32.
        subset._target_rows = indices if self._target_rows is None else self._target_rows[indices]
        return subset

    def __getitem__(self, index: int):
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]):
        """Pad the texts at ``indices`` to their longest one: ``(inputs, targets)``."""
        indices = np.asarray(indices, dtype=np.int64)
        starts, lengths = self.offsets[indices], self.lengths[indices]
        width = max(int(lengths.max(initial=0)), 1)
        steps = np.arange(width)
        mask = steps[None, :] < lengths[:, None]
        input_ids = np.full((len(indices), width), self.pad_id, dtype=np.int64)
        input_ids[mask] = self.ids[(starts[:, None] + steps[None, :])[mask]]
        inputs = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(mask.astype(np.int64)),
        }
        if self.sample_weight is not None:
            inputs["sample_weight"] = torch.from_numpy(self.sample_weight[indices])
        rows = indices if self._target_rows is None else self._target_rows[indices]
        targets = None if self._y is None else torch.from_numpy(dense_rows(self._y, rows))
        return inputs, targets


def collate_prebatched(batch):
    """Collate function for datasets whose ``__getitems__`` already builds the batch."""
    return batch


class LengthBucketSampler(Sampler):
    """Batches of similar length, in random order, for training.

    Each epoch: shuffle all indices, cut them into chunks of ``batch_size *
    chunk_batches``, sort each chunk by length, cut it into batches, then shuffle the
    order of the batches (the longest batch goes first, so an out-of-memory error
    shows at once). Padding then costs little while batches stay random.

    Parameters
    ----------
    lengths : ndarray of shape (n_texts,)
    batch_size : int
    chunk_batches : int, default=50
        Batches per sorting chunk.
    seed : int, default=0
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, chunk_batches: int = 50, seed: int = 0) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = int(batch_size)
        self.chunk_batches = int(chunk_batches)
        self.generator = np.random.default_rng(seed)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        permutation = self.generator.permutation(len(self.lengths))
        chunk = self.batch_size * self.chunk_batches
        batches = []
        for start in range(0, len(permutation), chunk):
            part = permutation[start : start + chunk]
            part = part[np.argsort(-self.lengths[part], kind="stable")]
            batches.extend(np.split(part, range(self.batch_size, len(part), self.batch_size)))
        order = self.generator.permutation(len(batches))
        longest = int(np.argmax([self.lengths[b].max() for b in batches]))
        order = np.concatenate([[longest], order[order != longest]])
        return iter([batches[i].tolist() for i in order])


class StepsPerEpochSampler(Sampler):
    """``steps`` batches per epoch, taken in turn from the passes of ``sampler``.

    An epoch then ends after ``steps`` optimizer steps rather than after one pass over
    the data (Keras's ``steps_per_epoch``): the next epoch goes on where the last one
    stopped, and a new pass of ``sampler`` (a fresh shuffle) starts whenever one runs
    out, so every text is seen once per pass whatever ``steps`` is.

    Parameters
    ----------
    sampler : LengthBucketSampler
        Gives one pass's batches per iteration.
    steps : int
        Batches per epoch.

    Attributes
    ----------
    pending : list of list of int
        The current pass's batches not yet given out (part of a training checkpoint).
    """

    def __init__(self, sampler: LengthBucketSampler, steps: int) -> None:
        self.sampler = sampler
        self.steps = int(steps)
        self.pending: list[list[int]] = []

    @property
    def generator(self) -> np.random.Generator:
        """The generator of the passes' order (its state is part of a training checkpoint)."""
        return self.sampler.generator

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            if not self.pending:
                self.pending = list(self.sampler)
            yield self.pending.pop(0)


class SequentialBatchSampler(Sampler):
    """Consecutive batches in dataset order (datasets are pre-sorted by length for inference)."""

    def __init__(self, n_samples: int, batch_size: int) -> None:
        self.n_samples = int(n_samples)
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return -(-self.n_samples // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, self.n_samples, self.batch_size):
            yield list(range(start, min(start + self.batch_size, self.n_samples)))


class TokenBudgetBatchSampler(Sampler):
    """Consecutive batches of a dataset sorted by decreasing length, each at most ``max_tokens`` padded tokens.

    A batch is padded to its first (longest) text, so it takes texts while
    ``n_texts * longest <= max_tokens`` (at least one text). Short texts then run
    many to a batch, and the per-batch cost of a forward pass is paid fewer times.
    """

    def __init__(self, lengths: np.ndarray, max_tokens: int) -> None:
        self.lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
        self.max_tokens = int(max_tokens)
        self._bounds = self._plan()

    def _plan(self) -> list[tuple[int, int]]:
        bounds, start, n = [], 0, len(self.lengths)
        while start < n:
            size = max(1, self.max_tokens // int(self.lengths[start]))
            bounds.append((start, min(n, start + size)))
            start += size
        return bounds

    def __len__(self) -> int:
        return len(self._bounds)

    def __iter__(self) -> Iterator[list[int]]:
        for start, stop in self._bounds:
            yield list(range(start, stop))


def sort_by_length(dataset: TokenizedTexts) -> tuple[TokenizedTexts, np.ndarray]:
    """Return the dataset sorted by decreasing length and the permutation used."""
    order = np.argsort(-dataset.lengths, kind="stable")
    return dataset.subset(order), order


class LanguageModelBatches(IterableDataset):
    """Token streams cut into BPTT windows, one pass per iteration.

    Each pass shuffles the texts, concatenates them, splits the result into
    ``batch_size`` parallel streams, and yields ``(inputs, targets)`` windows in
    order, so the LSTM state carries from one batch to the next. Window lengths
    jitter as in fastai v1: ``bptt`` with probability 0.95 else ``bptt / 2``,
    then a normal draw with standard deviation 5, at least 5 tokens.

    Parameters
    ----------
    documents : list of ndarray of int64
        Token ids of each text.
    batch_size : int
    bptt : int
    random_state : int or None
        Seed of the shuffles and window lengths.
    shuffle : bool, default=True
    jitter : bool, default=True
    """

    def __init__(
        self,
        documents: Sequence[np.ndarray],
        batch_size: int,
        bptt: int,
        random_state: int | None = None,
        shuffle: bool = True,
        jitter: bool = True,
    ) -> None:
        super().__init__()
        self.documents = list(documents)
        self.batch_size = batch_size
        self.bptt = bptt
        self.shuffle = shuffle
        self.jitter = jitter
        n_tokens = sum(len(document) for document in self.documents)
        self.stream_length = n_tokens // batch_size
        if self.stream_length < 2:
            raise ValueError(
                f"The texts hold {n_tokens} tokens, too few for batch_size={batch_size} streams "
                f"(each needs at least 2 tokens). Pass more text or a smaller batch_size."
            )
        seeds = np.random.SeedSequence(random_state).spawn(2)
        self._order_generator = np.random.default_rng(seeds[0])
        self._length_generator = np.random.default_rng(seeds[1])
        self._planned: list[list[int]] = []

    def _window_lengths(self) -> list[int]:
        lengths, position, end = [], 0, self.stream_length - 1
        while position < end:
            if self.jitter:
                base = self.bptt if self._length_generator.random() < 0.95 else self.bptt / 2
                length = max(5, int(round(self._length_generator.normal(base, 5))))
            else:
                length = self.bptt
            length = min(length, end - position)
            lengths.append(length)
            position += length
        return lengths

    def plan(self, n_epochs: int) -> int:
        """Draw the window lengths of the next ``n_epochs`` passes; return their batch count."""
        new = [self._window_lengths() for _ in range(n_epochs)]
        self._planned.extend(new)
        return sum(len(lengths) for lengths in new)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        lengths = self._planned.pop(0) if self._planned else self._window_lengths()
        order = (
            self._order_generator.permutation(len(self.documents)) if self.shuffle else np.arange(len(self.documents))
        )
        tokens = np.concatenate([self.documents[index] for index in order])
        streams = tokens[: self.stream_length * self.batch_size].reshape(self.batch_size, -1)
        position = 0
        for length in lengths:
            window = streams[:, position : position + length + 1]
            yield torch.from_numpy(window[:, :-1].copy()), torch.from_numpy(window[:, 1:].copy())
            position += length
