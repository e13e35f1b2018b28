"""Trusted authentication: a workspace ``secret_key`` that mints bearer tokens for its users.

``service`` holds the logic and ``install``; ``endpoints`` the public
ThoughtSpot-compatible token requests; ``admin`` and ``cli`` key management.
"""
