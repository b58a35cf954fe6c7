# SPDX-License-Identifier: AGPL-3.0-or-later
"""Domains as policy sees them: a domain and its parents, and the registrable domain (policy layer).

A block or a block-list entry for `evil.example` covers `a1.evil.example` and
every other subdomain, and a rate limit per domain is a limit per
registrable domain (eTLD+1, from the Public Suffix List bundled with the
`publicsuffixlist` package, read offline): otherwise one server with fifty
subdomains has fifty buckets.
"""

from __future__ import annotations

from functools import lru_cache

from publicsuffixlist import PublicSuffixList

_PSL = PublicSuffixList()


def parents(domain: str) -> list[str]:
    """`a.b.evil.example` -> [a.b.evil.example, b.evil.example, evil.example, example]."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


@lru_cache(maxsize=65536)
def registrable(domain: str) -> str:
    """The registrable domain (eTLD+1) of `domain`, or the domain itself when it has none
    (`localhost`, a bare TLD, an IP literal)."""
    return _PSL.privatesuffix(domain) or domain


def covered(domain: str, listed: set[str] | frozenset[str]) -> bool:
    """Is `domain`, or one of its parents, in `listed`?"""
    return bool(listed) and any(d in listed for d in parents(domain))
