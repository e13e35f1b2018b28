"""tokengate: a reverse-proxy authentication gateway for HTTP APIs behind API tokens."""

__version__ = "0.1.0"
