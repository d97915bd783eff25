import json
import pickle

import numpy as np
import pytest

from sktext.text import (
    PAD_ID,
    SPECIAL_TOKENS,
    UNKNOWN_ID,
    Vocabulary,
    apply_rules,
    detokenize,
    split_words,
    tokenize,
)


def test_special_tokens_follow_fastai_order():
    assert SPECIAL_TOKENS == ("xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj")
    assert (UNKNOWN_ID, PAD_ID) == (0, 1)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello world", ["xxbos", "xxmaj", "hello", "world"]),
        ("the GPL and MP3", ["xxbos", "the", "xxup", "gpl", "and", "xxup", "mp3"]),
        ("I am A", ["xxbos", "i", "am", "a"]),  # single letters get no marker
        ("so cool!!!!", ["xxbos", "so", "cool", "xxrep", "4", "!"]),
        ("very very very good", ["xxbos", "xxwrep", "3", "very", "good"]),
        ("the theory the", ["xxbos", "the", "theory", "the"]),
        ("a&amp;b<br />next", ["xxbos", "a", "&", "b", "next"]),
        ("don't stop, it's 2.6.1", ["xxbos", "do", "n't", "stop", ",", "it", "'s", "2.6.1"]),
        ("Zürich", ["xxbos", "xxmaj", "zürich"]),
        ("", ["xxbos"]),
    ],
)
def test_rules_and_split(text, expected):
    assert tokenize([text]) == [expected]


def test_rules_lowercase_everything():
    processed = apply_rules("MiXeD Case TEXT")
    assert processed == processed.lower()
    assert split_words(processed) == ["mixed", "xxmaj", "case", "xxup", "text"]


def test_detokenize_undoes_markers():
    tokens = tokenize(["Hello WORLD!!!! very very very good"])[0]
    assert detokenize(tokens) == "Hello WORLD !!!! very very very good"


def test_tokenize_rejects_a_single_string_and_non_strings():
    with pytest.raises(ValueError, match="single str"):
        tokenize("just one text")
    with pytest.raises(ValueError, match="only str.*index 1 is nan"):
        tokenize(["fine", float("nan")])


def test_build_applies_min_freq_and_orders_by_count_then_alphabet():
    texts = ["b a b a b a c d c"] * 2  # counts: a 6, b 6, c 4, d 2
    vocabulary = Vocabulary.build(texts, min_freq=3)
    assert vocabulary.itos[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert vocabulary.itos[len(SPECIAL_TOKENS) :] == ["a", "b", "c"]
    assert "d" not in vocabulary


def test_build_caps_size_with_max_vocab_including_specials():
    texts = ["one two one two one three"] * 3
    vocabulary = Vocabulary.build(texts, max_vocab=len(SPECIAL_TOKENS) + 2, min_freq=1)
    assert len(vocabulary) == len(SPECIAL_TOKENS) + 2
    assert vocabulary.itos[-2:] == ["one", "two"]
    with pytest.raises(ValueError, match="'max_vocab' parameter of Vocabulary.from_tokens must be an int >= 9"):
        Vocabulary.build(texts, max_vocab=3)
    with pytest.raises(ValueError, match="min_freq"):
        Vocabulary.build(texts, min_freq=0)


def test_unknown_words_encode_to_unk():
    vocabulary = Vocabulary.build(["apple apple apple"], min_freq=1)
    (ids,) = vocabulary.encode(["apple pear"])
    assert ids.dtype == np.int64
    assert ids.tolist() == [vocabulary.stoi["xxbos"], vocabulary.stoi["apple"], UNKNOWN_ID]


def test_encode_decode_round_trip():
    texts = ["The quick brown Fox!!!", "jumps over the LAZY dog"]
    vocabulary = Vocabulary.build(texts, min_freq=1)
    for text, ids, tokens in zip(texts, vocabulary.encode(texts), tokenize(texts), strict=True):
        assert vocabulary.decode(ids) == " ".join(tokens)
        assert detokenize(vocabulary.decode(ids).split()).lower() == text.lower().replace("!!!", " !!!")


def test_vocabulary_serialises():
    vocabulary = Vocabulary.build(["a b c a b a"], min_freq=1)
    assert pickle.loads(pickle.dumps(vocabulary)) == vocabulary
    restored = Vocabulary.from_dict(json.loads(json.dumps(vocabulary.to_dict())))
    assert restored == vocabulary and restored.stoi == vocabulary.stoi
    with pytest.raises(ValueError, match="'itos' list"):
        Vocabulary.from_dict({"tokens": []})


def test_vocabulary_validates_layout():
    with pytest.raises(ValueError, match="must start with 'xxunk'"):
        Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["xxunk", "xxpad", "a", "a"])
