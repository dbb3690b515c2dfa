"""GET /v1/models and /v1/models/{id} in the Anthropic Models API's shape (pure, no I/O).

The anthropic SDK lists models from the same path as the openai one; its requests carry
an `anthropic-version` header, which picks this shape (`wants_anthropic`). A model is
`{"type": "model", "id", "display_name", "created_at" (RFC 3339), "lifecycle"}`; a list
is a page of them, `limit` (20; 1 to 1000) after `after_id` or before `before_id`, with
`first_id`, `last_id` and `has_more` (more in the page's direction), as Anthropic pages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from appliance.api.errors import invalid_request
from appliance.api.schemas import query_limit

__all__ = ["ANTHROPIC_VERSION", "MAX_LIMIT", "model_info", "model_page", "wants_anthropic"]

ANTHROPIC_VERSION = "anthropic-version"
MAX_LIMIT = 1000
LIFECYCLES = ("active", "deprecated", "retired")


def wants_anthropic(headers: Mapping[str, str]) -> bool:
    """Whether a request to the models routes is the anthropic SDK's (or another client
    of Anthropic's API): it names the API version it speaks."""
    return ANTHROPIC_VERSION in headers


def model_info(name: str, created: int) -> dict[str, Any]:
    """One model as Anthropic describes it: `created` (Unix seconds, 0 when unknown) as
    an RFC 3339 time; every model here is `active`."""
    when = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "model",
        "id": name,
        "display_name": name,
        "created_at": when,
        "lifecycle": "active",
    }


def _position(ids: list[str], cursor: str, param: str) -> int:
    if cursor not in ids:
        raise invalid_request(f"'{param}': no model '{cursor}' in the list", param)
    return ids.index(cursor)


def model_page(
    models: Sequence[dict[str, Any]],
    query: Mapping[str, str],
    lifecycles: Sequence[str] = (),
) -> dict[str, Any]:
    """One page of `models` (in the list's order) as the query asks: `limit`, and
    `after_id` or `before_id` (not both); `lifecycles` (the query's `lifecycle` values)
    filter them, and without any the active ones are listed (as Anthropic lists active and
    deprecated ones)."""
    for i, name in enumerate(lifecycles):
        if name not in LIFECYCLES:
            raise invalid_request(
                f"'lifecycle[{i}]' must be one of {', '.join(LIFECYCLES)}, not {name!r}",
                "lifecycle",
            )
    limit = query_limit(query.get("limit"), MAX_LIMIT)
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise invalid_request("give 'after_id' or 'before_id', not both", "before_id")
    listed = [m for m in models if not lifecycles or m["lifecycle"] in lifecycles]
    ids = [str(m["id"]) for m in listed]
    if before is not None:
        end = _position(ids, before, "before_id")
        start = max(0, end - limit)
        page, has_more = listed[start:end], start > 0
    else:
        start = 0 if after is None else _position(ids, after, "after_id") + 1
        page, has_more = listed[start : start + limit], start + limit < len(listed)
    return {
        "data": list(page),
        "has_more": has_more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }
