"""llama-server's own samplers, as its clients send them (SillyTavern, Open WebUI's
advanced parameters, scripts): typical_p, top_n_sigma, XTC, DRY, dynamic temperature and
Mirostat. Read here, checked, and handed to the engine as they are; a value that turns a
sampler off (llama-server's neutral one) is left out, so that an engine without these
samplers refuses only a request that really asks for one. They were ignored: the same
seed gave the same text whatever they said.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from appliance.api.errors import invalid_request

__all__ = ["MAX_DRY_BREAKERS", "SAMPLER_KEYS", "llama_samplers", "sampler_order"]

MAX_DRY_BREAKERS = 32
_INT32_MAX = 2**31 - 1

# key: (low, high, integral, neutral value); high None is unbounded.
_NUMBERS: dict[str, tuple[float, float | None, bool, float]] = {
    "typical_p": (0.0, 1.0, False, 1.0),
    "top_n_sigma": (-1.0, None, False, -1.0),
    "xtc_probability": (0.0, 1.0, False, 0.0),
    "xtc_threshold": (0.0, 1.0, False, 0.1),
    "dry_multiplier": (0.0, None, False, 0.0),
    "dry_base": (1.0, None, False, 1.75),
    "dry_allowed_length": (0, _INT32_MAX, True, 2),
    "dry_penalty_last_n": (-1, _INT32_MAX, True, -1),
    "dynatemp_range": (0.0, None, False, 0.0),
    "dynatemp_exponent": (0.0, None, False, 1.0),
    "mirostat": (0, 2, True, 0),
    "mirostat_tau": (0.0, None, False, 5.0),
    "mirostat_eta": (0.0, None, False, 0.1),
}
SAMPLER_KEYS = (*_NUMBERS, "dry_sequence_breakers")
# The key that switches each sampler on; its neutral value above leaves it off.
_SWITCHES = (
    "typical_p",
    "top_n_sigma",
    "xtc_probability",
    "dry_multiplier",
    "dynatemp_range",
    "mirostat",
)


def _number(body: Mapping[str, Any], key: str) -> float | int | None:
    value = body.get(key)
    if value is None:
        return None
    low, high, integral, _ = _NUMBERS[key]
    kind = int if integral else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        what = "an integer" if integral else "a finite number"
        raise invalid_request(f"'{key}' must be {what}, got {value!r}.", param=key)
    if value < low or (high is not None and value > high):
        bound = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
        raise invalid_request(f"'{key}' must be {bound}, got {value!r}.", param=key)
    return value


def _breakers(body: Mapping[str, Any]) -> list[str] | None:
    value = body.get("dry_sequence_breakers")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise invalid_request(
            "'dry_sequence_breakers' must be a list of non-empty strings.",
            param="dry_sequence_breakers",
        )
    if len(value) > MAX_DRY_BREAKERS:
        raise invalid_request(
            f"'dry_sequence_breakers' has more than {MAX_DRY_BREAKERS} strings.",
            param="dry_sequence_breakers",
        )
    return list(value)


def llama_samplers(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request's llama-server samplers that are on, each with its settings (the
    missing ones at llama-server's defaults); empty when none is."""
    given = {key: _number(body, key) for key in _NUMBERS}
    breakers = _breakers(body)
    on = {key for key in _SWITCHES if given[key] not in (None, _NUMBERS[key][3])}
    if given["top_n_sigma"] is not None and given["top_n_sigma"] <= 0:
        on.discard("top_n_sigma")  # llama-server: <= 0 is off
    if not on:
        return {}
    out: dict[str, Any] = {}
    for key, (_, _, _, neutral) in _NUMBERS.items():
        value = given[key]
        off = key in _SWITCHES and key not in on
        out[key] = neutral if value is None or off else value
    out["dry_sequence_breakers"] = breakers if breakers is not None else ["\n", ":", '"', "*"]
    return out


# llama-server's names for the samplers that pick a token (and their aliases in
# common_sampler_types_from_names); the penalties and DRY always come first, as there.
_ORDER_NAMES = {
    "top_k": "top_k",
    "top-k": "top_k",
    "typ_p": "typ_p",
    "typ-p": "typ_p",
    "typical_p": "typ_p",
    "typical": "typ_p",
    "top_p": "top_p",
    "top-p": "top_p",
    "nucleus": "top_p",
    "min_p": "min_p",
    "min-p": "min_p",
    "xtc": "xtc",
    "temperature": "temperature",
    "temp": "temperature",
    "top_n_sigma": "top_n_sigma",
    "top-n-sigma": "top_n_sigma",
    "infill": "infill",
}


def sampler_order(body: Mapping[str, Any]) -> tuple[str, ...]:
    """llama-server's `samplers`: the samplers that pick the token, in this order, and no
    others (llama.vscode sends ["top_k", "top_p", "infill"], SillyTavern its own order).
    Empty when not given: the default chain. Names it does not know are passed over, as
    llama-server passes them over."""
    value = body.get("samplers")
    if not isinstance(value, list):
        return ()
    names = (_ORDER_NAMES.get(str(v).lower()) for v in value if isinstance(v, str))
    return tuple(n for n in names if n is not None)
