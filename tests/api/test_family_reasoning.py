"""Reasoning in a family's own markup, without tools, through the daemon and the official
`openai` client: gpt-oss's analysis channel and Magistral's [THINK] block come back as
`reasoning_content`, never in the answer's content (they did before: only a <think>
block was split when no tools were sent). The tiny model is made to write each
family's markup by a grammar."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.api.chat_output import ChatOutput
from appliance.api.tools import Tools
from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.api.template_tools import client, start_template_daemon
from tests.daemon import Daemon, start_daemon

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
OUTPUTS = {
    "gpt-oss": "<|channel|>analysis<|message|>Let me think.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>Paris.",
    "magistral": "[THINK]Let me think.[/THINK]Paris.",
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("family-reasoning")
    d = start_template_daemon(
        home,
        {
            "gpt-oss": (TEMPLATES / "openai-gpt-oss-120b.jinja").read_text(),
            "magistral": (TEMPLATES / "mistralai-Ministral-3-14B-Reasoning-2512.jinja").read_text(),
        },
    )
    yield d
    d.stop()


def ask(d: Daemon, model: str, **kw: Any) -> Any:
    literal = OUTPUTS[model].replace("\\", "\\\\").replace('"', '\\"')
    return client(d).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "The capital of France?"}],
        max_tokens=200,
        temperature=0,
        extra_body={"grammar": f'root ::= "{literal}"'},
        **kw,
    )


@pytest.mark.parametrize("model", sorted(OUTPUTS))
def test_a_familys_reasoning_is_split_from_the_answer(daemon: Daemon, model: str) -> None:
    r = ask(daemon, model)
    message = r.choices[0].message
    assert message.content == "Paris."
    assert message.model_extra["reasoning_content"] == "Let me think."
    assert r.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", sorted(OUTPUTS))
def test_a_familys_reasoning_is_split_while_streaming(daemon: Daemon, model: str) -> None:
    content, reasoning = [], []
    for chunk in ask(daemon, model, stream=True):
        for choice in chunk.choices:
            content.append(choice.delta.content or "")
            reasoning.append((choice.delta.model_extra or {}).get("reasoning_content") or "")
    assert "".join(content) == "Paris."
    assert "".join(reasoning) == "Let me think."


@pytest.mark.parametrize(
    ("family", "text"),
    [
        ("gemma4", "<|channel>thought\nLet me think.<channel|>Paris."),
        ("seed_oss", "<seed:think>Let me think.</seed:think>\nParis."),
        ("command_r7b", "<|START_THINKING|>Let me think.<|END_THINKING|><|START_RESPONSE|>Paris."),
        ("apertus", "<|inner_prefix|>Let me think.<|inner_suffix|>Paris."),
        ("granite3", "<think>Let me think.</think><response>Paris.</response>"),
        ("hermes", "<think>Let me think.</think>\nParis."),
    ],
)
def test_every_familys_markup_is_read_without_tools(family: str, text: str) -> None:
    """Whole and a character at a time, the same split."""
    for pieces in ([text], list(text)):
        output = ChatOutput(
            split_reasoning=True, reasoning_started=False, family=family, tools=Tools()
        )
        deltas = [d for piece in pieces for d in output.feed(piece)] + output.finish()
        assert "".join(d.get("content") or "" for d in deltas) == "Paris."
        assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Let me think."
        assert output.message()["content"] == "Paris."


def test_without_tools_a_call_is_text() -> None:
    """No tool was offered: what would open a call is the answer's text, as written."""
    text = (
        "<seed:think>hm</seed:think>Write <seed:tool_call><function=f></function></seed:tool_call>."
    )
    output = ChatOutput(
        split_reasoning=True, reasoning_started=False, family="seed_oss", tools=Tools()
    )
    output.feed(text)
    output.finish()
    assert output.message()["content"] == text.split("</seed:think>")[1]
    assert "tool_calls" not in output.message()
    assert output.finish_reason("stop") == "stop"


# A Magistral-style template, for a model whose [THINK] and [/THINK] are control tokens
# (as in Mistral's tokenizers): the template writes them, so answers show them.
THINK_CONTROLS = (
    "{%- for m in messages %}{% if m.role == 'user' %}[INST]{{ m.content }}[/INST]"
    "{% elif m.reasoning_content %}[THINK]{{ m.reasoning_content }}[/THINK]{{ m.content }}</s>"
    "{% else %}{{ m.content }}</s>{% endif %}{% endfor %}"
)


@pytest.fixture(scope="module")
def control_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("control-markup")
    spec = TinyModelSpec(
        chat_template=THINK_CONTROLS,
        controls=("[INST]", "[/INST]", "[THINK]", "[/THINK]", "[UNUSED]"),
    )
    model = write_tiny_gguf(home / "magistral.gguf", spec)
    catalog = home / "catalog.toml"
    # Its calls would be Mistral's too ([TOOL_CALLS]); this small template shows none.
    catalog.write_text(
        f'[models.magistral]\nsource = "{model}"\ncontext = 2048\ntool_parser = "mistral"\n'
    )
    d = start_daemon(home, catalog, env={"APPLIANCE_WEIGHT_REPACK": "false"})
    yield d
    d.stop()


def test_control_tokens_the_template_writes_show_in_the_answer(control_daemon: Daemon) -> None:
    """[THINK] and [/THINK] are control tokens the model writes (pushed to, by a bias and
    a grammar): the answer shows them as text, so the reasoning is split from the content.
    They showed as nothing, and the reasoning came back as content. A control token the
    template does not write, or one that opens a user's turn, still shows as nothing."""
    ids = {}
    for marker in ("[THINK]", "[/THINK]", "[INST]", "[UNUSED]"):
        [ids[marker]] = control_daemon.post("/tokenize", json={"content": marker}).json()["tokens"]

    def answer(text: str) -> Any:
        r = client(control_daemon).chat.completions.create(
            model="magistral",
            messages=[{"role": "user", "content": "The capital of France?"}],
            max_tokens=200,
            temperature=0,
            logit_bias={str(i): 100 for i in ids.values()},
            extra_body={"grammar": f'root ::= "{text}"'},
        )
        return r.choices[0].message

    message = answer("[THINK]Let me think.[/THINK]Paris.")
    assert message.content == "Paris."
    assert message.model_extra["reasoning_content"] == "Let me think."
    assert answer("[UNUSED]Paris.[INST]").content == "Paris."
    # Detokenized, every control token shows.
    shown = control_daemon.post("/detokenize", json={"tokens": [ids["[UNUSED]"]]}).json()
    assert shown["content"] == "[UNUSED]"


def test_without_tools_a_gpt_oss_call_is_text() -> None:
    """gpt-oss's channels mark a call apart from its text: with no tool offered, it comes
    back as the JSON of its name and arguments, in the content, and the answer stops."""
    text = (
        "<|channel|>analysis<|message|>hm<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>'
    )
    output = ChatOutput(
        split_reasoning=True, reasoning_started=False, family="harmony", tools=Tools()
    )
    output.feed(text)
    output.finish()
    message = output.message()
    assert message["content"] == '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    assert message["reasoning_content"] == "hm"
    assert "tool_calls" not in message
    assert output.finish_reason("stop") == "stop"
