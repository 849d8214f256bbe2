"""Turn raw inputs (images, text) into monitored numeric features.

A model trained on bright images that starts receiving dim ones shows it on ``brightness``;
text that drifts shows on its length, token count or share of out-of-vocabulary tokens.

>>> import numpy as np
>>> features = image_features(np.full((2, 8, 8), 0.5))
>>> features["brightness"].tolist(), features["contrast"].tolist()
([0.5, 0.5], [0.0, 0.0])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np

_TOKEN = re.compile(r"\w+", re.UNICODE)


def image_features(images: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Per image: mean brightness, contrast (standard deviation), height, width, channels."""
    stack = images if isinstance(images, np.ndarray) and images.ndim >= 3 else None
    if stack is not None:
        flat = stack.reshape(stack.shape[0], -1).astype(np.float64)
        n = stack.shape[0]
        shape = stack.shape[1:]
        return {
            "brightness": flat.mean(axis=1),
            "contrast": flat.std(axis=1),
            "height": np.full(n, shape[0], dtype=np.float64),
            "width": np.full(n, shape[1], dtype=np.float64),
            "channels": np.full(n, shape[2] if len(shape) > 2 else 1, dtype=np.float64),
        }
    arrays = [np.asarray(i, dtype=np.float64) for i in images]
    return {
        "brightness": np.array([a.mean() for a in arrays]),
        "contrast": np.array([a.std() for a in arrays]),
        "height": np.array([a.shape[0] for a in arrays], dtype=np.float64),
        "width": np.array([a.shape[1] for a in arrays], dtype=np.float64),
        "channels": np.array([a.shape[2] if a.ndim > 2 else 1 for a in arrays], dtype=np.float64),
    }


class TextFeatures:
    """Length, token count and out-of-vocabulary share, the vocabulary learnt from reference text.

    >>> t = TextFeatures().fit(["the card was declined", "card payment ok"])
    >>> t.transform(["the card", "zzz qqq"])["oov_share"].tolist()
    [0.0, 1.0]
    """

    def __init__(self) -> None:
        self.vocabulary: set[str] = set()

    def fit(self, texts: Iterable[str | None]) -> TextFeatures:
        self.vocabulary = {t.lower() for text in texts if text for t in _TOKEN.findall(text)}
        return self

    def transform(self, texts: Sequence[str | None]) -> dict[str, np.ndarray]:
        lengths, counts, oov = [], [], []
        for text in texts:
            tokens = [t.lower() for t in _TOKEN.findall(text or "")]
            lengths.append(len(text or ""))
            counts.append(len(tokens))
            oov.append(sum(t not in self.vocabulary for t in tokens) / len(tokens) if tokens else 0.0)
        return {
            "length": np.array(lengths, dtype=np.float64),
            "tokens": np.array(counts, dtype=np.float64),
            "oov_share": np.array(oov),
        }


EXTRACTORS: dict[str, Callable[..., dict[str, np.ndarray]]] = {"image": image_features}
