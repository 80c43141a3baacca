"""Great Expectations suites and checkpoints, in code (GX Core 1.x).

Suites are functions returning ``gx.ExpectationSuite``; :mod:`.checkpoints`
builds an ephemeral context on the warehouse and runs them. Airflow runs the
checkpoints from plain ``@task`` functions (the GX Airflow provider cannot be
installed beside Airflow 3.3) and fails the task on a failed critical
expectation; warnings are logged and kept.
"""
