"""docker-compose.yml, read the way Docker Compose reads it, and its services
run on this host the way their containers would (there is no Docker engine
here: tests/test_compose.py).

Compose's part is done here: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:?error}``, ``${VAR?error}`` and ``$$`` interpolated from .env, YAML
anchors and merge keys resolved, and the result validated against the
compose spec's own JSON schema (docker/compose-spec.json). A service of the
OrderHub image then runs as its container would: the Dockerfile's
ENTRYPOINT (docker/entrypoint.sh) with the service's command, in an
environment of the Dockerfile's ENV, .env (env_file) and the service's
``environment``, and nothing of this process's.

What differs on the host is only where things are, and ``Host`` says it in one
place: the container paths (/opt/orderhub is the checkout; /opt/airflow and
/tmp are a scratch folder), the other services' addresses (postgres is the
embedded server, whose superuser stands in for the compose roles; redis and
nats are local servers), and the ports the containers would each have to
themselves.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from orderhub.config import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SCHEMA_FILE = REPO_ROOT / "docker" / "compose-spec.json"
DOCKERFILE = REPO_ROOT / "Dockerfile"

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


class MissingVariable(ValueError):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-") and empty:
            return arg
        if op in (":?", "?") and empty:
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _VARIABLE.sub(one, text)


def _walk(node, env):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _walk(value, env) for key, value in node.items()}
    return node


def read_dotenv(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip().strip("'\"")
    return env


def load_compose(env: dict[str, str]) -> dict:
    """The compose file as `docker compose config` sees it with this .env."""
    return _walk(yaml.safe_load(COMPOSE_FILE.read_text()), env)


def validate(document: dict) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(document)


def dockerfile() -> tuple[list[str], dict[str, str]]:
    """The image's ENTRYPOINT (exec form) and its ENV."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    entrypoint, env = [], {}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif word == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return entrypoint, env


def published_ports(document: dict) -> list[str]:
    return [port for service in document["services"].values()
            for port in service.get("ports", [])]


@dataclass
class Host:
    """Where the containers' world is on this host."""

    scratch: Path
    postgres: str           # host:port of the embedded server
    postgres_user: str
    databases: dict[str, str]  # compose database -> the database standing in for it
    redis: str = ""         # host:port
    nats: str = ""          # nats:// URL
    ports: dict[int, int] = field(default_factory=dict)  # container port -> host port

    def paths(self, text: str) -> str:
        # /tmp/ first: the host paths put in below may well lie under /tmp
        text = re.sub(r"(?<![\w/])/tmp/", str(self.scratch / "tmp") + "/", text)
        text = text.replace("/opt/orderhub", str(REPO_ROOT))
        return text.replace("/opt/airflow", str(self.scratch / "airflow"))

    def addresses(self, text: str) -> str:
        def database(match: re.Match) -> str:
            scheme, name = match.group(1), match.group(2)
            return f"{scheme}{self.postgres_user}@{self.postgres}/{self.databases[name]}"

        text = re.sub(r"([\w+]+://)[^@/\s]*@postgres:5432/(\w+)", database, text)
        if self.redis:
            text = text.replace("@redis:6379", f"@{self.redis}")
        if self.nats:
            text = text.replace("nats://nats:4222", self.nats)
        for inside, outside in self.ports.items():
            text = re.sub(rf"(airflow-apiserver|localhost):{inside}\b",
                          rf"\g<1>:{outside}", text)
        return text.replace("airflow-apiserver:", "127.0.0.1:").replace("0.0.0.0", "127.0.0.1")

    def map(self, text: str) -> str:
        return self.addresses(self.paths(text))

    # The ports each container has to itself, as settings of the same programs.
    def port_settings(self) -> dict[str, str]:
        names = {8080: "AIRFLOW__API__PORT",
                 8974: "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
                 8793: "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                 8794: "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"}
        return {names[inside]: str(outside) for inside, outside in self.ports.items()
                if inside in names}


@dataclass
class HostService:
    name: str
    argv: list[str]
    env: dict[str, str]
    healthcheck: list[str] | None  # argv for subprocess


def host_service(name: str, document: dict, dotenv: dict[str, str], host: Host,
                 path: str, hostname: str) -> HostService:
    """The service's container, as a command line and environment on this host."""
    service = document["services"][name]
    entrypoint, image_env = dockerfile()
    entrypoint = service.get("entrypoint", entrypoint)
    command = service.get("command", ["--help"])
    env = dict(image_env)
    if service.get("env_file"):
        env.update(dotenv)
    env.update({key: str(value) for key, value in service.get("environment", {}).items()})
    env = {key: host.map(value) for key, value in env.items()}  # the container's values only
    env.update({"PATH": path, "LANG": "C.UTF-8", "HOSTNAME": hostname,
                "HOME": str(host.scratch / "airflow"), **host.port_settings()})
    argv = [host.map(arg) for arg in [*entrypoint, *command]]
    if "--port" in argv:  # a port given on the command line
        at = argv.index("--port") + 1
        argv[at] = str(host.ports.get(int(argv[at]), argv[at]))
    check = service.get("healthcheck", {}).get("test")
    if check:
        kind, *rest = check
        check = (["/bin/sh", "-c", host.map(rest[0])] if kind == "CMD-SHELL"
                 else [host.map(arg) for arg in rest])
    return HostService(name, argv, env, check)
