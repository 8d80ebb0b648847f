"""genstore: keep every AI generation a Python service performs, on storage it owns.

store = genstore.open_store()          # ./genstore-data: local files + SQLite catalog
store.save_complete_operation(operation_type="text_to_image", prompt="un chat", result_url=url)
store.history(user_id="user_1").items
"""

from ._config import default_store, open_store, save_complete_operation, set_default_store
from ._ids import check_id
from ._options import StoreOptions
from ._plugins import register_plugin
from ._recording.decorator import record
from ._recording.recorder import Recorder, RecorderCounters, SpoolStatus
from ._records import (
    SCHEMA_VERSION,
    ArtifactRef,
    ImageRecord,
    ImageStatus,
    OperationRecord,
    OperationStatus,
    OperationType,
    Page,
    RequestInfo,
    SaveResult,
)
from ._store import Store
from .exceptions import (
    AlreadyExists,
    AuthError,
    BackendUnavailable,
    ConfigurationError,
    CorruptRecord,
    GenstoreError,
    InvalidInput,
    MissingDependency,
    NotFound,
    PayloadTooLarge,
)
from .plugin import hookimpl

__all__ = [
    "SCHEMA_VERSION",
    "AlreadyExists",
    "ArtifactRef",
    "AuthError",
    "BackendUnavailable",
    "ConfigurationError",
    "CorruptRecord",
    "GenstoreError",
    "ImageRecord",
    "ImageStatus",
    "InvalidInput",
    "MissingDependency",
    "NotFound",
    "OperationRecord",
    "OperationStatus",
    "OperationType",
    "Page",
    "PayloadTooLarge",
    "Recorder",
    "RecorderCounters",
    "RequestInfo",
    "SaveResult",
    "SpoolStatus",
    "Store",
    "StoreOptions",
    "check_id",
    "default_store",
    "hookimpl",
    "open_store",
    "record",
    "register_plugin",
    "save_complete_operation",
    "set_default_store",
]
