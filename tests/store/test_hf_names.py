"""Ollama's Hugging Face names as the store's: the one mapping the pull and `canonical` use."""

from __future__ import annotations

import pytest

from appliance.store.errors import InvalidNameError
from appliance.store.hf_names import HfName, hf_name
from appliance.store.hub import parse_ref
from appliance.store.layout import safe_model_name


def test_a_tagged_name_maps_to_its_glob_and_a_lowercased_store_name() -> None:
    name = hf_name("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M")
    assert name == HfName(
        "bartowski/Llama-3.2-1B-Instruct-GGUF",
        "Q4_K_M",
        "bartowski-llama-3.2-1b-instruct-gguf-q4_k_m",
    )
    assert name.refs == ("hf://bartowski/Llama-3.2-1B-Instruct-GGUF/*q4_k_m*.gguf",)
    assert parse_ref(name.refs[0]).is_glob
    assert safe_model_name(name.store_name) == name.store_name


@pytest.mark.parametrize(
    "typed",
    [
        "HF.CO/Bartowski/llama-3.2-1b-instruct-gguf:q4_k_m",
        "huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
        "HuggingFace.co/BARTOWSKI/LLAMA-3.2-1B-INSTRUCT-GGUF:Q4_k_M",
    ],
)
def test_any_case_and_either_host_map_to_the_same_store_name(typed: str) -> None:
    name = hf_name(typed)
    assert name is not None
    assert name.store_name == "bartowski-llama-3.2-1b-instruct-gguf-q4_k_m"


def test_without_a_tag_or_with_latest_ollama_default_is_tried_then_the_only_gguf() -> None:
    for typed in (
        "hf.co/org/Tiny-GGUF",
        "hf.co/org/Tiny-GGUF:latest",
        "hf.co/org/Tiny-GGUF:LATEST",
    ):
        name = hf_name(typed)
        assert name is not None and name.tag is None
        assert name.store_name == "org-tiny-gguf"
        assert name.refs == ("hf://org/Tiny-GGUF/*q4_k_m*.gguf", "hf://org/Tiny-GGUF/*.gguf")
        assert name.shown == "hf.co/org/Tiny-GGUF"


@pytest.mark.parametrize("other", ["tiny", "tiny:latest", "hf://org/repo/x.gguf", "org/repo", ""])
def test_other_names_are_not_hf_names(other: str) -> None:
    assert hf_name(other) is None


@pytest.mark.parametrize(
    "bad",
    [
        "hf.co/org",
        "hf.co/org/repo/file.gguf",
        "hf.co/org/../x",
        "hf.co/org/repo:Q4_*",
        "hf.co/org/repo:[ab]",
        "hf.co/org/repo:",
        "hf.co//repo:Q4",
        "hf.co/org/re po:Q4",
        "hf.co/" + "o" * 90 + "/" + "r" * 90,
    ],
)
def test_malformed_hf_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        hf_name(bad)
