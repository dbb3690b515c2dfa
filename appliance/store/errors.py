"""The store's error family: every failure the store reports is a `StoreError`.

Messages are one line, say what happened and, where there is one, what to do.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of everything the model store raises."""


class NotFoundError(StoreError):
    """A model, repository, revision or file does not exist."""


class IntegrityError(StoreError):
    """A downloaded file does not match the hub's sha256 or size."""


class DiskFullError(StoreError):
    """Not enough free disk for the file (checked before writing, or ENOSPC while writing)."""


class InvalidNameError(StoreError):
    """A model name, reference or path that would leave the store or is not allowed."""


class HubUnavailableError(StoreError):
    """The Hugging Face hub cannot be reached (offline box, DNS, refused connection)."""


class AmbiguousFileError(StoreError):
    """A file pattern matched none or several files, or names a shard set."""


class HubError(StoreError):
    """The hub answered with an error we cannot map to a more specific class (403, 5xx, ...)."""


class DownloadInterruptedError(StoreError):
    """A transfer broke off; the partial file is kept and the next pull resumes it."""


class PullCancelled(StoreError):
    """An operator cancelled the pull; the partial file is kept and the next pull resumes it."""


class PullInterrupted(StoreError):
    """The daemon stopped during the pull; the partial file is kept and the daemon resumes
    the pull when it starts again."""


class GGUFError(StoreError):
    """A file is not a valid GGUF model (bad magic, truncated, absurd counts, ...)."""
