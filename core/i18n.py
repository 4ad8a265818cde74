"""Language helpers shared by the engines: pick the label for the user's language."""

from __future__ import annotations

from flask import has_request_context


def is_chinese() -> bool:
    """True when the current user's language is Chinese (the default outside a request)."""
    if not has_request_context():
        return True
    from flask_babel import get_locale

    locale = get_locale()
    return locale is None or locale.language == "zh"


def pick(label: str, label_zh: str | None) -> str:
    """``label_zh`` for Chinese users when there is one, else ``label``."""
    return label_zh if label_zh and is_chinese() else label
