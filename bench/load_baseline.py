"""The baseline of bench/load.py: a bare Flask JSON endpoint under the same gunicorn, so a
run can say what the machine gave Flask and gunicorn alone while it measured Guanxi.

    gunicorn --chdir bench --workers 4 --bind 127.0.0.1:PORT load_baseline:app
"""

from __future__ import annotations

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def index() -> object:
    return jsonify(ok=True)
