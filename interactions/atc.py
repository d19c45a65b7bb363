"""ATC codes: levels, the hierarchy, and the one coverage rule every check uses.

Rule (FEST implementation guide 3.5 §8.1.1, §11.3):

- A code shorter than 7 characters is a *group code* (WHO levels 1–4 are 1, 3, 4 and 5 characters;
  6 characters occur as the group of the fictional ``ZV80AAnn`` codes). It covers itself and every
  code below it.
- A code of 7 or more characters (WHO level 5, and fictional six-level codes such as ``ZV80AA01``)
  covers only itself.
- The pseudo-code ``WITHOUT`` (herbal, anthroposophic and homeopathic products) is no code at all:
  it never covers and is never covered.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

PSEUDO_CODE = "WITHOUT"
LEVEL5_LENGTH = 7
LEVEL4_LENGTH = 5
_GROUP_LENGTHS = (1, 3, 4, 5, 6)


def normalise(code: str | None) -> str | None:
    """The code in canonical form (stripped, upper case), or ``None`` for no usable code."""
    if code is None:
        return None
    code = code.strip().upper()
    if not code or code == PSEUDO_CODE:
        return None
    return code


def ancestors(code: str) -> tuple[str, ...]:
    """The group codes above ``code``, nearest first (``N06AA09`` → ``N06AA, N06A, N06, N``)."""
    return tuple(code[:n] for n in reversed(_GROUP_LENGTHS) if n < len(code) and _is_level(code, n))


def _is_level(code: str, length: int) -> bool:
    # The 6-character prefix is a level only for codes longer than WHO level 5 (ZV80AA01 → ZV80AA).
    return length != 6 or len(code) > LEVEL5_LENGTH


def covering(code: str) -> tuple[str, ...]:
    """Every code whose group entry would cover ``code``: the code itself, then its ancestors."""
    return (code, *ancestors(code))


def covers(group_code: str, code: str) -> bool:
    """Whether a group entry with ``group_code`` covers a drug with ``code``."""
    return group_code in covering(code)


def level4(code: str) -> str | None:
    """The WHO level-4 (chemical subgroup) code of a level-5 code, else ``None``."""
    return code[:LEVEL4_LENGTH] if len(code) == LEVEL5_LENGTH else None


def is_substance_code(code: str) -> bool:
    """Whether the code names one substance (WHO level 5 or a fictional six-level code)."""
    return len(code) >= LEVEL5_LENGTH


def build_tree(codes: Iterable[str | None]) -> nx.DiGraph:
    """The ATC hierarchy spanned by ``codes``: an edge from every group code to its children."""
    tree: nx.DiGraph = nx.DiGraph()
    for raw in codes:
        code = normalise(raw)
        if code is None or code in tree:
            continue
        tree.add_node(code)
        child = code
        for parent in ancestors(code):
            tree.add_edge(parent, child)
            child = parent
    return tree
