"""``appliance chat MODEL``: an interactive streaming chat REPL against /v1/chat/completions.

Works against any OpenAI-compatible server. Keeps the conversation history; commands are
``/exit``, ``/reset``, ``/system TEXT`` and ``/help``. Ctrl-C during a reply stops that reply
(the stream is closed) and Ctrl-C or Ctrl-D at the prompt leaves. Reads piped stdin too.

A chat that cannot go on (no server answers, the model is unknown or cannot be served,
the key is refused) raises `ChatError`: the command exits 1 with that one line. Other
errors are shown and the chat goes on; with piped stdin they make the exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import httpx

from appliance.bench import SSEParser, describe_http_error, error_message, one_line

DEFAULT_BASE_URL = "http://127.0.0.1:8750/v1"

HELP = """\
commands:
  /exit          leave (also Ctrl-D, or Ctrl-C at the prompt)
  /reset         forget the conversation (keeps the system prompt)
  /system TEXT   set the system prompt (without TEXT: clear it)
  /help          show this help
Ctrl-C while a reply is streaming stops that reply."""

_DIM = "\x1b[2m"
_RESET = "\x1b[0m"


class ChatError(Exception):
    """The chat cannot go on; the message is one line."""


@dataclass
class _Reply:
    content: str
    error: str | None = None
    interrupted: bool = False
    fatal: bool = False  # retrying cannot help: the chat ends with the error


def _error_code(body: bytes) -> str | None:
    try:
        err = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    code = err.get("code") if isinstance(err, dict) else None
    return code if isinstance(code, str) else None


def is_fatal(status: int, headers: httpx.Headers, body: bytes) -> bool:
    """Whether an error answer ends the chat: a refused key, an unknown model, or a
    failure the server says retrying will not mend (``x-should-retry: false``)."""
    if status in (401, 403):
        return True
    if status == 404 and _error_code(body) in ("model_not_found", None):
        return True
    return status >= 500 and headers.get("x-should-retry", "").lower() == "false"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", nargs="?", help="model name or alias (default: the catalog's)"
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="OpenAI-compatible base URL, including /v1 (default: the daemon's, from "
        f"--port, APPLIANCE_PORT or settings.toml; {DEFAULT_BASE_URL} outside the CLI)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("APPLIANCE_API_KEY") or os.environ.get("OPENAI_API_KEY"),
        help="bearer token (default $APPLIANCE_API_KEY or $OPENAI_API_KEY)",
    )
    parser.add_argument("--system", default=None, help="system prompt")
    parser.add_argument("--max-tokens", type=int, default=None, help="max tokens per reply")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    parser.add_argument(
        "--show-reasoning",
        action="store_true",
        help="print the model's reasoning (reasoning_content) dimmed before the answer",
    )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class ChatREPL:
    def __init__(
        self,
        *,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        show_reasoning: bool = False,
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.system = system
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.show_reasoning = show_reasoning
        self.stdin = stdin
        self.stdout = stdout
        self.history: list[dict[str, str]] = []
        self.failed_turns = 0
        self.color = _isatty(stdout) and not os.environ.get("NO_COLOR")
        self.prompt_visible = _isatty(stdin)
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(600.0, connect=10.0), trust_env=False
        )

    # ------------------------------------------------------------------ I/O

    def _write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _read_line(self) -> str | None:
        if self.prompt_visible and self.stdin is sys.stdin and self.stdout is sys.stdout:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing for input())
            try:
                return input("> ")
            except EOFError:
                return None
        if self.prompt_visible:
            self._write("> ")
        line = self.stdin.readline()
        if not line:
            return None
        return line.rstrip("\r\n")

    # ------------------------------------------------------------------ loop

    def run(self) -> int:
        """0 when the chat ended normally; 1 when a piped turn failed. Raises `ChatError`."""
        try:
            self.check_server()
            if self.prompt_visible:
                self._write(f"chatting with {self.model} at {self.base_url}; /help for commands\n")
            while True:
                try:
                    line = self._read_line()
                except KeyboardInterrupt:
                    self._write("\n")
                    return 0
                if line is None:
                    if self.prompt_visible:
                        self._write("\n")
                    return 1 if self.failed_turns and not self.prompt_visible else 0
                text = line.strip()
                if not text:
                    continue
                if text.startswith("/"):
                    if not self._command(text):
                        return 0
                    continue
                self._turn(line)
        finally:
            self.client.close()

    def _command(self, text: str) -> bool:
        """Run a slash command; False means leave."""
        name, _, rest = text.partition(" ")
        name = name.lower()
        if name in ("/exit", "/quit", "/bye"):
            return False
        if name == "/reset":
            self.history.clear()
            self._write("(conversation cleared)\n")
        elif name == "/system":
            self.system = rest.strip() or None
            self._write("(system prompt set)\n" if self.system else "(system prompt cleared)\n")
        elif name in ("/help", "/?"):
            self._write(HELP + "\n")
        else:
            self._write(f"unknown command {name}; /help lists the commands\n")
        return True

    def messages_for(self, user_text: str) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.extend(self.history)
        messages.append({"role": "user", "content": user_text})
        return messages

    def check_server(self) -> None:
        """Before the first prompt: a server that does not answer, or says it does not know
        the model, ends the chat at once (not after the user's first message, and not with
        status 0 when stdin is empty)."""
        url = f"{self.base_url}/models/{self.model}"
        try:
            resp = self.client.get(url, timeout=httpx.Timeout(30.0, connect=10.0))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ChatError(one_line(f"cannot reach {self.base_url}: {exc}")) from exc
        except httpx.HTTPError:
            return  # the chat request says more
        if resp.status_code in (401, 403) or (
            resp.status_code == 404 and _error_code(resp.content) == "model_not_found"
        ):
            raise ChatError(describe_http_error(resp.status_code, resp.content))

    def _turn(self, user_text: str) -> None:
        reply = self._stream(self.messages_for(user_text))
        if reply.fatal:
            raise ChatError(reply.error or "the chat cannot go on")
        if reply.error is not None:
            self.failed_turns += 1
            self._write(f"error: {reply.error}\n")
            return
        if reply.interrupted and not reply.content:
            return
        self.history.append({"role": "user", "content": user_text})
        self.history.append({"role": "assistant", "content": reply.content})

    # ------------------------------------------------------------------ streaming

    def _stream(self, messages: list[dict[str, str]]) -> _Reply:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        out = _ReplyWriter(self._write, self.color, self.show_reasoning)
        reply = _Reply(content="")
        try:
            with self.client.stream("POST", f"{self.base_url}/chat/completions", json=body) as resp:
                if resp.status_code >= 400:
                    raw = resp.read()
                    reply.error = describe_http_error(resp.status_code, raw)
                    reply.fatal = is_fatal(resp.status_code, resp.headers, raw)
                elif "text/event-stream" not in resp.headers.get("content-type", ""):
                    self._plain_reply(resp.read(), reply, out)
                else:
                    self._sse_reply(resp, reply, out)
        except KeyboardInterrupt:
            reply.interrupted = True
            out.end()
            self._write("[interrupted]\n")
            return reply
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            reply.error = one_line(f"cannot reach {self.base_url}: {exc}")
            reply.fatal = True
        except httpx.HTTPError as exc:
            reply.error = one_line(f"{type(exc).__name__}: {exc}")
        out.end()
        return reply

    def _sse_reply(self, resp: httpx.Response, reply: _Reply, out: _ReplyWriter) -> None:
        parser = SSEParser()

        def handle(event: str, data: str) -> bool:
            data = data.strip()
            if data == "[DONE]":
                return True
            try:
                obj = json.loads(data) if data else None
            except ValueError:
                obj = None
            if event == "error":
                reply.error = one_line(error_message(obj) or data or "stream error")
                return True
            if not isinstance(obj, dict):
                return False
            msg = error_message(obj)
            if msg is not None:
                reply.error = one_line(msg)
                return True
            for choice in obj.get("choices") or []:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    continue
                thought = delta.get("reasoning_content")
                if isinstance(thought, str) and thought:
                    out.reasoning(thought)
                content = delta.get("content")
                if isinstance(content, str) and content:
                    out.content(content)
                    reply.content += content
            return False

        for line in resp.iter_lines():
            if any(handle(ev.event, ev.data) for ev in parser.feed(line)):
                return
        for ev in parser.flush():
            if handle(ev.event, ev.data):
                return

    def _plain_reply(self, raw: bytes, reply: _Reply, out: _ReplyWriter) -> None:
        try:
            obj = json.loads(raw)
        except ValueError:
            reply.error = "server sent a response that is neither SSE nor JSON"
            return
        msg = error_message(obj)
        if msg is not None:
            reply.error = one_line(msg)
            return
        try:
            message = obj["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            reply.error = "unexpected response shape"
            return
        thought = message.get("reasoning_content")
        if isinstance(thought, str) and thought:
            out.reasoning(thought)
        content = message.get("content")
        if isinstance(content, str):
            reply.content = content
            out.content(content)


class _ReplyWriter:
    """Writes a reply as it streams: reasoning (optional, dimmed/prefixed), then content."""

    def __init__(self, write: Callable[[str], None], color: bool, show_reasoning: bool) -> None:
        self._write = write
        self._color = color
        self._show = show_reasoning
        self._in_reasoning = False
        self._wrote = False
        self._at_line_start = True

    def _emit(self, text: str) -> None:
        self._write(text)
        self._wrote = True
        self._at_line_start = text.endswith("\n")

    def reasoning(self, text: str) -> None:
        if not self._show:
            return
        if not self._in_reasoning:
            self._in_reasoning = True
            self._emit(_DIM + "thinking: " if self._color else "[reasoning] ")
        self._emit(text)

    def _close_reasoning(self) -> None:
        if self._in_reasoning:
            self._in_reasoning = False
            self._emit((_RESET if self._color else "") + "\n")

    def content(self, text: str) -> None:
        self._close_reasoning()
        self._emit(text)

    def end(self) -> None:
        self._close_reasoning()
        if self._wrote and not self._at_line_start:
            self._emit("\n")
        self._wrote = False


def run_from_args(
    args: argparse.Namespace, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
) -> int:
    repl = ChatREPL(
        model=args.model,
        base_url=args.base_url or DEFAULT_BASE_URL,
        api_key=args.api_key,
        system=args.system,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        show_reasoning=args.show_reasoning,
        stdin=stdin,
        stdout=stdout,
    )
    return repl.run()
