"""A fitted linear pipeline as plain numpy arrays (model.npz), served without scikit-learn.

Serving a pickle needs scikit-learn at import time, and importing scikit-learn (which imports
scipy.stats) is most of a cold start: about 1 s of 1.4 s here. For the pipelines
`training.build_pipeline` makes with a linear estimator, everything `predict` does is a few numpy
operations: select columns, fill missing values, log, one-hot codes (a missing value has a level
of its own), missing-value indicators, a dot product, exp. Training exports those arrays next to
the pickle (sklambda.export), checks that they give the pipeline's own predictions, and records
the file's sha256 in the manifest. The file is read with `allow_pickle=False`: loading it runs
no code. This module imports numpy only.

A logistic regression (a classifier) is the same blocks, then one row of coefficients per
class (one for a binary task) and a link: "logistic" (binary: the second class's probability is
the sigmoid of the score, the first's its complement) or "softmax" (multinomial), as
scikit-learn's LogisticRegression.predict_proba computes them.

Formats: 1 had numeric and one-hot blocks, its one-hot levels never NaN. 2 (written now for
regressors) names each block's kind, and adds NaN levels (the missing level) and indicator
blocks. 3 (written for classifiers) adds the link, a coefficient matrix and an intercept per
row. This reader reads all three: a format-1 file means exactly what it meant. A server that
reads only older formats refuses a newer file (it checks the number) instead of misreading it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sklambda.errors import IntegrityError

FORMAT = 2  # bump when the layout of the arrays changes; older servers then refuse the file
CLASSIFIER_FORMAT = 3  # format 2 plus a link, coefficient rows and intercepts (classifiers)
READABLE = (1, 2, 3)  # format 1 is format 2 without missing levels or indicator blocks
KINDS = ("numeric", "onehot", "indicator")
INVERSES: dict[str, Callable[[np.ndarray], np.ndarray] | None] = {"": None, "exp": np.exp}
LINKS = ("", "logistic", "softmax")


@dataclass(frozen=True)
class Block:
    """One ColumnTransformer part: `cols` of the encoded matrix, then numeric steps (fill
    missing values, log), one-hot codes (`categories`: kept levels per column, NaN being the
    missing level) or missing-value indicators (`indicator`: 1.0 where a value is NaN)."""

    cols: np.ndarray
    fill: np.ndarray | None = None
    log: bool = False
    categories: tuple[np.ndarray, ...] | None = None
    indicator: bool = False

    @property
    def kind(self) -> str:
        if self.indicator:
            return "indicator"
        return "numeric" if self.categories is None else "onehot"

    def apply(self, X: np.ndarray) -> np.ndarray:
        Z = X[:, self.cols]
        if self.indicator:
            flags: np.ndarray = np.isnan(Z).astype(np.float64)
            return flags
        if self.categories is not None:
            # An unknown code matches no kept level: all zeros (handle_unknown="ignore"). NaN
            # matches only a NaN level (NaN == NaN is False, hence the second test).
            hot = []
            for j, kept in enumerate(self.categories):
                z = Z[:, [j]]
                hot.append(((z == kept) | (np.isnan(z) & np.isnan(kept))).astype(np.float64))
            return np.hstack(hot)
        if self.fill is not None:
            Z = np.where(np.isnan(Z), self.fill, Z)
        return np.log(Z) if self.log else Z


@dataclass(frozen=True)
class NumpyModel:
    """Preprocessing blocks, then `Xt @ coef + intercept` (when linear), then the inverse target
    transform. Without `coef` it is preprocessing only (the fast path for tree models). With a
    `link` it is a classifier: `coef` has one row per class (one for a binary task), `intercept`
    one value per row, and predict_proba gives the class probabilities."""

    blocks: tuple[Block, ...]
    coef: np.ndarray | None = None
    intercept: float | np.ndarray = 0.0
    inverse: str = ""
    link: str = ""
    # The training means of the columns `transform` outputs (explanations' reference row);
    # None in a file written before they were (sklambda.explain then answers 409).
    means: np.ndarray | None = None

    def transform(self, X: np.ndarray) -> np.ndarray:
        parts = [block.apply(X) for block in self.blocks]
        return np.hstack(parts) if len(parts) > 1 else parts[0]

    def finish(self, y: np.ndarray) -> np.ndarray:
        inverse = INVERSES[self.inverse]
        return inverse(y) if inverse is not None else y

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.coef is None or self.link:
            raise TypeError("this NumpyModel is preprocessing only, or a classifier")
        return self.finish(self.transform(X) @ self.coef + self.intercept)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """A classifier's class probabilities, one column per class (sorted labels)."""
        if self.coef is None or not self.link:
            raise TypeError("this NumpyModel is not a classifier")
        scores = self.transform(X) @ self.coef.T + self.intercept
        if self.link == "logistic":
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        proba: np.ndarray = scores / scores.sum(axis=1, keepdims=True)
        return proba

    # --- model.npz ------------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            "format": np.array(CLASSIFIER_FORMAT if self.link else FORMAT),
            "inverse": np.array(self.inverse),
            "blocks": np.array(len(self.blocks)),
        }
        if self.link:
            out["link"] = np.array(self.link)
        if self.coef is not None:
            out["coef"] = self.coef
            out["intercept"] = np.array(self.intercept)
        if self.means is not None:
            out["means"] = self.means
        for i, block in enumerate(self.blocks):
            out[f"block{i}.kind"] = np.array(block.kind)
            out[f"block{i}.cols"] = block.cols
            out[f"block{i}.log"] = np.array(block.log)
            if block.fill is not None:
                out[f"block{i}.fill"] = block.fill
            for j, kept in enumerate(block.categories or ()):
                out[f"block{i}.cat{j}"] = kept
        return out

    def save(self, path: Path) -> None:
        with path.open("wb") as fh:
            np.savez(fh, allow_pickle=False, **self.arrays())

    @classmethod
    def load(cls, path: Path) -> NumpyModel:
        """Read a model.npz (verify its sha256 first); refuses unknown layouts."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            return cls.from_arrays(arrays)
        except (KeyError, ValueError, OSError) as exc:
            raise IntegrityError(f"{path.name} is not a usable numpy model ({exc})") from None

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> NumpyModel:
        version = int(arrays["format"])
        if version not in READABLE or str(arrays["inverse"]) not in INVERSES:
            raise ValueError(f"format {version}, this server reads {READABLE}")
        blocks = []
        for i in range(int(arrays["blocks"])):
            cols = np.asarray(arrays[f"block{i}.cols"], dtype=np.intp)
            names = [f"block{i}.cat{j}" for j in range(len(cols))]
            if version == 1:  # no kind: one-hot blocks are those with categories
                kind = "onehot" if names and names[0] in arrays else "numeric"
            else:
                kind = str(arrays[f"block{i}.kind"])
                if kind not in KINDS:
                    raise ValueError(f"block {i} is of an unknown kind {kind[:20]!r}")
            categories = None
            if kind == "onehot":
                categories = tuple(np.asarray(arrays[n], dtype=np.float64) for n in names)
                if version == 1 and any(np.isnan(c).any() for c in categories):
                    raise ValueError("a format-1 file cannot have a missing level")
            blocks.append(
                Block(
                    cols=cols,
                    fill=arrays.get(f"block{i}.fill"),
                    log=bool(arrays[f"block{i}.log"]),
                    categories=categories,
                    indicator=kind == "indicator",
                )
            )
        coef = arrays.get("coef")
        link = str(arrays["link"]) if version >= CLASSIFIER_FORMAT else ""
        if link not in LINKS:
            raise ValueError(f"unknown link {link[:20]!r}")
        intercept: float | np.ndarray = 0.0
        if coef is not None and link:
            coef = np.asarray(coef, dtype=np.float64)
            intercept = np.asarray(arrays["intercept"], dtype=np.float64)
            rows = 1 if link == "logistic" else coef.shape[0] if coef.ndim == 2 else 0
            if coef.ndim != 2 or coef.shape[0] != rows or intercept.shape != (rows,) or rows < 1:
                raise ValueError(f"a {link} model needs coefficient rows and their intercepts")
        elif coef is not None:
            intercept = float(arrays["intercept"])
        return cls(
            blocks=tuple(blocks),
            coef=None if coef is None else np.asarray(coef, dtype=np.float64),
            intercept=intercept,
            inverse=str(arrays["inverse"]),
            link=link,
            means=_means(arrays, coef),
        )


def _means(arrays: Mapping[str, np.ndarray], coef: np.ndarray | None) -> np.ndarray | None:
    """The training means of the columns, if the file has them (any format may: an older
    reader ignores them), one per coefficient."""
    means = arrays.get("means")
    if means is None:
        return None
    means = np.asarray(means, dtype=np.float64)
    if coef is None or means.shape != (np.asarray(coef).shape[-1],):
        raise ValueError("the training means do not match the coefficients")
    return means
