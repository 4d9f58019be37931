"""Route matching for the REST face: a request path to its handler and path arguments.

Templates are the reference's (``/jobs/{job_id}/files``): a ``{name}`` segment matches one
non-empty path segment. Matching splits the path once and looks it up in a table keyed by the
segment count and the literal segments, instead of trying every route's pattern in turn (43
patterns with the ``/managers/{manager_name}`` copies).
"""
from __future__ import annotations

from typing import Any, Iterable


class NoRoute(Exception):
    """No template matches the path (404)."""


class MethodNotAllowed(Exception):
    """A template matches the path, but not for this method (405)."""


class Router:
    def __init__(self, routes: Iterable[tuple[str, str | None, Any]]):
        """``routes``: (template, method or None for any, target), tried in this order when several
        templates match the same path."""
        # segment count -> positions of the arguments -> literal segments -> [(method, target, names)]
        self._table: dict[int, dict[tuple[int, ...], dict[tuple[str, ...], list]]] = {}
        for template, method, target in routes:
            segments = template[1:].split("/")
            positions = tuple(i for i, s in enumerate(segments) if s.startswith("{") and s.endswith("}"))
            names = tuple(segments[i][1:-1] for i in positions)
            literals = tuple(s for i, s in enumerate(segments) if i not in positions)
            shapes = self._table.setdefault(len(segments), {})
            shapes.setdefault(positions, {}).setdefault(literals, []).append((method, target, names))

    def match(self, method: str, path: str) -> tuple[Any, dict[str, str]]:
        """The target and the path arguments; NoRoute or MethodNotAllowed."""
        segments = path[1:].split("/")
        if not path.startswith("/") or "" in segments:
            raise NoRoute(path)  # no template has an empty segment, and an argument is never empty
        path_matched = False
        for positions, by_literals in self._table.get(len(segments), {}).items():
            literals = tuple(s for i, s in enumerate(segments) if i not in positions)
            for route_method, target, names in by_literals.get(literals, ()):
                if route_method is None or route_method == method:
                    return target, {name: segments[i] for name, i in zip(names, positions)}
                path_matched = True
        if path_matched:
            raise MethodNotAllowed(path)
        raise NoRoute(path)

