"""Helpers for contract tests: what a fake and the real implementation of one Protocol must share."""

from __future__ import annotations

import inspect
from typing import Any


def protocol_methods(protocol: type) -> list[str]:
    """The public methods a Protocol declares."""
    return sorted(n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_"))


def signature_mismatches(implementation: Any, protocol: type) -> list[str]:
    """Every public method of ``protocol`` that ``implementation`` lacks, or has with other parameters
    (names, kinds, defaults) or as a coroutine where the protocol has none (or the other way round)."""
    problems = []
    for name in protocol_methods(protocol):
        want = getattr(protocol, name)
        have = getattr(implementation, name, None)
        if have is None or not callable(have):
            problems.append(f"{name}: missing")
            continue
        shape = [(p.name, p.kind, p.default) for p in inspect.signature(want).parameters.values() if p.name != "self"]
        got = [(p.name, p.kind, p.default) for p in inspect.signature(have).parameters.values() if p.name != "self"]
        if shape != got:
            problems.append(f"{name}: {inspect.signature(have)} is not {inspect.signature(want)}")
        if inspect.iscoroutinefunction(want) != inspect.iscoroutinefunction(have):
            problems.append(f"{name}: async in one, not in the other")
    return problems
