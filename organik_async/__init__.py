"""organik_async: an async client for the Organik SMS API's delivery reports.

Runs on asyncio and trio (through anyio). Start with :class:`OrganikClient`.
"""

from ._bulk import BatchFailure, BatchResult, BatchSizes, Progress, ReportStream
from ._client import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, OrganikClient, api_key_from_credentials
from ._exceptions import (
    APIError,
    AuthenticationError,
    BulkReportError,
    ClientClosedError,
    DecodeError,
    HTTPStatusError,
    OrganikError,
    RateLimitError,
    RequestInfo,
    ResponseTooLargeError,
    TimeoutError,
    TransportError,
)
from ._frames import rows_to_columns
from ._models import (
    API_ERROR_CODES,
    DELIVERY_ERROR_CODES,
    DeliveryErrorCode,
    DeliveryStatus,
    DetailedReport,
    Format,
)
from ._retry import RetryPolicy
from ._web import HTTPErrorAnswer, http_error_answer

__version__ = "0.1.0"

__all__ = [
    "API_ERROR_CODES",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "DELIVERY_ERROR_CODES",
    "APIError",
    "AuthenticationError",
    "BatchFailure",
    "BatchResult",
    "BatchSizes",
    "BulkReportError",
    "ClientClosedError",
    "DecodeError",
    "DeliveryErrorCode",
    "DeliveryStatus",
    "DetailedReport",
    "Format",
    "HTTPErrorAnswer",
    "HTTPStatusError",
    "OrganikClient",
    "OrganikError",
    "Progress",
    "RateLimitError",
    "ReportStream",
    "RequestInfo",
    "ResponseTooLargeError",
    "RetryPolicy",
    "TimeoutError",
    "TransportError",
    "api_key_from_credentials",
    "http_error_answer",
    "rows_to_columns",
]
