"""The platform sandbox: a deterministic world and gateways that speak each
platform's dialect. See ``docs/sandbox.md``."""
