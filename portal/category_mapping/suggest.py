"""Where a merchant category probably belongs: text similarity with the taxonomy, and other merchants' choices.

The taxonomy is English; merchants write Russian or English. Words are reduced to Snowball stems, Russian
ones carried over into the taxonomy's English through a glossary (``data/glossary_ru_en.csv``), and a
TF-IDF model (scikit-learn) compares the merchant path and a few product titles with every taxonomy
path, the last levels of a path counting most. Mappings other merchants confirmed for similar paths
(character n-grams, so spelling variants and either language match) add their own evidence.
"""
from __future__ import annotations

import csv
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import snowballstemmer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.category_mapping.models import MerchantCategory, TaxonomyCategory

DATA = Path(__file__).parent / "data"
# Russian words -> taxonomy English; English shop words the taxonomy lacks ("hoodies") -> its words.
GLOSSARIES = (DATA / "glossary_ru_en.csv", DATA / "glossary_ru_en_more.csv", DATA / "glossary_ru_en_extra.csv")
SYNONYM_FILES = (DATA / "synonyms_en.csv", DATA / "synonyms_en_extra.csv")
# The taxonomy the glossary was written against: its names tell a phrase ("coffee makers") from synonyms.
TAXONOMY = Path(__file__).parent / "data" / "google-product-taxonomy.en-US.txt"
TOP = 3
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_COMPOUND = re.compile(r"[^\W_]+(?:-[^\W_]+)*", re.UNICODE)
_CYRILLIC = re.compile(r"[а-я]")
_LEVELS = re.compile(r"\s*(?:>|/|\\|\||;|»|→)\s*")
# Words that say nothing about where a product belongs: shop sections and connectives.
_STOP_EN = {"and", "for", "the", "with", "of", "in", "on", "to", "a", "other", "misc", "new", "sale",
            "all", "catalog", "products", "goods", "item", "items"}
_STOP_RU = {"и", "для", "с", "со", "в", "на", "по", "из", "от", "к", "без", "прочее", "прочие", "разное", "каталог",
            "товары", "товар", "новинки", "распродажа", "акция", "акции", "скидки", "хиты", "продаж", "другое", "всё",
            "все"}
# How much each level of a path counts, from the last one up: the leaf names the category.
_LEVEL_WEIGHTS = (3, 2, 1)
CONFIRMED_MIN_SIMILARITY = 0.8
_ACCESSORY = {"access", "part", "case", "cover", "replac", "spare"}


@dataclass(frozen=True)
class Suggestion:
    category_id: int
    path: str
    confidence: float
    source: str = "text"  # text, confirmed (other merchants), both

    def as_dict(self) -> dict[str, object]:
        return {"category_id": self.category_id, "path": self.path, "confidence": self.confidence, "source": self.source}


class Confirmed:
    """Mappings merchants confirmed, as evidence for the same path written alike by another merchant."""

    def __init__(self, rows: Iterable[tuple[int, str, int]]):
        self.rows = list(rows)
        self.merchants = np.array([row[0] for row in self.rows], dtype=np.int64)
        self.categories = [row[2] for row in self.rows]
        from sklearn.feature_extraction.text import TfidfVectorizer  # imported when first needed: it is slow to load

        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform([_path_text(row[1]) for row in self.rows]) if self.rows else None

    def evidence(self, path: str, merchant_id: int | None) -> dict[int, float]:
        """Category -> weight: the closest confirmed path of another merchant, discounted when they disagree."""
        if self.matrix is None:
            return {}
        similarity = np.asarray((self.matrix @ self.vectorizer.transform([_path_text(path)]).T).todense()).ravel()
        chosen = np.flatnonzero((similarity >= CONFIRMED_MIN_SIMILARITY) & (self.merchants != (merchant_id or -1)))
        votes: dict[int, list[float]] = {}
        for position in chosen:
            votes.setdefault(self.categories[position], []).append(float(similarity[position]))
        total = sum(len(values) for values in votes.values())
        return {category_id: max(values) * (0.5 + 0.5 * len(values) / total) for category_id, values in votes.items()}


def _path_text(path: str) -> str:
    return normalise(" ".join(levels(path)))


_ru = snowballstemmer.stemmer("russian")
_en = snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _stem_en(word: str) -> str:
    return _en.stemWord(word)


@lru_cache(maxsize=200_000)
def _stem_ru(word: str) -> str:
    return _ru.stemWord(word)


def normalise(text: str) -> str:
    return text.lower().replace("ё", "е")


Unit = tuple[str, ...]  # one English rendering: a stem, or the stems of a phrase ("coffe", "maker")


@dataclass(frozen=True)
class Glossary:
    """Russian words (dictionary form, ё as е) and their Snowball stems -> English renderings."""

    words: dict[str, tuple[Unit, ...]]
    stems: dict[str, tuple[Unit, ...]]

    def __len__(self) -> int:
        return len(self.words)


@lru_cache(maxsize=1)
def _taxonomy_phrases() -> frozenset[Unit]:
    """Runs of 2-4 stemmed words found inside the shipped taxonomy's category names."""
    phrases: set[Unit] = set()
    if TAXONOMY.exists():
        for line in TAXONOMY.read_text(encoding="utf-8").splitlines():
            for name in line.partition(" - ")[2].split(" > "):
                stems = [_stem_en(word) for word in _WORD.findall(normalise(name)) if word not in _STOP_EN]
                for size in (2, 3, 4):
                    phrases.update(tuple(stems[i:i + size]) for i in range(len(stems) - size + 1))
    return frozenset(phrases)


def _units(english: str) -> tuple[Unit, ...]:
    """A glossary entry's words split into renderings: "coffee makers espresso" -> (coffe maker), (espresso)."""
    stems = [_stem_en(word) for word in _WORD.findall(english) if word not in _STOP_EN]
    phrases = _taxonomy_phrases()
    units: list[Unit] = []
    i = 0
    while i < len(stems):
        size = next((n for n in (4, 3, 2) if tuple(stems[i:i + n]) in phrases and i + n <= len(stems)), 1)
        unit = tuple(stems[i:i + size])
        if unit not in units:
            units.append(unit)
        i += size
    return tuple(units)


@lru_cache(maxsize=1)
def glossary() -> Glossary:
    words = _read_table(GLOSSARIES, "ru")
    by_stem: dict[str, tuple[Unit, ...]] = {}
    for ru, units in words.items():
        by_stem[_stem_ru(ru)] = tuple(dict.fromkeys(by_stem.get(_stem_ru(ru), ()) + units))
    return Glossary(words, by_stem)


@lru_cache(maxsize=1)
def synonyms() -> dict[str, tuple[Unit, ...]]:
    """English shop word (and its stem) -> taxonomy renderings."""
    table = _read_table(SYNONYM_FILES, "word")
    for word, units in list(table.items()):
        table.setdefault(_stem_en(word), units)
    return table


def _read_table(files: Sequence[Path], column: str) -> dict[str, tuple[Unit, ...]]:
    words: dict[str, tuple[Unit, ...]] = {}
    for path in files:
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                word, en = normalise(row.get(column) or "").strip(), normalise(row.get("en") or "")
                units = _units(en) if word else ()
                if units:
                    words[word] = tuple(dict.fromkeys(words.get(word, ()) + units))
    return words


@lru_cache(maxsize=1)
def _morph():  # pymorphy3 loads its dictionaries once, on first use
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang="ru")


@lru_cache(maxsize=200_000)
def russian(word: str) -> tuple[Unit, ...]:
    """English renderings of a Russian word: by its dictionary forms (чехлы -> чехол), else by its stem."""
    table = glossary()
    forms = [normalise(parse.normal_form) for parse in _morph().parse(word)[:4]]
    for form in [word, *forms]:
        if form in table.words:
            return table.words[form]
    for form in [word, *forms]:
        found = table.stems.get(_stem_ru(form))
        if found:
            return found
    return ()


Group = tuple[Unit, ...]  # the renderings one word of the merchant's may stand for


def token_groups(text: str) -> list[Group]:
    """One group per word: an English word's stem, or the renderings a Russian word may stand for."""
    result: list[Group] = []
    for compound in _COMPOUND.findall(normalise(text)):
        # A hyphenated word the glossary knows whole ("бас-гитара", "веб-камера") is one word; else its parts.
        if "-" in compound and _CYRILLIC.search(compound):
            found = russian(compound)
            if found:
                result.append(found)
                continue
        result.extend(_word_groups(compound))
    return result


def _word_groups(compound: str) -> list[Group]:
    result: list[Group] = []
    for word in _WORD.findall(compound):
        if word.isdigit():
            continue
        if _CYRILLIC.search(word):
            if word not in _STOP_RU:
                found = russian(word)
                if found:
                    result.append(found)
        elif word not in _STOP_EN and len(word) > 1:
            stem = _stem_en(word)
            result.append(tuple(dict.fromkeys(((stem,), *synonyms().get(word, synonyms().get(stem, ()))))))
    return result


def tokens(text: str) -> list[str]:
    """English stems of a piece of text, Russian words carried over through the glossary (every sense)."""
    return [stem for group in token_groups(text) for unit in group for stem in unit]


def levels(path: str) -> list[str]:
    return [level for level in _LEVELS.split(path.strip()) if level]


def weighted_groups(parts: Sequence[str]) -> list[tuple[Group, float]]:
    """Word groups of a path's levels with the weight of their level (the last one counts most)."""
    result: list[tuple[Group, float]] = []
    for distance, level in enumerate(reversed(parts)):
        weight = _LEVEL_WEIGHTS[min(distance, len(_LEVEL_WEIGHTS) - 1)]
        result.extend((group, float(weight)) for group in token_groups(level))
    return result


def weighted_tokens(parts: Sequence[str]) -> list[str]:
    """Tokens of a path's levels, the last level repeated most (bag-of-words weights by repetition)."""
    result: list[str] = []
    for distance, level in enumerate(reversed(parts)):
        weight = _LEVEL_WEIGHTS[min(distance, len(_LEVEL_WEIGHTS) - 1)]
        result.extend(tokens(level) * weight)
    return result


def _identity(document: list[str]) -> list[str]:
    return document


@dataclass(frozen=True)
class Weights:
    """How much each comparison counts; tuned on one half of the labelled set (bench/mapping_accuracy.py)."""

    leaf: float = 1.0  # the merchant's last level against each category's own name
    path: float = 1.5  # the merchant's whole path against each category's whole path
    titles: float = 1.5  # product titles against each category's whole path
    titles_leaf: float = 0.3  # product titles against each category's own name
    # Accessories and parts of a thing share its words; unless the merchant says "accessories",
    # "parts" or "case", the thing itself is the likelier home.
    accessory: float = 0.9
    # Between a category and its own subcategory scoring alike, the more specific one is the likelier.
    specific: float = 0.05
    # How much of a category's own name the merchant's words explain: "Cat Food" fully, "Prescription Cat
    # Food" or "Mobile Phone Cases" not, for a merchant's "Корм для кошек" or "Смартфоны".
    covered: float = 1.0


class Engine:
    """TF-IDF indexes over the active taxonomy: each category's own name, and its whole path with the
    last levels counting most. Built once per taxonomy version and shared by threads."""

    def __init__(self, categories: Iterable[tuple[int, str]], weights: Weights = Weights()):
        pairs = list(categories)
        self.weights = weights
        self.ids = np.array([category_id for category_id, _ in pairs], dtype=np.int64)
        self.paths = [path for _, path in pairs]
        self.position = {category_id: i for i, category_id in enumerate(self.ids.tolist())}
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(analyzer=_identity, sublinear_tf=True, norm=None)
        paths = [weighted_tokens(path.split(" > ")) for path in self.paths]
        leaves = [tokens(path.rsplit(" > ", 1)[-1]) for path in self.paths]
        # With no taxonomy loaded yet the index holds one empty stand-in and nothing is suggested.
        self.vectorizer.fit([*paths, ["\x00"]])
        self.vocabulary = self.vectorizer.vocabulary_
        self.accessory = np.array([bool(_ACCESSORY & set(tokens(path))) for path in self.paths], dtype=bool)
        self.depth = np.array([path.count(" > ") for path in self.paths], dtype=float)
        # Column slices (one per query word) are what scoring does: compressed sparse columns.
        self.path_matrix = self._matrix(paths)
        self.leaf_matrix = self._matrix(leaves)
        self.leaf_words = (self.leaf_matrix > 0).astype(np.float64).tocsr()
        self.leaf_sizes = np.maximum(np.asarray(self.leaf_words.sum(axis=1)).ravel(), 1)

    def _matrix(self, documents: list[list[str]]):
        matrix = self.vectorizer.transform([*documents, ["\x00"]])[: len(documents)]
        from sklearn.preprocessing import normalize

        return (normalize(matrix, norm="l2", axis=1) if len(documents) else matrix).tocsc()

    def _similarity(self, matrix, groups: Sequence[tuple[Group, float]]) -> np.ndarray:
        """A cosine in which each word of the query counts once, through whichever rendering fits best.

        A Russian word often has several English renderings (коврик: mat, rug, mouse pad); summing them
        all would favour categories that happen to hold two of them, so each word takes its best one, a
        phrase counting as much as its words together.
        """
        weights: dict[Group, float] = {}
        for group, weight in groups:
            weights[group] = weights.get(group, 0.0) + weight
        total = np.zeros(len(self.ids))
        norm = 0.0
        for group, weight in weights.items():
            weight = 1 + np.log(weight) if weight >= 1 else weight  # sublinear, as for the documents
            norm += weight * weight
            best = None
            for unit in group:
                columns = [self.vocabulary[stem] for stem in unit if stem in self.vocabulary]
                if columns:
                    fit = np.asarray(matrix[:, columns].sum(axis=1)).ravel() / np.sqrt(len(unit))
                    best = fit if best is None else np.maximum(best, fit)
            if best is not None:
                total += weight * best
        return total / np.sqrt(norm) if norm else total

    def scores(self, path: str, titles: Sequence[str] = ()) -> np.ndarray:
        """Similarity of every category with the merchant's path and titles, from 0 to 1."""
        parts = levels(path)
        leaf = next((groups for groups in (token_groups(level) for level in reversed(parts)) if groups), [])
        titled = [(group, 1.0) for title in titles for group in token_groups(title)]
        w = self.weights
        total = (w.leaf * self._similarity(self.leaf_matrix, [(group, 1.0) for group in leaf])
                 + w.path * self._similarity(self.path_matrix, weighted_groups(parts))
                 + w.titles * self._similarity(self.path_matrix, titled)
                 + w.titles_leaf * self._similarity(self.leaf_matrix, titled))
        present = (w.leaf + w.path) * bool(leaf) + (w.titles + w.titles_leaf) * bool(titled)
        if not _ACCESSORY & {stem for group, _ in weighted_groups(parts) for unit in group for stem in unit}:
            total = np.where(self.accessory, total * w.accessory, total)
        if w.specific:
            total = total * (1 + w.specific * self.depth)
        if w.covered:
            said = self._indicator(group for group, _ in [*weighted_groups(parts), *titled])
            total = total + w.covered * (self.leaf_words @ said) / self.leaf_sizes * (total > 0)
            present += w.covered
        return total / present if present else total

    def _indicator(self, groups: Iterable[Group]) -> np.ndarray:
        vector = np.zeros(len(self.vocabulary))
        for group in groups:
            for unit in group:
                for stem in unit:
                    if stem in self.vocabulary:
                        vector[self.vocabulary[stem]] = 1.0
        return vector

    def suggest(self, path: str, titles: Sequence[str] = (), *, confirmed: Confirmed | None = None,
                merchant_id: int | None = None, exclude: set[int] | frozenset[int] = frozenset(),
                top: int = TOP) -> list[Suggestion]:
        scores = self.scores(path, titles)
        evidence = confirmed.evidence(path, merchant_id) if confirmed else {}
        combined = scores.copy()
        for category_id, weight in evidence.items():
            position = self.position.get(category_id)
            if position is not None:
                combined[position] = 1 - (1 - combined[position]) * (1 - weight)
        for category_id in exclude:
            position = self.position.get(category_id)
            if position is not None:
                combined[position] = 0
        best = np.argsort(-combined, kind="stable")[:top]
        result = []
        for position in best:
            confidence = float(combined[position])
            if confidence <= 0:
                break
            category_id = int(self.ids[position])
            source = "text"
            if category_id in evidence:
                source = "both" if scores[position] > 0 else "confirmed"
            result.append(Suggestion(category_id, self.paths[position], round(min(confidence, 0.99), 2), source))
        return result

    def suggest_many(self, items: Sequence[tuple[str, Sequence[str]]], *, confirmed: Confirmed | None = None,
                     exclude: Sequence[tuple[int, set[int]]] | None = None) -> list[list[Suggestion]]:
        result = []
        for i, (path, titles) in enumerate(items):
            merchant_id, rejected = exclude[i] if exclude else (None, set())
            result.append(self.suggest(path, titles, confirmed=confirmed, merchant_id=merchant_id, exclude=rejected))
        return result

    def search(self, text: str, limit: int = 20) -> list[tuple[int, str]]:
        """The taxonomy picker: paths holding every word typed first, then the closest by meaning."""
        words = [word for word in _WORD.findall(normalise(text))]
        if not words:
            return []
        if len(words) == 1 and words[0].isdigit() and int(words[0]) in self.position:
            category_id = int(words[0])
            return [(category_id, self.paths[self.position[category_id]])]
        literal = [i for i, path in enumerate(self.paths) if all(word in normalise(path) for word in words)]
        literal.sort(key=lambda i: (self.paths[i].count(" > "), self.paths[i]))
        chosen = literal[:limit]
        if len(chosen) < limit:
            scores = self.scores(text)
            for position in np.argsort(-scores, kind="stable")[: limit * 2]:
                if scores[position] <= 0 or len(chosen) >= limit:
                    break
                if position not in chosen:
                    chosen.append(int(position))
        return [(int(self.ids[i]), self.paths[i]) for i in chosen]


_lock = threading.Lock()
_cached: tuple[tuple[int, object], Engine] | None = None


def engine(db: Session) -> Engine:
    """The engine of the taxonomy now in the database, rebuilt only when the taxonomy changed."""
    global _cached
    version = tuple(db.execute(select(func.count(), func.max(TaxonomyCategory.updated_at))
                               .where(TaxonomyCategory.is_active)).one())
    with _lock:
        if _cached is None or _cached[0] != version:
            rows = db.execute(select(TaxonomyCategory.id, TaxonomyCategory.path).where(TaxonomyCategory.is_active)
                              .order_by(TaxonomyCategory.id)).all()
            _cached = (version, Engine([(row.id, row.path) for row in rows]))  # type: ignore[arg-type]
        return _cached[1]


def forget_index() -> None:
    global _cached
    with _lock:
        _cached = None


def confirmed_elsewhere(db: Session, exclude_merchant: int | None = None) -> Confirmed:
    """Every confirmed mapping (the engine leaves out the asking merchant's own)."""
    stmt = select(MerchantCategory.merchant_id, MerchantCategory.path, MerchantCategory.category_id).where(
        MerchantCategory.status == "confirmed", MerchantCategory.category_id.is_not(None))
    if exclude_merchant is not None:
        stmt = stmt.where(MerchantCategory.merchant_id != exclude_merchant)
    return Confirmed((row[0], row[1], row[2]) for row in db.execute(stmt))
