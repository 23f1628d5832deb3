"""Placeholder, replaced by the portal package."""

from __future__ import annotations

from litestar.config.app import AppConfig


def configure(config: AppConfig) -> AppConfig:
    return config
