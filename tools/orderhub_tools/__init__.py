"""OrderHub's tooling: what a developer or a demo needs and no Airflow worker
imports - the platform sandbox, the demo, the benchmarks and the by-hand
runner that drives the real DAGs through ``airflow dags test``.

The runtime package (``plugins/orderhub``) never imports this one; the
``orderhub`` command reaches it lazily for its sandbox, run, demo and bench
commands (tests/test_registry.py checks both).
"""
