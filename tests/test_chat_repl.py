from __future__ import annotations

import argparse
import io
from typing import TextIO, cast

import pytest

from appliance import chat_repl

try:
    from tests.openai_stub import free_port, serve_openai_stub
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from openai_stub import free_port, serve_openai_stub  # type: ignore[no-redef]


def _args(base_url: str, *extra: str, model: str = "stub-model") -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    chat_repl.add_arguments(parser)
    return parser.parse_args([model, "--base-url", base_url, *extra])


def _run(args: argparse.Namespace, text: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = chat_repl.run_from_args(args, stdin=io.StringIO(text), stdout=out)
    return rc, out.getvalue()


def _user_turns(body: dict[str, object]) -> list[str]:
    messages = body["messages"]
    assert isinstance(messages, list)
    return [m["content"] for m in messages if m["role"] == "user"]


def test_two_turns_keep_history_then_reset() -> None:
    with serve_openai_stub() as stub:
        rc, out = _run(
            _args(stub.base_url, "--system", "be brief", "--max-tokens", "50"),
            "hello there\nsecond question\n/reset\nafter reset\n",
        )
        bodies = stub.bodies("/v1/chat/completions")
    assert rc == 0
    assert out.splitlines() == [
        "echo: hello there",
        "echo: second question",
        "(conversation cleared)",
        "echo: after reset",
    ]
    assert len(bodies) == 3
    assert _user_turns(bodies[0]) == ["hello there"]
    assert _user_turns(bodies[1]) == ["hello there", "second question"]
    assert bodies[1]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "echo: hello there"},
        {"role": "user", "content": "second question"},
    ]
    assert _user_turns(bodies[2]) == ["after reset"]
    assert bodies[2]["messages"][0] == {"role": "system", "content": "be brief"}
    assert all(b["stream"] is True and b["max_tokens"] == 50 for b in bodies)


def test_errors_print_one_line_and_repl_continues() -> None:
    with serve_openai_stub() as stub:
        rc, out = _run(
            _args(stub.base_url),
            "first\nplease TRIGGER_400\nnow TRIGGER_SSE_ERROR\nlast\n",
        )
        bodies = stub.bodies("/v1/chat/completions")
    assert rc == 1  # piped input: failed turns make the exit status 1
    lines = out.splitlines()
    assert lines[0] == "echo: first"
    assert lines[1] == "error: HTTP 400: stub rejected the request"
    assert lines[2].startswith("echo: ")  # partial reply before the mid-stream error
    assert lines[3] == "error: stub failed mid-stream"
    assert lines[4] == "echo: last"
    # Failed turns are not kept in the history.
    assert _user_turns(bodies[-1]) == ["first", "last"]


def test_unknown_model_and_unreachable_server_end_the_chat() -> None:
    with serve_openai_stub() as stub:
        with pytest.raises(chat_repl.ChatError, match=r"^HTTP 404: model 'nope' not found$"):
            _run(_args(stub.base_url, model="nope"), "hi\nagain\n")
        assert len(stub.bodies("/v1/chat/completions")) == 1  # no second turn

    with pytest.raises(chat_repl.ChatError, match=r"^cannot reach "):
        _run(_args(f"http://127.0.0.1:{free_port()}/v1"), "hi\nagain\n")
    with pytest.raises(chat_repl.ChatError, match=r"^cannot reach "):
        _run(_args(f"http://127.0.0.1:{free_port()}/v1"), "")  # before any input


def test_commands_and_exit() -> None:
    with serve_openai_stub() as stub:
        rc, out = _run(
            _args(stub.base_url),
            "/help\n/system you are terse\n/bogus\nhi\n/exit\nnever sent\n",
        )
        bodies = stub.bodies("/v1/chat/completions")
    assert rc == 0
    assert "/reset" in out and "(system prompt set)" in out and "unknown command /bogus" in out
    assert len(bodies) == 1
    assert bodies[0]["messages"][0] == {"role": "system", "content": "you are terse"}
    assert "never sent" not in out


def test_eof_exits_zero_without_requests() -> None:
    with serve_openai_stub() as stub:
        assert _run(_args(stub.base_url), "") == (0, "")
        assert stub.requests == []


def test_reasoning_shown_only_with_flag() -> None:
    with serve_openai_stub(reasoning="let me think") as stub:
        _, hidden = _run(_args(stub.base_url), "q\n")
        _, shown = _run(_args(stub.base_url, "--show-reasoning"), "q\n")
    assert hidden.splitlines() == ["echo: q"]
    assert shown.splitlines() == ["[reasoning] let me think", "echo: q"]


class _InterruptingOut(io.StringIO):
    """Raises KeyboardInterrupt (as Ctrl-C would) on the first write starting with ``at``."""

    def __init__(self, at: str) -> None:
        super().__init__()
        self.at = at
        self.fired = False

    def write(self, s: str) -> int:
        if not self.fired and s.startswith(self.at):
            self.fired = True
            raise KeyboardInterrupt
        return super().write(s)


def test_ctrl_c_during_reply_returns_to_prompt() -> None:
    with serve_openai_stub(delay_s=0.01) as stub:
        out = _InterruptingOut("echo")
        rc = chat_repl.run_from_args(
            _args(stub.base_url), stdin=io.StringIO("long one\nnext\n"), stdout=out
        )
        bodies = stub.bodies("/v1/chat/completions")
    assert rc == 0
    assert out.getvalue().splitlines() == ["[interrupted]", "echo: next"]
    # Nothing was shown for the interrupted turn, so it is not kept in the history.
    assert _user_turns(bodies[1]) == ["next"]


def test_ctrl_c_keeps_the_partial_reply_shown() -> None:
    with serve_openai_stub(delay_s=0.01) as stub:
        out = _InterruptingOut(": lo")
        rc = chat_repl.run_from_args(
            _args(stub.base_url), stdin=io.StringIO("long one\nnext\n"), stdout=out
        )
        bodies = stub.bodies("/v1/chat/completions")
    assert rc == 0
    assert out.getvalue().splitlines() == ["echo", "[interrupted]", "echo: next"]
    assert bodies[1]["messages"][:2] == [
        {"role": "user", "content": "long one"},
        {"role": "assistant", "content": "echo"},
    ]


def test_ctrl_c_at_prompt_exits() -> None:
    class _InterruptingIn:
        def isatty(self) -> bool:
            return False

        def readline(self) -> str:
            raise KeyboardInterrupt

    out = io.StringIO()
    stdin = cast(TextIO, _InterruptingIn())
    with serve_openai_stub() as stub:
        assert chat_repl.run_from_args(_args(stub.base_url), stdin=stdin, stdout=out) == 0
    assert out.getvalue() == "\n"
