"""Measure the TUI's CPU use, idle on the dashboard and while a chat reply streams.

    .venv/bin/python -m tests.tui.measure_cpu [--seconds 20] [--pty]

Starts a real daemon on a generated GGUF, then runs the app in a child process (headless,
or drawing into a pseudo-terminal with --pty, as in a real terminal) and reads that
process's CPU time with psutil over each phase. Prints % of one core per phase.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import asyncio, json, sys, time, psutil
from tui.app import make_app
url, seconds, out, chat_url = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
app = make_app(url)
app.chat_params = {"max_tokens": 4000}
proc = psutil.Process()
result = {}

def cpu():
    t = proc.cpu_times()
    return t.user + t.system

async def pilot(p):
    await asyncio.sleep(3)  # connected, history loaded
    c0, t0 = cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    result["idle_pct"] = 100 * (cpu() - c0) / (time.monotonic() - t0)
    await p.press("4")
    await asyncio.sleep(1)
    screen = app.screen
    if chat_url != url:  # only the chat goes to a stand-in server that streams at a set rate
        from tui.client import TuiClient
        app.client.chat = TuiClient(chat_url).chat
        app.chat_params = {"max_tokens": 300, "ignore_eos": True}  # 300 tokens a reply
    tokens = 0
    c0, t0 = cpu(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        screen.last_stats = {}
        screen.messages.clear()
        screen.send("tiny", "hello")
        while not screen.last_stats:
            await asyncio.sleep(0.05)
        tokens += screen.last_stats["tokens"]
    wall = time.monotonic() - t0
    result["stream_pct"] = 100 * (cpu() - c0) / wall
    result["stream_tokens_per_s"] = tokens / wall
    with open(out, "w") as f:
        json.dump(result, f)
    app.exit()

app.run(headless=HEADLESS, auto_pilot=pilot)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pty", action="store_true", help="draw into a pseudo-terminal")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="stream from a stand-in OpenAI server at this many tokens/s (a real model's pace) "
        "instead of the daemon's tiny model, which streams as fast as it can",
    )
    args = parser.parse_args()

    from appliance.tiny_model import write_tiny_gguf
    from tests.tui.conftest import start_tui_daemon

    root = Path(tempfile.mkdtemp(prefix="tui-cpu-"))
    write_tiny_gguf(root / "tiny.gguf")
    catalog = root / "catalog.toml"
    catalog.write_text(f'[models.tiny]\nsource = "{root / "tiny.gguf"}"\ncontext = 512\n')
    daemon = start_tui_daemon(root / "home", catalog)
    out = root / "result.json"
    code = CHILD.replace("HEADLESS", "False" if args.pty else "True")
    stack = contextlib.ExitStack()
    chat_url = daemon.url
    if args.rate:
        from tests.openai_stub import serve_openai_stub

        stub = stack.enter_context(serve_openai_stub(model="tiny", delay_s=1 / args.rate))
        chat_url = stub.base_url.removesuffix("/v1")
    cmd = [sys.executable, "-c", code, daemon.url, str(args.seconds), str(out), chat_url]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    try:
        daemon.post("/admin/models/tiny/load")
        if args.pty:
            import pty
            import select

            pid, fd = pty.fork()
            if pid == 0:  # the child: the app draws into this terminal
                os.environ.update(env, TERM="xterm-256color", COLUMNS="80", LINES="24")
                os.execv(cmd[0], cmd)
            deadline = time.monotonic() + 4 * args.seconds + 60
            while time.monotonic() < deadline:  # drain the terminal as a terminal would
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    try:
                        os.read(fd, 65536)
                    except OSError:
                        break
            os.waitpid(pid, 0)
        else:
            subprocess.run(cmd, env=env, check=True, timeout=4 * args.seconds + 60)
        result = json.loads(out.read_text())
    finally:
        daemon.stop()
        stack.close()
    mode = "pty 80x24" if args.pty else "headless"
    if args.rate:
        mode += f", stand-in server at {args.rate:g} tokens/s"
    print(
        f"TUI CPU ({mode}, {os.cpu_count()} cores): idle {result['idle_pct']:.1f}% of a core; "
        f"streaming {result['stream_pct']:.1f}% at {result['stream_tokens_per_s']:.0f} tokens/s"
    )


if __name__ == "__main__":
    main()
