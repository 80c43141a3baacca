"""OrderHub: orders and settlements from many platforms into one model.

The data path, one module per step:

    platforms/<platform>.py   signing, envelope, paging, errors (one per platform)
    extract.py                windows, retries, ledger, landing (written once)
    landing.py                raw tables, COPY, idempotent insert, quarantine
    sandbox/                  a faithful impersonation of the platform gateways
"""

__version__ = "0.1.0"
