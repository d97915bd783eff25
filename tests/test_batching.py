import numpy as np
import torch

from sktext.batching import (
    LengthBucketSampler,
    StepsPerEpochSampler,
    TokenBudgetBatchSampler,
    TokenizedTexts,
    sort_by_length,
)


def _dataset():
    sequences = [[5, 6, 7], [8], [], [9, 10, 11, 12, 13], [14, 15]]
    return TokenizedTexts.from_sequences(sequences, pad_id=0, y=np.eye(5, 2, dtype=np.float32))


def test_batch_pads_to_longest_in_batch_only():
    inputs, targets = _dataset().__getitems__([0, 1, 4])
    assert inputs["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0], [14, 15, 0]]
    assert inputs["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert targets.dtype == torch.float32 and targets.shape == (3, 2)


def test_empty_text_gives_one_padding_column():
    inputs, _ = _dataset().__getitems__([2])
    assert inputs["input_ids"].shape == (1, 1) and inputs["attention_mask"].sum() == 0


def test_subset_keeps_texts_and_targets():
    data = _dataset()
    part = data.subset([3, 0])
    assert part.lengths.tolist() == [5, 3]
    inputs, targets = part.__getitems__([0, 1])
    assert inputs["input_ids"][0].tolist() == [9, 10, 11, 12, 13]
    np.testing.assert_array_equal(targets.numpy(), data.y[[3, 0]])


def test_a_subset_of_a_subset_reads_its_parents_targets_without_copying_them():
    data = TokenizedTexts.from_sequences(
        [[i + 1] * (i + 1) for i in range(6)], pad_id=0, y=np.arange(12.0).reshape(6, 2)
    )
    part = data.subset([5, 1, 3]).subset([2, 0])  # texts 3 and 5
    assert np.shares_memory(part._y, data.y)  # the label matrix is not copied
    np.testing.assert_array_equal(part.y, data.y[[3, 5]])
    inputs, targets = part.__getitems__([1, 0])
    assert inputs["input_ids"][0].tolist() == [6] * 6
    np.testing.assert_array_equal(targets.numpy(), data.y[[5, 3]])


def test_sort_by_length_returns_permutation():
    ordered, order = sort_by_length(_dataset())
    assert ordered.lengths.tolist() == [5, 3, 2, 1, 0] and order.tolist() == [3, 0, 4, 1, 2]


def test_bucket_sampler_covers_all_groups_similar_lengths_and_reshuffles():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 500, 1000)
    sampler = LengthBucketSampler(lengths, batch_size=10, chunk_batches=20, seed=1)
    first, second = list(sampler), list(sampler)
    assert len(first) == len(sampler) == 100
    assert sorted(i for batch in first for i in batch) == list(range(1000))
    assert first != second
    assert max(lengths[b].max() for b in first) == lengths[first[0]].max()
    spread = np.mean([np.ptp(lengths[b]) for b in first])
    assert spread < 0.2 * np.ptp(lengths)  # random batches would spread about 0.9 of the range
    same_seed = LengthBucketSampler(lengths, batch_size=10, chunk_batches=20, seed=1)
    assert list(same_seed) == first


def test_epochs_of_fixed_steps_go_on_through_the_passes_and_see_each_text_once_a_pass():
    lengths = np.random.default_rng(0).integers(1, 50, 100)
    reference = LengthBucketSampler(lengths, batch_size=8, seed=2)
    passes = list(reference) + list(reference)  # two passes of 13 batches
    sampler = StepsPerEpochSampler(LengthBucketSampler(lengths, batch_size=8, seed=2), steps=5)
    epochs = [list(sampler) for _ in range(5)]  # 25 batches: the first pass, then 12 of the second
    assert len(sampler) == 5 and all(len(epoch) == 5 for epoch in epochs)
    batches = [batch for epoch in epochs for batch in epoch]
    assert batches == passes[:25]
    assert sorted(i for batch in batches[:13] for i in batch) == list(range(100))
    assert sampler.pending == passes[25:26]  # what the next epoch starts with (a checkpoint keeps it)


def test_token_budget_batches_cover_every_text_once_within_the_budget():
    rng = np.random.default_rng(0)
    lengths = np.sort(rng.integers(0, 300, size=500))[::-1]
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=2048)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert [i for batch in batches for i in batch] == list(range(500))
    for batch in batches:
        longest = max(int(lengths[batch[0]]), 1)
        assert len(batch) == 1 or len(batch) * longest <= 2048
    # short texts run many to a batch, long ones few
    assert len(batches[-1]) > len(batches[0])


def test_token_budget_keeps_a_text_longer_than_the_budget_alone():
    assert list(TokenBudgetBatchSampler(np.array([600, 500, 10, 10]), max_tokens=512)) == [[0], [1], [2, 3]]


def test_prediction_by_tokens_equals_prediction_by_count(monkeypatch):
    from sktext import net
    from sktext.net import predict_batched

    torch.manual_seed(0)

    class MeanOfEmbeddings(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(20, 4)

        def forward(self, input_ids, attention_mask):
            mask = attention_mask.unsqueeze(-1).float()
            return (self.embedding(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)

    rng = np.random.default_rng(1)
    sequences = [list(rng.integers(1, 20, size=rng.integers(1, 40))) for _ in range(200)]
    dataset = TokenizedTexts.from_sequences(sequences, pad_id=0)
    module = MeanOfEmbeddings()
    by_count = predict_batched(module, dataset, batch_size=8, device="cpu", precision=torch.float32)
    by_tokens = predict_batched(module, dataset, batch_size=8, device="cpu", precision=torch.float32, max_tokens=64)
    np.testing.assert_allclose(by_tokens, by_count, atol=1e-6)
    monkeypatch.setattr(net, "_OUTPUTS_KEPT_ON_DEVICE", 20)  # copied to the host every few batches
    in_parts = predict_batched(module, dataset, batch_size=8, device="cpu", precision=torch.float32, max_tokens=64)
    np.testing.assert_array_equal(in_parts, by_tokens)
