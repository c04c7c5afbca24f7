"""A linear category model over TF-IDF features, scored in pure Python. PURE.

The model file is exported by ``inquiry-bot train`` (scikit-learn's TfidfVectorizer with
``sublinear_tf`` + multinomial LogisticRegression); scoring here reproduces scikit-learn's
arithmetic: tf = 1 + ln(count), times idf, L2-normalised, dot the class weights plus
intercept, softmax. The file keeps the vocabulary as one string and the numbers as base64
float32 arrays, so loading it takes milliseconds, not a parse of 20,000 JSON lists.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter, mul

from bot.triage.features import bigrams, token_features, tokens

FORMAT = 2
TOKEN_CACHE_LIMIT = 50_000  # distinct tokens remembered with their known features


@dataclass(frozen=True)
class Prediction:
    """Class probabilities and the terms that pushed the winner most."""

    probabilities: dict[str, float]
    top_terms: tuple[str, ...] = ()

    @property
    def category(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def probability(self) -> float:
        return self.probabilities[self.category]


@dataclass(frozen=True, eq=False)
class Model:
    """Vocabulary (term -> row), idf per row, class weights per row, intercepts."""

    classes: tuple[str, ...]
    index: dict[str, int]
    idf: array
    weights: array          # row-major: len(index) x len(classes)
    intercepts: tuple[float, ...]
    review_threshold: float = 0.6
    version: str = ""
    meta: dict = field(default_factory=dict)
    _known: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _names: list[str] = field(default_factory=list, repr=False)
    _packed: list[array] = field(default_factory=list, repr=False)  # see _fields

    @classmethod
    def from_json(cls, text: str) -> Model:
        """Load an exported model; raises ValueError on a file of another format."""
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"model format {data.get('format')!r}, expected {FORMAT}")
        names = data["terms"].split("\n") if data["terms"] else []
        return cls(tuple(data["classes"]), {t: i for i, t in enumerate(names)},
                   _floats(data["idf"]), _floats(data["weights"]), tuple(data["intercepts"]),
                   data.get("review_threshold", 0.6), data.get("version", ""),
                   data.get("meta", {}))

    def to_json(self) -> str:
        """The model file (deterministic for the same weights)."""
        names = sorted(self.index, key=self.index.__getitem__)
        return json.dumps({
            "format": FORMAT, "version": self.version, "classes": list(self.classes),
            "intercepts": list(self.intercepts), "review_threshold": self.review_threshold,
            "meta": self.meta, "terms": "\n".join(names),
            "idf": _encode(self.idf), "weights": _encode(self.weights),
        }, ensure_ascii=False, sort_keys=True, indent=0)

    def predict(self, text: str, explain: int = 0) -> Prediction:
        """Probabilities for ``text`` (see :func:`bot.triage.features.model_text`)."""
        rows, values, columns = self._tfidf(text)
        scores = [bias + sum(map(mul, values, column))
                  for bias, column in zip(self.intercepts, columns, strict=True)]
        result = dict(zip(self.classes, _softmax(scores), strict=True))
        return Prediction(result, self._top_terms(rows, values, columns, result, explain)
                          if explain else ())

    def _tfidf(self, text: str) -> tuple[list[int], list[float], list[tuple[float, ...]]]:
        """The rows of the text's known features, their weights, and the class weights of
        those rows (one tuple per class), all parallel."""
        words = tokens(text)
        index = self.index
        found = [row for token in words for row in self._rows_of(token)]
        found += [index[b] for b in bigrams(words) if b in index]
        counts = Counter(found)
        rows = list(counts)
        if not rows:
            return rows, [], [()] * len(self.classes)
        pick = itemgetter(*rows, rows[0])  # one gather in C per field; the extra keeps a tuple
        idf, *columns = [pick(values)[:-1] for values in self._fields()]
        log = math.log
        raw = [(1.0 + log(count)) * weight
               for count, weight in zip(counts.values(), idf, strict=True)]
        norm = math.sqrt(sum(map(mul, raw, raw))) or 1.0
        return rows, [v / norm for v in raw], columns

    def _fields(self) -> list[array]:
        """idf, then each class's weights, as arrays of doubles indexed by row (built once).

        A mail's 100-300 rows are scattered over 25,000: read from lists, each value is a
        list slot and a float object elsewhere in memory, and in the worker, between the
        other steps of a mail, those cache misses made scoring 3 times slower than in a
        loop of its own. A packed double is one read (the model's part of a mail in the
        worker: 490-520 -> 365-395 microseconds)."""
        if not self._packed:
            width = len(self.classes)
            flat = self.weights.tolist()
            self._packed.append(array("d", self.idf.tolist()))
            self._packed.extend(array("d", flat[k::width]) for k in range(width))
        return self._packed

    def _rows_of(self, token: str) -> tuple[int, ...]:
        """Rows of the token's known features; cached, since words repeat across mail."""
        rows = self._known.get(token)
        if rows is None:
            if len(self._known) >= TOKEN_CACHE_LIMIT:
                self._known.clear()
            rows = tuple(self.index[f] for f in token_features(token) if f in self.index)
            self._known[token] = rows
        return rows

    def _top_terms(self, rows: list[int], values: list[float],
                   columns: list[tuple[float, ...]], probabilities: dict[str, float],
                   limit: int) -> tuple[str, ...]:
        k = self.classes.index(max(probabilities, key=probabilities.__getitem__))
        pushes = heapq.nlargest(limit, zip(map(mul, values, columns[k]), rows, strict=True))
        if pushes and not self._names:
            self._names.extend(sorted(self.index, key=self.index.__getitem__))
        return tuple(dict.fromkeys(self._names[row].split(":", 1)[1].strip()
                                   for push, row in pushes if push > 0))


def _floats(encoded: str) -> array:
    values = array("f")
    values.frombytes(base64.b64decode(encoded))
    return values


def _encode(values: array) -> str:
    return base64.b64encode(array("f", values).tobytes()).decode("ascii")


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]  # shifted: never overflows
    total = sum(exps)
    return [e / total for e in exps]
