"""Category inference on the labelled corpus (tests/data/issues_corpus.jsonl), per language.

The corpus has a ``tune`` part, used while the lexicon was written, and a ``holdout`` part that
was written and committed first and never used for tuning. Run with ``-rP`` to see the table.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from services.classifier.inference import infer

CORPUS = Path(__file__).parents[1] / "data" / "issues_corpus.jsonl"
LANGUAGES = ("en", "es", "de", "fr")


def load() -> list[dict[str, str | None]]:
    return [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines() if line]


def accuracy(rows: list[dict[str, str | None]]) -> dict[str, float]:
    right, total = Counter[str](), Counter[str]()
    for row in rows:
        result = infer(str(row["title"]), str(row["description"]))
        total[str(row["lang"])] += 1
        right[str(row["lang"])] += (result.category.value if result.category else None) == row[
            "category"
        ]
    return {lang: right[lang] / total[lang] for lang in total}


def test_the_corpus_has_at_least_50_issues_per_language_covering_every_category() -> None:
    rows = load()
    per_language = Counter(str(r["lang"]) for r in rows)
    assert all(per_language[lang] >= 50 for lang in LANGUAGES), per_language
    for lang in LANGUAGES:
        categories = {r["category"] for r in rows if r["lang"] == lang}
        assert len(categories - {None}) == 10
        assert None in categories, "each language also has texts that say too little"


@pytest.mark.parametrize("split", ["all", "holdout"])
def test_category_accuracy_is_at_least_95_percent_in_every_language(split: str) -> None:
    rows = [r for r in load() if split == "all" or r["split"] == split]
    scores = accuracy(rows)
    print(
        f"\ncategory accuracy ({split}, n={len(rows)}): "
        + ", ".join(f"{lang} {scores[lang]:.1%}" for lang in LANGUAGES)
    )
    assert all(scores[lang] >= 0.95 for lang in LANGUAGES), scores


def test_the_language_of_issues_with_a_category_is_detected() -> None:
    rows = [r for r in load() if r["category"] is not None]
    right = sum(infer(str(r["title"]), str(r["description"])).language == r["lang"] for r in rows)
    print(f"\nlanguage detection: {right}/{len(rows)}")
    assert right / len(rows) >= 0.95
