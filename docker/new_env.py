"""Print a compose .env: .env.example with every empty secret filled in and
AIRFLOW_UID set to the caller's uid (as Airflow's compose guide asks).

    python3 docker/new_env.py > .env

Standard library only: it runs before anything is installed. Run it once
and keep the result: a new Fernet key makes the stored connections
unreadable and a new salt makes every buyer hash new.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def secret_for(name: str) -> str:
    if name == "AIRFLOW_FERNET_KEY":  # what cryptography's Fernet.generate_key() makes
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(24)


def new_env(example: str, uid: int) -> str:
    lines = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            if name == "AIRFLOW_UID":
                value = str(uid)
            elif not value and name != "COMPOSE_PROFILES":
                value = secret_for(name)
            line = f"{name}={value}"
        lines.append(line)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(new_env(EXAMPLE.read_text(), os.getuid()))
