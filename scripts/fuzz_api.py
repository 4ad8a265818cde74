"""Fuzz the JSON API with schemathesis against its own OpenAPI document, on the demo data.

    .venv/bin/python scripts/fuzz_api.py [--database sqlite|postgresql] [--company demo-pharma]
                                         [--max-examples 30]

Creates a fresh demo database (SQLite in a temporary folder, or a PostgreSQL database on
127.0.0.1:5432 that is dropped afterwards), issues an admin token of the company with
``guanxi tokens create``, serves the app with gunicorn (``guanxi serve``) and runs every
operation of ``/api/v1/openapi.json`` through schemathesis's coverage, fuzzing and stateful
phases. The run fails on any response >= 500 and on any response that the document does not
describe (status code, content type, headers, body schema). ``.ci/run`` calls it.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own local server
            return
        except urllib.error.HTTPError:
            return  # it answers (401 without a token)
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the server did not answer at {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--company", default="demo-pharma")
    parser.add_argument("--max-examples", type=int, default=30)
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="guanxi-fuzz-") as tmp:
        env = {**os.environ, "GUANXI_INSTANCE_PATH": tmp, "GUANXI_API_RATE_LIMIT": "1000000/hour"}
        dbname = None
        if opts.database == "postgresql":
            import psycopg

            dbname = f"guanxi_fuzz_{os.getpid()}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{dbname}"')
            env["GUANXI_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{dbname}"
        else:
            env["GUANXI_DATABASE_URL"] = f"sqlite:///{tmp}/fuzz.db"
        server = None
        try:
            run([str(BIN / "guanxi"), "demo"], env)
            user = f"admin@{opts.company.removeprefix('demo-')}.demo"
            out = run(
                [
                    str(BIN / "guanxi"),
                    "tokens",
                    "create",
                    "--user",
                    user,
                    "--company",
                    opts.company,
                    "--name",
                    "schemathesis",
                ],
                env,
            )
            secret = out.strip().splitlines()[-1].strip()
            port = free_port()
            server = subprocess.Popen(
                [str(BIN / "guanxi"), "serve", "--port", str(port), "--workers", "2"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(Path(tmp) / "server.log", "w"),  # noqa: SIM115
            )
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/api/v1/openapi.json")
            result = subprocess.run(
                [
                    str(BIN / "schemathesis"),
                    "run",
                    base + "/api/v1/openapi.json",
                    "--header",
                    f"Authorization: Bearer {secret}",
                    "--checks",
                    CHECKS,
                    "--max-examples",
                    str(opts.max_examples),
                    "--workers",
                    "2",
                    "--seed",
                    "20261125",
                    "--suppress-health-check",
                    "all",
                ],
                env={**env, "NO_COLOR": "1"},
                cwd=tmp,  # schemathesis keeps its cache in the working folder
                timeout=1800,
            )
            if result.returncode != 0:
                log = (Path(tmp) / "server.log").read_text(errors="replace")
                print("--- server log (tracebacks) ---")
                print("\n".join(line for line in log.splitlines() if "Error" in line)[-5000:])
            return result.returncode
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            if dbname is not None:
                import psycopg

                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
