#!/usr/bin/env python3
"""Run llama.cpp's own server tests for the Responses and Anthropic APIs against this daemon.

    .venv/bin/python tools/llama_server_tests.py [--tests DIR] [--json FILE] [-k EXPR]

llama.cpp's `tools/server/tests` folder (DIR; default: the copy the llama-server peer
build left in ~/.cache) is copied into a temporary folder and run there with pytest,
with three changes to the harness only (the test bodies are run as they are):

- conftest.py's session fixture that downloads the test models
  (`ServerPreset.load_all()`) does nothing: there is no network, the model is generated;
- `wget` (imported by utils.py, used only for downloads) is a stub when it is missing;
- `LLAMA_SERVER_BIN_PATH` names a shim that the harness starts in place of llama-server.
  The shim reads the llama-server flags the harness passes (--host, --port, --alias,
  --ctx-size, --parallel, --api-key, --n-predict, --cors-origins, --chat-template(-file);
  the rest, such as --hf-repo, --offline, --batch-size, --temp, are ignored), makes a
  fresh appliance home with a tiny random-weight GGUF (`appliance.tiny_model`, ChatML
  unless a template file is given) and a models.toml naming it under the alias and the
  names the tests use ("test", "gpt-4.1"), and execs `appliance serve`.

The model writes gibberish, so tests that look for the stories260K model's words, and
tests that need a multimodal model or an image download, fail for reasons that are not
the API's. The summary lists every failure with its reason; `--json FILE` writes it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

DEFAULT_TESTS = Path.home() / ".cache/llama-server-peer/0.3.36/src/tools/server/tests"
TEST_FILES = ("unit/test_compat_oai_responses.py", "unit/test_compat_anthropic.py")
REPO = Path(__file__).resolve().parent.parent

LOAD_ALL = "ServerPreset.load_all()"
NO_LOAD = "pass  # appliance shim: the model is generated, nothing to download"

WGET_STUB = '''"""Stand-in for the `wget` package (not installed): there is no network here."""


def download(url, out=None, bar=None):
    raise RuntimeError(f"no network: cannot download {url}")
'''

# The shim runs under this venv's Python; it only parses flags and writes two files.
SHIM = r'''#!{python}
"""llama-server stand-in: serve a tiny generated model with `appliance serve`."""
import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf

ROOT = Path(os.environ["APPLIANCE_SHIM_ROOT"])
TEST_NAMES = ("test", "gpt-4.1")

p = argparse.ArgumentParser(add_help=False)
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, default=8080)
p.add_argument("--alias", "-a", default=None)
p.add_argument("--ctx-size", "-c", type=int, default=None)
p.add_argument("--parallel", "-np", type=int, default=None)
p.add_argument("--api-key", default=None)
p.add_argument("--n-predict", "-n", type=int, default=None)
p.add_argument("--cors-origins", default=None)
p.add_argument("--chat-template", default=None)
p.add_argument("--chat-template-file", default=None)
p.add_argument("--jinja", action="store_true")
p.add_argument("--no-jinja", action="store_true")
args, ignored = p.parse_known_args()
print(f"appliance shim: ignoring llama-server flags {{ignored}}", file=sys.stderr, flush=True)

template = None
if args.chat_template_file:
    template = Path(args.chat_template_file).read_text(encoding="utf-8")
elif args.chat_template and args.chat_template != "chatml":
    print(f"appliance shim: --chat-template {{args.chat_template}} is not known here; "
          "the model keeps its ChatML template", file=sys.stderr, flush=True)
ctx = args.ctx_size or 4096
n_ctx_train = max(2048, ctx)

# One model file per (template, trained context): the same bytes, generated once.
key = hashlib.sha256(f"{{template}}|{{n_ctx_train}}".encode()).hexdigest()[:16]
model = ROOT / "models" / f"tiny-{{key}}.gguf"
if not model.exists():
    spec = TinyModelSpec(n_ctx_train=n_ctx_train)
    if template is not None:
        spec = TinyModelSpec(n_ctx_train=n_ctx_train, chat_template=template)
    write_tiny_gguf(model, spec)

home = Path(tempfile.mkdtemp(prefix="home-", dir=ROOT))
name = args.alias or "tinyllama-2"
aliases = [n for n in TEST_NAMES if n.lower() != name.lower()]
lines = [
    f"[models.\"{{name}}\"]",
    f"source = {{str(model)!r}}",
    f"aliases = {{aliases!r}}",
    f"context = {{ctx}}",
    "default = true",
    'keep_alive = "forever"',
]
if args.parallel:
    lines.append(f"parallel = {{args.parallel}}")
catalog = home / "models.toml"
catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")

env = {{k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}}
env.update({{
    "APPLIANCE_HOME": str(home),
    "APPLIANCE_THREADS": "1",
    "APPLIANCE_IMPORT_DIRS": str(ROOT),
    "APPLIANCE_DRAIN_TIMEOUT": "2",
    "APPLIANCE_LOG_LEVEL": "warning",
}})
if args.api_key:
    env["APPLIANCE_API_KEY"] = args.api_key
if args.n_predict and args.n_predict > 0:
    env["APPLIANCE_MAX_TOKENS"] = str(args.n_predict)
if args.cors_origins:
    env["APPLIANCE_CORS_ORIGINS"] = args.cors_origins
appliance = {appliance!r}
argv = [appliance, "serve", "--home", str(home), "--host", args.host,
        "--port", str(args.port), "--catalog", str(catalog)]
os.execve(appliance, argv, env)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(tests: Path, work: Path) -> Path:
    """The harness copied under work/tools/server/tests (so that the tests' relative
    paths, ../../../models/templates, resolve), with its download fixture disabled."""
    dest = work / "tools" / "server" / "tests"
    shutil.copytree(
        tests, dest, ignore=shutil.ignore_patterns("tmp", "__pycache__", ".pytest_cache")
    )
    templates = tests.resolve().parent.parent.parent / "models" / "templates"
    if templates.is_dir():
        shutil.copytree(templates, work / "models" / "templates")
    conftest = dest / "conftest.py"
    text = conftest.read_text(encoding="utf-8")
    if LOAD_ALL not in text:
        raise SystemExit(f"{conftest}: no {LOAD_ALL} to disable; has the harness changed?")
    conftest.write_text(text.replace(LOAD_ALL, NO_LOAD), encoding="utf-8")
    if importlib.util.find_spec("wget") is None:
        (dest / "wget.py").write_text(WGET_STUB, encoding="utf-8")
    return dest


def write_shim(root: Path) -> Path:
    appliance = Path(sys.executable).parent / "appliance"
    if not appliance.exists():
        raise SystemExit(f"{appliance} not found: run this with the project's venv Python")
    shim = root / "llama-server"
    shim.write_text(SHIM.format(python=sys.executable, appliance=str(appliance)), encoding="utf-8")
    shim.chmod(0o755)
    return shim


def _reason(node: ET.Element) -> str:
    message = node.get("message") or (node.text or "").strip()
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    first = lines[0] if lines else node.tag
    # "AssertionError: Expected 200, got 400" / "assert 400 == 200" / "+  where ..."
    detail = next((ln for ln in lines[1:] if ln.startswith("assert ")), "")
    reason = first if not detail or detail in first else f"{first} | {detail}"
    if reason.endswith("assert False"):
        # A bare `assert f(...)`: the failing line (pytest marks it with ">") says more.
        source = [ln[1:].strip() for ln in (node.text or "").splitlines() if ln.startswith(">")]
        if source:
            reason = f"{reason} | {source[-1]}"
    return reason if len(reason) <= 240 else reason[:237] + "..."


def summarize(junit: Path) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        outcome, reason = "passed", ""
        for tag, kind in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            node = case.find(tag)
            if node is not None:
                outcome, reason = kind, _reason(node)
                break
        results.append(
            {
                "test": name,
                "outcome": outcome,
                "reason": reason,
                "time_s": float(case.get("time") or 0),
            }
        )
    counts = {
        k: sum(r["outcome"] == k for r in results) for k in ("passed", "failed", "error", "skipped")
    }
    return {"total": len(results), **counts, "tests": results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--tests", type=Path, default=DEFAULT_TESTS, help="llama.cpp's tools/server/tests folder"
    )
    ap.add_argument("--json", type=Path, help="write the summary here")
    ap.add_argument("--timeout", type=int, default=300, help="per-test timeout, seconds")
    ap.add_argument("-k", dest="keyword", help="pytest -k expression")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, homes)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show pytest's output")
    args = ap.parse_args(argv)
    if not (args.tests / "conftest.py").exists() or not (args.tests / "utils.py").exists():
        raise SystemExit(f"{args.tests}: not llama.cpp's tools/server/tests folder")

    work = Path(tempfile.mkdtemp(prefix="llama-server-tests-"))
    try:
        dest = prepare(args.tests, work)
        root = work / "shim"
        root.mkdir()
        shim = write_shim(root)
        junit = work / "junit.xml"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rN",
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit1",
            *TEST_FILES,
        ]
        if importlib.util.find_spec("pytest_timeout") is not None:
            cmd.append(f"--timeout={args.timeout}")
        else:
            print("pytest-timeout is not installed: no per-test timeout", file=sys.stderr)
        if args.keyword:
            cmd += ["-k", args.keyword]
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        env.update(
            {
                "LLAMA_SERVER_BIN_PATH": str(shim),
                "APPLIANCE_SHIM_ROOT": str(root),
                "PORT": str(free_port()),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        env.pop("DEBUG_EXTERNAL", None)
        log = work / "pytest.log"
        with log.open("wb") as out:
            proc = subprocess.run(
                cmd, cwd=dest, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if args.verbose:
            sys.stdout.write(log.read_text(errors="replace"))
        if not junit.exists():
            sys.stdout.write(log.read_text(errors="replace"))
            raise SystemExit(f"pytest wrote no results (exit {proc.returncode})")
        summary = summarize(junit)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"{summary['total']} tests: {summary['passed']} passed, {summary['failed']} failed, "
        f"{summary['error']} errors, {summary['skipped']} skipped"
    )
    for r in summary["tests"]:
        if r["outcome"] in ("failed", "error"):
            print(f"  {r['outcome'].upper()} {r['test']}: {r['reason']}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if summary["failed"] == summary["error"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
