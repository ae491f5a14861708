"""Registry distribution: pull, push, login (Docker Registry HTTP API v2 / OCI)."""
