"""Generated English sentences for the synthetic TTS corpus, and a disjoint train/test split.

A small template grammar with embedded word lists. The lists are chosen for phonetic
spread (fricatives as in "shivered", "thimble", "zebra"; plosives; nasals; diphthongs as
in "oysters", "mice", "goat") and verbs are stored in the one form each template needs, so
every output agrees without any morphology code. Templates differ in their first two words,
so no two templates make the same sentence.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from kdsd.errors import KdsdError

MIN_WORDS, MAX_WORDS = 5, 14

NAMES = (
    "Zoe", "Oliver", "Hugo", "Martha", "Joshua", "Chloe", "Vincent", "Thelma", "Gareth", "Priya",
    "Yusuf", "Beatrice", "Rowan", "Ingrid", "Felix", "Shona", "Dmitri", "Noor", "Quentin", "Maeve",
)
CITIES = (
    "Boston", "Zurich", "Lisbon", "Oslo", "Dublin", "Nairobi", "Glasgow", "Vienna", "Memphis",
    "Chicago", "Shanghai", "Tokyo", "Quebec", "Madrid", "Helsinki", "Geneva", "Cardiff", "Auckland",
    "Havana", "Jakarta", "Phoenix", "Toronto", "Marseille", "Budapest",
)
PEOPLE = (
    "baker", "sailor", "farmer", "teacher", "pilot", "drummer", "dentist", "lawyer", "shepherd",
    "violinist", "judge", "chef", "nurse", "plumber", "bishop", "miner", "jockey", "weaver", "poet",
    "mayor", "juggler", "fisherman", "gardener", "tailor", "pharmacist", "cashier",
)
PERSON_ADJECTIVES = (
    "cheerful", "brave", "clumsy", "sleepy", "jolly", "nervous", "patient", "grumpy", "curious",
    "elderly", "young", "zealous", "shy", "witty", "stubborn", "polite", "weary", "famous",
    "generous", "thoughtful", "anxious", "modest",
)
# Consonant-initial only, because one template puts "a" in front of them.
THING_ADJECTIVES = (
    "rusty", "shiny", "yellow", "wooden", "heavy", "tiny", "purple", "polished", "fragile",
    "crooked", "spotted", "shabby", "golden", "velvet", "muddy", "battered", "brittle", "dusty",
    "frozen", "plastic", "chipped", "striped",
)
THINGS = (
    "kettle", "ladder", "basket", "jacket", "bucket", "feather", "pillow", "violin", "compass",
    "lantern", "saddle", "blanket", "mirror", "whistle", "shovel", "trumpet", "parcel", "puzzle",
    "cabbage", "sandwich", "thimble", "vase", "bicycle", "hammock", "umbrella", "anchor", "cushion",
    "toolbox", "suitcase", "teapot",
)
PLURALS = (
    "apples", "candles", "pebbles", "oysters", "bottles", "feathers", "marbles", "buttons",
    "envelopes", "pumpkins", "seashells", "lanterns", "sandwiches", "horses", "sheep", "geese",
    "mice", "knives", "boxes", "wolves", "pennies", "cherries", "radishes", "trophies", "coins",
    "toys", "pearls", "mushrooms",
)
TRANSITIVE_PAST = (
    "carried", "painted", "dropped", "polished", "fixed", "borrowed", "hid", "found", "washed",
    "sold", "buried", "wrapped", "measured", "threw", "lifted", "bought", "shook", "dragged",
    "stole", "delivered", "mended", "weighed", "pushed", "squeezed", "juggled",
)
TRANSITIVE_BASE = (
    "carry", "paint", "drop", "polish", "fix", "borrow", "hide", "find", "wash", "sell", "bury",
    "wrap", "measure", "throw", "lift", "buy", "shake", "drag", "steal", "deliver", "mend", "weigh",
    "push", "squeeze", "juggle",
)
INTRANSITIVE_PAST = (
    "slept", "laughed", "waited", "danced", "shouted", "whispered", "vanished", "sneezed",
    "shivered", "wandered", "smiled", "yawned", "froze", "sang", "argued", "paused", "giggled",
    "stumbled",
)
INTRANSITIVE_BASE = (
    "sleep", "laugh", "wait", "dance", "shout", "whisper", "vanish", "sneeze", "shiver", "wander",
    "smile", "yawn", "freeze", "sing", "argue", "pause", "giggle", "stumble",
)
ADVERBS = (
    "softly", "loudly", "quickly", "patiently", "nervously", "happily", "slowly", "gracefully",
    "quietly", "eagerly", "bravely", "awkwardly", "joyfully", "lazily", "calmly", "anxiously",
    "wearily", "proudly",
)
PLACES = (
    "near the harbour", "behind the old barn", "under the railway bridge", "beside the frozen lake",
    "inside the village church", "across the busy square", "on the muddy path",
    "at the edge of the forest", "by the fishing boats", "through the narrow tunnel",
    "along the sandy shore", "outside the bakery", "below the windmill", "beyond the hills",
    "in the garden shed", "over the wooden fence", "next to the fountain", "at the zoo",
    "on the ferry", "in the noisy kitchen",
)
PAST_TIMES = (
    "yesterday morning", "last Thursday", "before sunrise", "after the concert",
    "during the thunderstorm", "at midnight", "on a foggy evening", "in early autumn",
    "just after lunch", "late last night", "this afternoon", "at noon", "two days ago",
    "on Sunday", "last summer",
)
FUTURE_TIMES = (
    "next week", "tomorrow", "in the spring", "on Saturday evening", "next year", "this weekend",
    "after the holidays", "in December", "tomorrow night", "before the winter",
)
INTROS = (
    "After the storm,", "When the bell rang,", "Before dawn,", "As the snow fell,", "Without a word,",
    "Long before breakfast,", "In the dim light,", "Once the music stopped,", "At the very end,",
    "Despite the noise,", "Halfway through the film,", "On hearing the news,",
)
DEADLINES = (
    "noon", "sunset", "the guests arrive", "Friday", "the train leaves", "midnight",
    "the shop closes", "the rain starts", "we eat", "Monday morning",
)
TRAVEL_PAST = ("flew", "drove", "sailed", "travelled", "cycled", "hitchhiked", "moved", "hurried")
TRADE_PAST = ("bought", "sold", "ordered", "rented", "borrowed")
RELATIVES = ("uncle", "aunt", "cousin", "grandmother", "neighbour", "brother", "sister", "nephew")
CURRENCIES = ("dollars", "euros", "pounds", "francs", "pesos", "rupees")
LOCATIONS = (
    "table", "shelf", "rooftop", "balcony", "platform", "windowsill", "bench", "doorstep", "wagon",
    "counter", "pier", "deck", "beach", "staircase",
)

_ONES = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(k: int) -> str:
    """English words for 1 ≤ k ≤ 999, without hyphens, e.g. 342 → 'three hundred and forty two'."""
    hundreds, rest = divmod(k, 100)
    words = [_ONES[hundreds], "hundred"] if hundreds else []
    if rest and hundreds:
        words.append("and")
    if rest >= 20:
        words += [_TENS[rest // 10]] + ([_ONES[rest % 10]] if rest % 10 else [])
    elif rest:
        words.append(_ONES[rest])
    return " ".join(words)


# Plural counts: every value 2–99 plus round hundreds, at most two words each.
NUMBERS = tuple(number_words(k) for k in (*range(2, 100), *range(100, 1000, 100)))
CITY_PAIRS = tuple(f"from {a} to {b}" for a in CITIES for b in CITIES if a != b)


@dataclass(frozen=True)
class _Template:
    """A sentence pattern: ``text`` with ``{}`` holes filled from ``slots`` in order."""

    text: str
    slots: tuple[tuple[str, ...], ...]

    @property
    def size(self) -> int:
        return math.prod(len(slot) for slot in self.slots)

    def word_bounds(self) -> tuple[int, int]:
        holes = len(self.slots)
        fixed = len(self.text.format(*["x"] * holes).split()) - holes  # "{}." is one word, not two
        counts = [[len(option.split()) for option in slot] for slot in self.slots]
        return fixed + sum(map(min, counts)), fixed + sum(map(max, counts))


TEMPLATES = (
    _Template("The {} {} {} the {} {}.", (PERSON_ADJECTIVES, PEOPLE, TRANSITIVE_PAST, THINGS, PLACES)),
    _Template("Did {} {} the {} {} {}?", (NAMES, TRANSITIVE_BASE, THING_ADJECTIVES, THINGS, PAST_TIMES)),
    _Template("Why did the {} {} so {} {}?", (PEOPLE, INTRANSITIVE_BASE, ADVERBS, PAST_TIMES)),
    _Template("{} counted {} {} {}.", (NAMES, NUMBERS, PLURALS, PLACES)),
    _Template("{} {} {} {}.", (NAMES, TRAVEL_PAST, CITY_PAIRS, PAST_TIMES)),
    _Template("{} the {} {} {} {}.", (INTROS, PERSON_ADJECTIVES, PEOPLE, INTRANSITIVE_PAST, ADVERBS)),
    _Template("Please {} the {} {} before {}.", (TRANSITIVE_BASE, THING_ADJECTIVES, THINGS, DEADLINES)),
    _Template("There were {} {} {} on the {} {}.", (NUMBERS, THING_ADJECTIVES, PLURALS, LOCATIONS, PAST_TIMES)),
    _Template("How many {} did the {} {} in {}?", (PLURALS, PEOPLE, TRANSITIVE_BASE, CITIES)),
    _Template("I think the {} from {} {} {} {}.", (PEOPLE, CITIES, TRANSITIVE_PAST, NUMBERS, PLURALS)),
    _Template("Will the {} {} visit {} {}?", (PERSON_ADJECTIVES, PEOPLE, CITIES, FUTURE_TIMES)),
    _Template("My {} {} a {} {} for {} {}.", (RELATIVES, TRADE_PAST, THING_ADJECTIVES, THINGS, NUMBERS, CURRENCIES)),
    _Template("Every {} in {} {} {}.", (PEOPLE, CITIES, INTRANSITIVE_PAST, ADVERBS)),
    _Template("Where did {} {} the {}?", (NAMES, TRANSITIVE_BASE, THINGS)),
)

CAPACITY = sum(template.size for template in TEMPLATES)  # distinct sentences the grammar can make


def _check_int(value: object, what: str) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise KdsdError(f"{what} must be an integer, got {value!r}") from None
    if number < 0:
        raise KdsdError(f"{what} must be non-negative, got {number}")
    return number


def _draw(template: _Template, rng: np.random.Generator) -> str:
    picks = [slot[int(rng.integers(len(slot)))] for slot in template.slots]
    return template.text.format(*picks)


def sentences(n: int, seed: int) -> list[str]:
    """``n`` distinct sentences of 5–14 words, deterministic in ``(n, seed)``."""
    n, seed = _check_int(n, "n"), _check_int(seed, "seed")
    if n > CAPACITY:
        raise KdsdError(f"asked for {n} sentences but the grammar can make only {CAPACITY}")
    rng = np.random.default_rng(seed)
    out: dict[str, None] = {}  # insertion-ordered set
    # Rejection of repeats terminates quickly because n is tiny next to the capacity in
    # practice; the attempt cap only guards against pathological requests.
    for _ in range(20 * n + 10_000):
        if len(out) == n:
            return list(out)
        out[_draw(TEMPLATES[int(rng.integers(len(TEMPLATES)))], rng)] = None
    if len(out) == n:
        return list(out)
    raise KdsdError(f"could draw only {len(out)} distinct sentences of the {n} asked for; ask for fewer")


def _split_counts(total: int, fractions: dict[str, float]) -> dict[str, int]:
    """Largest-remainder rounding, so the counts add up to ``total`` exactly."""
    exact = {name: frac * total for name, frac in fractions.items()}
    counts = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - counts[name], reverse=True)
    for name in by_remainder[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def split_sentences(pool: list[str], fractions: dict[str, float], seed: int) -> dict[str, list[str]]:
    """Randomly partition ``pool`` into disjoint named splits sized by ``fractions`` (sum 1).

    Keeps test sentences unseen in training. Raises if a split with a positive fraction
    would come out empty, since an empty test set only fails much later.
    """
    if not fractions:
        raise KdsdError("split fractions are empty")
    for name, frac in fractions.items():
        if not (isinstance(frac, (int, float)) and math.isfinite(frac) and frac >= 0):
            raise KdsdError(f"split fraction {name!r} must be a non-negative number, got {frac!r}")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise KdsdError(f"split fractions must sum to 1, got {total:g} ({fractions})")
    if len(set(pool)) != len(pool):
        raise KdsdError("sentence pool contains duplicates, so the splits would share sentences")
    counts = _split_counts(len(pool), fractions)
    for name, frac in fractions.items():
        if frac > 0 and counts[name] == 0:
            raise KdsdError(f"split {name!r} (fraction {frac:g}) gets no sentences from a pool of {len(pool)}")
    order = np.random.default_rng(_check_int(seed, "seed")).permutation(len(pool))
    splits, start = {}, 0
    for name, count in counts.items():
        splits[name] = [pool[i] for i in order[start : start + count]]
        start += count
    return splits
