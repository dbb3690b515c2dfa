"""The local model store: the only code that talks to the Hugging Face hub.

Public names are re-exported here; `hub` (and so huggingface_hub) is imported only
when something is pulled.
"""

from appliance.store.errors import (
    AmbiguousFileError,
    DiskFullError,
    DownloadInterruptedError,
    GGUFError,
    HubError,
    HubUnavailableError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    StoreError,
)
from appliance.store.gguf_meta import GGUFInfo, read_gguf_info
from appliance.store.layout import default_model_name, safe_model_name
from appliance.store.store import ProgressEvent, Store, StoredModel

__all__ = [
    "AmbiguousFileError",
    "DiskFullError",
    "DownloadInterruptedError",
    "GGUFError",
    "GGUFInfo",
    "HubError",
    "HubUnavailableError",
    "IntegrityError",
    "InvalidNameError",
    "NotFoundError",
    "ProgressEvent",
    "Store",
    "StoreError",
    "StoredModel",
    "default_model_name",
    "read_gguf_info",
    "safe_model_name",
]
