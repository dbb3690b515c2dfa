"""A chat template's turn edges, found by rendering probes (`turn_marks`): where a
recurrent model's state is saved so that later prompts can start from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.engines.chat_template import ChatTemplate
from appliance.engines.turn_marks import TurnMarkers, chat_marks, template_markers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"


def fixture(name: str) -> ChatTemplate:
    return ChatTemplate((FIXTURES / name).read_text(), bos_token="<s>", eos_token="</s>")


@pytest.mark.parametrize(
    ("name", "opening", "user_start"),
    [
        ("Qwen-Qwen3-0.6B.jinja", "<|im_start|>assistant\n", "<|im_start|>user\n"),
        # A default system message before the first user turn: its end comes along.
        (
            "Qwen-Qwen2.5-7B-Instruct.jinja",
            "<|im_start|>assistant\n",
            "<|im_end|>\n<|im_start|>user\n",
        ),
        ("GLM-4.7-Flash.jinja", "<|assistant|><think>", "<|user|>"),
        (
            "ibm-granite-granite-4.0.jinja",
            "<|start_of_role|>assistant<|end_of_role|>",
            "<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>",
        ),
        ("llama-cpp-deepseek-r1.jinja", "<｜Assistant｜><think>\n", "<｜User｜>"),
        # No generation prompt: the answer follows [/INST].
        ("unsloth-mistral-Devstral-Small-2507.jinja", "", "[INST]"),
    ],
)
def test_a_templates_markers_come_from_its_own_renders(
    name: str, opening: str, user_start: str
) -> None:
    assert template_markers(fixture(name)) == TurnMarkers(opening, user_start)


def test_a_template_that_refuses_the_probes_has_no_markers() -> None:
    refusing = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    assert template_markers(refusing) == TurnMarkers()


def characters(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_a_prompts_marks_are_where_its_first_user_turn_starts_and_its_history_ends() -> None:
    """The system prompt and tools end where the first user turn starts: a new conversation
    shares them; a later turn starts from the last one's history end, past them."""
    template = fixture("Qwen-Qwen3-0.6B.jinja")
    messages = [
        {"role": "system", "content": "Tools and rules."},
        {"role": "user", "content": "First?"},
        {"role": "assistant", "content": "An answer."},
        {"role": "user", "content": "Second?"},
    ]
    text = template.render(messages, add_generation_prompt=True)
    marks = chat_marks(text, characters(text), template_markers(template), characters)
    first_user = text.index("<|im_start|>user\n")
    history_end = len(text) - len("<|im_start|>assistant\n")
    assert marks == [first_user, history_end]
    assert text[:first_user] == "<|im_start|>system\nTools and rules.<|im_end|>\n"


def test_marks_are_token_positions_a_prefix_of_the_prompt_keeps() -> None:
    """Cut inside what the tokenizer reads as one token, a mark falls back to the token
    before it: the state saved there is still a prefix of the prompt."""
    text = "SYS|USER q|ASSISTANT "
    markers = TurnMarkers(opening="ASSISTANT ", user_start="|USER ")

    def pairs(t: str) -> list[int]:  # two characters a token, the last one alone
        return [hash(t[i : i + 2]) for i in range(0, len(t), 2)]

    tokens = pairs(text)
    assert chat_marks(text, tokens, markers, pairs) == [1, 5]  # "SY", "SYS|USER q|"


def test_a_prefill_has_no_history_end() -> None:
    """A prompt that ends inside the answer's text (a prefill) marks only its user turn."""
    markers = TurnMarkers(opening="<|im_start|>assistant\n", user_start="<|im_start|>user\n")
    text = "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nq<|im_end|>\n"
    text += "<|im_start|>assistant\nThe answer starts"
    assert chat_marks(text, characters(text), markers, characters) == [
        len("<|im_start|>system\ns<|im_end|>\n")
    ]
