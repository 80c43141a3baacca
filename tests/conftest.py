"""Shared fixtures. The integration tests use a database of their own
(``orderhub_test``) on the embedded server, or on ``ORDERHUB_TEST_DATABASE_URL``."""

from __future__ import annotations

import os

import psycopg
import pytest

from orderhub.config import load_shops
from orderhub.landing import drop_warehouse
from orderhub_tools.cli import quiet_environment
from orderhub_tools.sandbox.server import SandboxSpec, serve

quiet_environment()  # the tests' own processes are as quiet as the commands

TEST_SEED = 7
TEST_SCALE = 0.03  # a small world: a few dozen orders per shop-hour at the Double 11 peak


@pytest.fixture(scope="session")
def warehouse_url() -> str:
    url = os.environ.get("ORDERHUB_TEST_DATABASE_URL")
    if not url:
        from orderhub import warehouse

        warehouse.start()
        with psycopg.connect(warehouse.url("postgres"), autocommit=True) as conn:
            conn.execute("drop database if exists orderhub_test with (force)")
            conn.execute("create database orderhub_test")
        url = warehouse.url("orderhub_test")
    os.environ["ORDERHUB_DATABASE_URL"] = url
    return url


@pytest.fixture()
def clean_warehouse(warehouse_url):
    drop_warehouse(warehouse_url)
    return warehouse_url


@pytest.fixture(scope="session")
def shops():
    return load_shops()


@pytest.fixture(scope="session")
def sandbox(shops):
    spec = SandboxSpec(seed=TEST_SEED, shops=[(s.platform, s.shop_id) for s in shops],
                       scale=TEST_SCALE)
    server = serve(spec)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
