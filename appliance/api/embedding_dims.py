"""An embedding shortened to the `dimensions` a request asks for (OpenAI's and Ollama's).

Cutting a unit vector leaves a shorter one (a 64-wide vector cut to 8 had length 0.33),
and clients that score with a dot product, as vector stores do for normalised models,
then rank by length as much as by direction. OpenAI and Ollama return the shortened
embedding normalised again; a model whose vectors are not normalised keeps its scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["shorten"]


def shorten(vector: Sequence[float], dimensions: int | None) -> list[float]:
    """The first `dimensions` values (all of them for None), at unit length again when
    the whole vector was."""
    values = list(vector)
    if dimensions is None or dimensions >= len(values):
        return values
    head = values[:dimensions]
    whole = math.sqrt(math.fsum(x * x for x in values))
    part = math.sqrt(math.fsum(x * x for x in head))
    if abs(whole - 1.0) > 1e-3 or part == 0.0:
        return head
    return [x / part for x in head]
