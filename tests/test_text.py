"""Generated sentence source and the disjoint sentence split."""
from __future__ import annotations

import pytest

from kdsd.corpus import text
from kdsd.corpus.text import CAPACITY, TEMPLATES, number_words, sentences, split_sentences
from kdsd.errors import KdsdError

FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}


@pytest.fixture(scope="module")
def pool() -> list[str]:
    return sentences(2500, seed=0)


def test_n_distinct_well_formed_sentences(pool: list[str]) -> None:
    assert len(pool) == 2500 and len(set(pool)) == 2500  # more than the 2,000 the corpus needs
    for sentence in pool:
        assert sentence[0].isupper()
        assert sentence.endswith((".", "?"))
        assert "  " not in sentence and "{" not in sentence


def test_word_counts_within_bounds(pool: list[str]) -> None:
    counts = [len(sentence.split()) for sentence in pool]
    assert min(counts) >= text.MIN_WORDS and max(counts) <= text.MAX_WORDS
    assert len(set(counts)) >= 5  # varied lengths, not one template shape


def test_every_template_stays_within_word_bounds() -> None:
    # Exhaustive over slot choices, via each slot's shortest and longest option.
    for template in TEMPLATES:
        low, high = template.word_bounds()
        assert text.MIN_WORDS <= low <= high <= text.MAX_WORDS, template.text


def test_deterministic_in_n_and_seed() -> None:
    assert sentences(300, seed=5) == sentences(300, seed=5)
    assert sentences(300, seed=5) != sentences(300, seed=6)


def test_mixes_templates_and_vocabulary(pool: list[str]) -> None:
    openers = {" ".join(sentence.split()[:1]) for sentence in pool}
    assert {"The", "Did", "Why", "Please", "There", "How", "Will", "My", "Every", "Where"} <= openers
    assert sum(sentence.endswith("?") for sentence in pool) > 0.2 * len(pool)
    vocabulary = {word.strip(",.?").lower() for sentence in pool for word in sentence.split()}
    assert len(vocabulary) > 400
    # Phonetic spread, checked by spelling: fricatives, affricates, nasals, diphthongs.
    for spelling in ("sh", "th", "z", "v", "ch", "j", "ng", "oy", "ou", "igh"):
        assert any(spelling in word for word in vocabulary), spelling


def test_number_words() -> None:
    assert number_words(2) == "two"
    assert number_words(17) == "seventeen"
    assert number_words(40) == "forty"
    assert number_words(73) == "seventy three"
    assert number_words(300) == "three hundred"
    assert number_words(342) == "three hundred and forty two"


def test_capacity_and_limits() -> None:
    assert CAPACITY >= 2000
    assert sentences(0, seed=1) == []
    with pytest.raises(KdsdError, match="grammar can make only"):
        sentences(CAPACITY + 1, seed=1)
    with pytest.raises(KdsdError, match="n must be"):
        sentences(-1, seed=1)


def test_split_is_a_disjoint_cover(pool: list[str]) -> None:
    splits = split_sentences(pool, FRACTIONS, seed=3)
    assert list(splits) == list(FRACTIONS)
    assert {name: len(part) for name, part in splits.items()} == {"train": 2000, "valid": 250, "test": 250}
    seen = [sentence for part in splits.values() for sentence in part]
    assert sorted(seen) == sorted(pool)  # covers the pool with no sentence twice


def test_split_rounding_adds_up() -> None:
    splits = split_sentences([f"s{i}" for i in range(10)], {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, seed=0)
    assert sorted(len(part) for part in splits.values()) == [3, 3, 4]


def test_split_is_seeded(pool: list[str]) -> None:
    assert split_sentences(pool, FRACTIONS, seed=3) == split_sentences(pool, FRACTIONS, seed=3)
    assert split_sentences(pool, FRACTIONS, seed=3)["test"] != split_sentences(pool, FRACTIONS, seed=4)["test"]


@pytest.mark.parametrize(
    ("pool", "fractions", "fragment"),
    [
        (["a", "b"], {"train": 0.5, "test": 0.4}, "sum to 1"),
        (["a", "b"], {"train": 1.5, "test": -0.5}, "non-negative"),
        (["a", "b"], {}, "empty"),
        (["a", "a", "b"], {"train": 0.5, "test": 0.5}, "duplicates"),
        (["a", "b", "c"], {"train": 0.9, "test": 0.1}, "'test'.*no sentences"),
    ],
)
def test_split_rejects_bad_input(pool: list[str], fractions: dict[str, float], fragment: str) -> None:
    with pytest.raises(KdsdError, match=fragment):
        split_sentences(pool, fractions, seed=0)
