"""Which model a name means: the catalog's names and aliases and the store's names.

Requests match names ignoring case (as Ollama's and OpenAI clients' users type them), so
an exact name or alias wins over one that matches ignoring case, two of those are
ambiguous rather than a guess, and Ollama's default tag is understood (`NAME:latest` is
NAME when no model has that name). The store refuses a second name that differs from
one of its own only in case, and the daemon one that is the catalog's; `canonical` still
copes with stores written before that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.catalog import Catalog, HubSource
from appliance.store.errors import InvalidNameError, StoreError
from appliance.store.hf_names import hf_name
from appliance.tiers.errors import BadModelRequest, ModelNotFound

if TYPE_CHECKING:
    from appliance.store.store import Store

__all__ = ["canonical", "shadowed_by_catalog"]


def canonical(catalog: Catalog, store: Store, model: str) -> str:
    """The model's name for `model` (a name, an alias, either ignoring case, or with
    `:latest`), or ModelNotFound naming what was asked; BadModelRequest when ambiguous.

    An Ollama Hugging Face name (`hf.co/ORG/REPO:TAG`, any case) means the stored model
    its pull made (`hf_names.hf_name`, the mapping the pull uses), and only that: not yet
    pulled, ModelNotFound says to pull it (it is never pulled on a request)."""
    try:
        hf = hf_name(model)
    except InvalidNameError:
        hf = None  # an unknown model, like any other name
    if hf is not None:
        try:
            if store.get(hf.store_name) is not None:
                return hf.store_name
        except StoreError:
            pass
        raise ModelNotFound(
            model, hint=f"Pull it first: `ollama pull {model}` or `appliance pull {model}`."
        )
    try:
        return _canonical(catalog, store, model)
    except ModelNotFound:
        if not model.endswith(":latest"):
            raise
    try:
        return _canonical(catalog, store, model.removesuffix(":latest"))
    except ModelNotFound:
        raise ModelNotFound(model) from None


def _canonical(catalog: Catalog, store: Store, model: str) -> str:
    entry = catalog.exact(model)
    if entry is not None:
        return entry.name
    matches: set[str] = set()
    try:
        if store.get(model) is not None:
            return model
        folded = model.casefold()
        matches |= {m.name for m in store.list() if m.name.casefold() == folded}
    except StoreError:
        pass
    entry = catalog.resolve(model)
    if entry is not None:
        matches.add(entry.name)
    if len(matches) > 1:
        raise BadModelRequest(
            f"'{model}' matches {' and '.join(sorted(matches))} ignoring case: name one exactly",
            code="ambiguous_model",
        )
    if matches:
        return matches.pop()
    raise ModelNotFound(model)


def shadowed_by_catalog(catalog: Catalog, name: str) -> str | None:
    """Why `name` cannot be a stored model's (None when it can): it is a catalog model's
    alias, or its name ignoring case but not exactly, or the name of a catalog model
    served from a local path, so requests for it would reach the catalog's model, never
    the stored one."""
    entry = catalog.resolve(name)
    if entry is None:
        return None
    if entry.name == name:
        if isinstance(entry.source, HubSource):
            return None  # the catalog model's own file, brought by hand (air-gapped)
        return (
            f"{name!r} is the catalog's model served from its own file {entry.source}: a "
            "stored model of that name would never be served; choose another name"
        )
    return (
        f"{name!r} names the catalog's model {entry.name!r} (names and aliases are matched "
        "ignoring case): choose another name"
    )
