"""`appliance verify` and `appliance gc`: store maintenance that needs no daemon.

Both work on the store's files directly and take the same per-blob locks as the
daemon, so they are safe beside a running one. `cli.py` registers them with
`register(command)`; their errors print one line and exit 1, as every command does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from appliance.store.store import Store, StoreError, human_bytes

CommandFn = Callable[..., argparse.ArgumentParser]


def register(command: CommandFn) -> None:
    """Add `verify` and `gc` through cli.py's `command(name, func, help, daemon=...)`."""
    p = command(
        "verify",
        cmd_verify,
        "hash stored models against their manifests (no daemon needed); "
        "corrupt files go to the store's quarantine",
        daemon=False,
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="models to check (default: all)")
    p = command(
        "gc",
        cmd_gc,
        "free disk: old partial downloads, unreferenced blobs and trees, idle lock files",
        daemon=False,
    )
    p.add_argument(
        "--older-than",
        type=float,
        default=24.0,
        metavar="HOURS",
        help="remove partial downloads older than this (default 24; unreferenced blobs and "
        "trees wait at most an hour, or this when shorter)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")


def _store(args: argparse.Namespace) -> Store:
    from appliance.paths import resolve_paths

    paths = resolve_paths(getattr(args, "home", None))
    paths.ensure()
    return Store(paths.store_dir)


def _fail(message: str) -> int:
    print(f"appliance: error: {message}", file=sys.stderr)
    return 1


def cmd_verify(args: argparse.Namespace) -> int:
    """Print each model OK / CORRUPT / MISSING and a summary; exit 1 if any is not OK."""
    try:
        store = _store(args)
        names: list[str] = list(args.names) or [m.name for m in store.list()]
    except (StoreError, OSError) as exc:
        return _fail(str(exc))
    if not names:
        print("no models in the store")
        return 0
    width = max(len(n) for n in names)
    counts = {"ok": 0, "corrupt": 0, "missing": 0}
    for name in names:

        def notice(file: str, size: int, name: str = name) -> None:
            print(f"hashing {name}: {file} ({human_bytes(size)})", file=sys.stderr, flush=True)

        try:
            check = store.verify(name, force=True, on_hash=notice)
        except StoreError as exc:  # a bad name, an unreadable manifest
            counts["missing"] += 1
            print(f"{name:<{width}}  MISSING  {exc}")
            continue
        counts[check.status] += 1
        if check.ok:
            size = sum(f.size for f in check.files)
            detail = f"{len(check.files)} file(s), {human_bytes(size)}"
        else:
            detail = check.message
        print(f"{name:<{width}}  {check.status.upper():<7}  {detail}", flush=True)
    print(
        f"{len(names)} model(s): {counts['ok']} OK, {counts['corrupt']} CORRUPT, "
        f"{counts['missing']} MISSING"
    )
    return 0 if counts["ok"] == len(names) else 1


def cmd_gc(args: argparse.Namespace) -> int:
    """Remove what no model needs and print each item and the bytes freed."""
    if args.older_than < 0:
        return _fail(f"--older-than takes hours >= 0, got {args.older_than:g}")
    try:
        store = _store(args)
        report = store.gc(args.older_than * 3600.0, dry_run=args.dry_run)
    except (StoreError, OSError) as exc:
        return _fail(str(exc))
    verb = "would remove" if report.dry_run else "removed"
    for r in report.removed:
        print(
            f"{verb} {r.kind:<7} {_rel(store, r.path)}  {human_bytes(r.bytes)}  "
            f"({r.age_s / 3600:.1f} h old)"
        )
    for path, why in report.kept:
        print(f"kept    {_rel(store, path)}: {why}")
    parts: list[str] = [
        f"{report.count('partial')} partial download(s)",
        f"{report.count('blob')} blob(s)",
        f"{report.count('tree')} tree(s)",
        f"{report.count('lock')} lock file(s)",
    ]
    other = len(report.removed) - sum(report.count(k) for k in ("partial", "blob", "tree", "lock"))
    if other:
        parts.append(f"{other} other file(s)")
    freed = "would free" if report.dry_run else "freed"
    print(f"{freed} {human_bytes(report.freed_bytes)}: {', '.join(parts)}")
    if report.quarantine_files:
        print(
            f"the quarantine holds {report.quarantine_files} corrupt file(s) "
            f"({human_bytes(report.quarantine_bytes)}) in {store.layout.quarantine_dir}: "
            "delete them once looked at"
        )
    return 0


def _rel(store: Store, path: Path) -> str:
    try:
        return str(path.relative_to(store.root))
    except ValueError:
        return str(path)
