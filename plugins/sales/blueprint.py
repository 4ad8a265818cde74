"""The sales plugin's one blueprint (``/sales/…``); each part of the plugin adds its routes."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("sales", __name__, url_prefix="/sales", template_folder="templates")
