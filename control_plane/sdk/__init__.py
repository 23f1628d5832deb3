"""Python SDK for the control-plane API.

from control_plane.sdk import Client

with Client("https://cp.example", api_key="cpk_...") as client:
    for project in client.projects.list():
        print(project.slug)
"""

from __future__ import annotations

from control_plane.sdk import models
from control_plane.sdk.client import Client
from control_plane.sdk.errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    ConflictError,
    FieldError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SdkError,
    ServerError,
    UnexpectedResponseError,
    ValidationError,
)
from control_plane.sdk.pagination import PageIterator
from control_plane.sdk.tenancies import TenancyFailedError, WaitTimeoutError

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "FieldError",
    "NotFoundError",
    "PageIterator",
    "PermissionDeniedError",
    "RateLimitError",
    "SdkError",
    "ServerError",
    "TenancyFailedError",
    "UnexpectedResponseError",
    "ValidationError",
    "WaitTimeoutError",
    "models",
]
