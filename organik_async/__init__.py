"""organik_async: an async client for the Organik SMS API's delivery reports.

Runs on asyncio and trio (through anyio). Start with [`OrganikClient`][organik_async.OrganikClient],
or [`SyncOrganikClient`][organik_async.SyncOrganikClient] in code that is not async.
"""

import warnings as _warnings
from types import FunctionType as _FunctionType
from typing import Any as _Any

from ._bulk import ReportStream
from ._client import DEFAULT_BASE_URL, OrganikClient, RawResponses, api_key_from_credentials
from ._codec import XmlParser, xml_parser
from ._exceptions import (
    API_ERROR_CODES,
    PROVIDER_CODES,
    AnsweredError,
    APIError,
    AuthenticationError,
    BatchFailure,
    BatchOutcome,
    BulkReportError,
    ClientClosedError,
    ClosedDuringCallError,
    DecodeError,
    EndpointUnreachableError,
    HTTPStatusError,
    OrganikError,
    ProviderCode,
    RateLimitError,
    RequestInfo,
    ResponseTooLargeError,
    StillPendingError,
    TimeoutExpiredError,
    TransportError,
)
from ._follow import FollowStream
from ._frames import rows_to_columns
from ._models import (
    DELIVERY_ERROR_CODES,
    BatchResult,
    BatchSizes,
    DeliveryErrorCode,
    DeliveryStatus,
    DetailedReport,
    Format,
    HttpBackend,
    Id,
    IdArguments,
    IdKind,
    IdSource,
    Progress,
)
from ._options import DEFAULT_TIMEOUT, CallOptions, SettingChanges
from ._raw import RawResponse
from ._retry import RetryPolicy, instant_retries, is_testing, set_testing
from ._shared import SharedLimits
from ._sync import SyncFollowStream, SyncOrganikClient, SyncRawResponses, SyncReportStream
from ._telemetry import Telemetry
from ._version import __version__
from ._web import HTTPErrorAnswer, http_error_answer

__all__ = [
    "API_ERROR_CODES",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "DELIVERY_ERROR_CODES",
    "PROVIDER_CODES",
    "APIError",
    "AnsweredError",
    "AuthenticationError",
    "BatchFailure",
    "BatchOutcome",
    "BatchResult",
    "BatchSizes",
    "BulkReportError",
    "CallOptions",
    "ClientClosedError",
    "ClosedDuringCallError",
    "DecodeError",
    "DeliveryErrorCode",
    "DeliveryStatus",
    "DetailedReport",
    "EndpointUnreachableError",
    "FollowStream",
    "Format",
    "HTTPErrorAnswer",
    "HTTPStatusError",
    "HttpBackend",
    "Id",
    "IdArguments",
    "IdKind",
    "IdSource",
    "OrganikClient",
    "OrganikError",
    "Progress",
    "ProviderCode",
    "RateLimitError",
    "RawResponse",
    "RawResponses",
    "ReportStream",
    "RequestInfo",
    "ResponseTooLargeError",
    "RetryPolicy",
    "SettingChanges",
    "SharedLimits",
    "StillPendingError",
    "SyncFollowStream",
    "SyncOrganikClient",
    "SyncRawResponses",
    "SyncReportStream",
    "Telemetry",
    "TimeoutExpiredError",
    "TransportError",
    "XmlParser",
    "__version__",
    "api_key_from_credentials",
    "http_error_answer",
    "instant_retries",
    "is_testing",
    "rows_to_columns",
    "set_testing",
    "xml_parser",
]

# Public classes and functions say they live here (tracebacks show
# ``organik_async.DecodeError``), as httpx does; aliases of typing constructs
# (``Format``, ``IdKind``, ...) have no module of their own to set.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type | _FunctionType):
        _obj.__module__ = __name__
del _name, _obj


_DEPRECATED: dict[str, tuple[str, str]] = {
    "TimeoutError": ("TimeoutExpiredError", "0.3"),
}
"""Old public names still served, with a warning: old name -> (new name, removed in)."""


def __getattr__(name: str) -> _Any:
    if name in _DEPRECATED:
        new, removed = _DEPRECATED[name]
        _warnings.warn(
            f"organik_async.{name} is deprecated and will be removed in {removed}; use "
            f"organik_async.{new} (the old name hid the builtin {name})",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
