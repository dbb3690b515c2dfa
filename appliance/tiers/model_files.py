"""A model's files: where they are on this box, pulled when they are not (and resumed when
a stop broke a pull off), read for their metadata, and checked to still be the bytes the
store verified before a load trusts them.

The manager holds one `ModelFiles`; moving between tiers asks it for a model's path.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from appliance.catalog import Catalog, HubSource, LocalSource
from appliance.events import EventLog
from appliance.pulls import MAX_RESUMES, Pulls
from appliance.store.gguf_meta import GGUFInfo
from appliance.store.integrity import files_to_hash
from appliance.store.model_folder import file_identity, read_model_info
from appliance.store.store import Store, StoredModel, StoreError
from appliance.tiers.errors import BadModelRequest, ModelFailed, ModelNotFound, ModelUnavailable
from appliance.tiers.policy import fmt_bytes
from appliance.tiers.slot import Slot


class ModelFiles:
    """The files of the catalog's and the store's models, and the pulls that bring them."""

    def __init__(self, catalog: Catalog, store: Store, pulls: Pulls, event_log: EventLog) -> None:
        self.catalog = catalog
        self.store = store
        self.pulls = pulls
        self.event_log = event_log
        self._info_cache: dict[Path, tuple[float, GGUFInfo]] = {}

    def local_file(self, name: str) -> Path | None:
        """The GGUF path for a model if it is on this box already, else None."""
        entry = self.catalog.exact(name)
        if entry is not None and isinstance(entry.source, LocalSource):
            return entry.source.path.expanduser()
        stored = self.store.get(name)
        return stored.path if stored is not None else None

    # -- pulls ------------------------------------------------------------------------------

    async def pull(self, name: str) -> StoredModel:
        """Pull a catalog model into the store once, however many callers ask at once."""
        entry = self.catalog.exact(name)
        if entry is None:
            raise ModelNotFound(name)
        if not isinstance(entry.source, HubSource):
            raise BadModelRequest(
                f"model '{name}' is a local file ({entry.source}); there is nothing to pull",
                code="not_pullable",
            )
        return await self.pulls.pull(f"{entry.source}@{entry.revision}", entry.name, catalog=True)

    async def pull_ref(self, ref: str, name: str | None) -> StoredModel:
        """Pull an hf:// reference once, however many callers ask; progress as events."""
        return await self.pulls.pull(ref, name)

    async def ensure(self, slot: Slot) -> Path:
        """The model's path, pulled first when it is not on this box."""
        path = self.local_file(slot.name)
        if path is not None:
            return path
        slot.state = "pulling"
        try:
            stored = await self.pull(slot.name)
        except StoreError as exc:
            slot.state = "unloaded"
            slot.last_error = f"pull failed: {exc}"
            raise ModelUnavailable(
                f"model '{slot.name}' is not on this box and could not be pulled: {exc}",
                code="model_unavailable",
                retryable=False,  # an offline hub or a bad reference does not pass in seconds
            ) from exc
        return stored.path

    def resume_interrupted(self) -> None:
        """Resume, in the background, the pulls the daemon's last stop (a restart, a crash,
        an upgrade) broke off, each from its partial file: once per start; one that fails
        or is cancelled is not resumed again, nor one that MAX_RESUMES starts did not end."""
        emit = self.event_log.emit
        for pull in self.pulls.interrupted():
            label, ref = pull.label, pull.ref
            if pull.resumes >= MAX_RESUMES:
                self.pulls.forget(label)
                emit(
                    label,
                    "error",
                    f"not resuming the pull of {label}: {pull.resumes + 1} restarts in a row "
                    "interrupted it; pull it again to resume its partial download",
                )
                continue
            if pull.catalog:  # at the catalog's revision of now (an upgrade may move it)
                entry = self.catalog.exact(label)
                if entry is None or not isinstance(entry.source, HubSource):
                    self.pulls.forget(label)
                    emit(
                        label,
                        "pull",
                        f"not resuming the pull of {label}, interrupted by a restart: it is "
                        "no longer a catalog model to pull",
                    )
                    continue
                ref = f"{entry.source}@{entry.revision}"
            emit(
                label,
                "pull",
                f"resuming the pull of {label}, interrupted by a restart",
                reason="restart",
                ref=ref,
            )
            task = self.pulls.start(ref, pull.name, catalog=pull.catalog, resumes=pull.resumes + 1)
            # Its end is an event already (pulled, or the failure); nobody awaits it.
            task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    # -- what the files are -----------------------------------------------------------------

    def gguf_info(self, path: Path) -> GGUFInfo:
        """The model's facts from its header (or folder), read again only when it changed."""
        mtime = path.stat().st_mtime
        cached = self._info_cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        info = read_model_info(path)
        self._info_cache[path] = (mtime, info)
        return info

    def format_of(self, path: Path) -> str:
        return self.gguf_info(path).format if path.is_dir() else "gguf"

    def model_id(self, name: str, path: Path) -> str:
        """What saved prompt states and measurements hold for: a stored model's sha256, a
        catalog path's file identity (a file replaced there never gets the old states)."""
        stored = self.store.get(name)
        return stored.sha256 if stored is not None else file_identity(path)

    async def check_stored_bytes(self, slot: Slot, path: Path) -> None:
        """On the way to hot, a stored model's files must still be the bytes its manifest
        names: a file changed since it was last hashed (or never recorded) is hashed
        again; a mismatch moves it to the store's quarantine and fails the load with
        `model_file_corrupt`. A 500, not a 503: waiting does not fix it, only pulling the
        model again does, which the message says how to do."""
        try:
            stored = self.store.get(slot.name)
        except StoreError:
            return  # the manifest is broken: reading the model below says so
        if stored is None or stored.path != path:
            return  # a catalog file outside the store: no digest to hold it against
        changed = await asyncio.to_thread(files_to_hash, self.store, stored)
        if changed:
            total = sum(size for _file, size in changed)
            self.event_log.emit(
                slot.name,
                "verify",
                f"hashing {len(changed)} file(s) ({fmt_bytes(total)}) changed since they "
                "were last verified",
                files=[file for file, _size in changed],
            )
        check = await asyncio.to_thread(self.store.verify, slot.name, force=False)
        if not check.corrupt:
            return  # all good, or missing (reported as a missing file below, as before)
        bad = next(f for f in check.bad if f.status == "corrupt" or f.quarantined_before)
        if slot.hold is not None:  # its pages are not the model's: let them go
            hold, slot.hold = slot.hold, None
            await asyncio.to_thread(hold.release, True)
        slot.state = "failed"
        slot.last_error = check.message
        self.event_log.emit(
            slot.name,
            "error",
            check.message,
            file=bad.file,
            sha256_expected=bad.sha256,
            sha256_found=bad.got,
            quarantine=str(bad.quarantine) if bad.quarantine is not None else None,
        )
        raise ModelFailed(check.message, code="model_file_corrupt", param=None)
