"""Ollama's Hugging Face names, `hf.co/ORG/REPO[:TAG]`, as the store's (pure: no I/O).

Ollama users pull and then chat with `hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M`
(`huggingface.co/` too; any case). `hf_name` is the one mapping from such a name to what
the pull fetches and to the store name it is kept under, used by the pull
(`admin_routes.start_pull`) and by name resolution (`names.canonical`), so the two never
disagree.

- The tag is a quantization: it picks the repo's one `.gguf` whose file name contains it,
  ignoring case (the hub glob `*TAG*.gguf`, which `hub.select_file` matches ignoring
  case; none or several matching is refused, naming the files). Without a tag (or with
  `:latest`) Ollama's default: the Q4_K_M file when the repo has one, else its only GGUF.
- The store name is `ORG-REPO-TAG` (`ORG-REPO` without a tag), lowercased: the org is
  kept so that two orgs' repos of the same name never share a name. Repo parts and tags
  are letters, digits and `. _ -`, so the result is a valid store name
  (`layout.safe_model_name`) whenever it fits its length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.store.errors import InvalidNameError
from appliance.store.layout import MAX_NAME_LENGTH

__all__ = ["DEFAULT_TAG", "HfName", "hf_name", "is_hf_name"]

_PREFIXES = ("hf.co/", "huggingface.co/")
_PART_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_TAG = "Q4_K_M"


@dataclass(frozen=True)
class HfName:
    """An Ollama Hugging Face name, parsed: what to pull and what to call it here."""

    repo: str  # ORG/REPO as typed
    tag: str | None  # None: Ollama's default
    store_name: str

    @property
    def refs(self) -> tuple[str, ...]:
        """The hf:// references to try, in order, until one finds a file: the tag's, or
        Q4_K_M's and then the repo's only GGUF."""
        if self.tag is not None:
            return (f"hf://{self.repo}/*{self.tag.lower()}*.gguf",)
        return (f"hf://{self.repo}/*{DEFAULT_TAG.lower()}*.gguf", f"hf://{self.repo}/*.gguf")

    @property
    def shown(self) -> str:
        return f"hf.co/{self.repo}" + (f":{self.tag}" if self.tag is not None else "")


def is_hf_name(model: str) -> bool:
    return model.lower().startswith(_PREFIXES)


def hf_name(model: str) -> HfName | None:
    """`model` as an Ollama Hugging Face name, or None when it is not one (no `hf.co/` or
    `huggingface.co/` prefix, any case). InvalidNameError when it has the prefix but is
    not `PREFIX/ORG/REPO[:TAG]` with valid parts, or its store name would be too long."""
    lowered = model.lower()
    prefix = next((p for p in _PREFIXES if lowered.startswith(p)), None)
    if prefix is None:
        return None
    body = model[len(prefix) :]
    path, sep, tag = body.partition(":")
    parts = path.split("/")
    if len(parts) != 2 or not all(_PART_RE.fullmatch(p) and ".." not in p for p in parts):
        raise InvalidNameError(
            f"{model!r} is not a Hugging Face name: expected hf.co/ORG/REPO or hf.co/ORG/REPO:TAG"
        )
    if sep and not _TAG_RE.fullmatch(tag):
        raise InvalidNameError(
            f"{model!r}: the tag {tag!r} is not a quantization name "
            "(letters, digits and . _ - only), e.g. Q4_K_M"
        )
    chosen: str | None = tag if sep and tag.lower() != "latest" else None
    org, repo = parts
    store_name = "-".join([org, repo] + ([chosen] if chosen else [])).lower()
    if len(store_name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"{model!r} makes the store name {store_name[:60]!r}..., longer than "
            f"{MAX_NAME_LENGTH} characters: pull hf://{org}/{repo}/FILE.gguf with a shorter name"
        )
    return HfName(repo=f"{org}/{repo}", tag=chosen, store_name=store_name)
