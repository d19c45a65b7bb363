"""The graphs decision-support knowledge is built on: the ATC tree, substance parentage and the
interaction groups (networkx)."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from interactions import atc
from interactions.catalogue import CatalogueSnapshot, Interaction, Substance


def build_atc_tree(snapshot: CatalogueSnapshot) -> nx.DiGraph:
    """Every ATC code the catalogue uses or its ATC code system (Kodeverk 7180) lists, under
    its group codes. Nodes carry the ``name`` FEST gives the code: the code system's term first
    (it names every level), else the name an interaction or not-assessed entry gives it; and
    ``english_name`` where the code system has one."""
    names: dict[str, str] = {}
    english: dict[str, str] = {}
    for entry in snapshot.atc_codes:
        code = atc.normalise(entry.code)
        if code and entry.name:
            names.setdefault(code, entry.name)
        if code and entry.english_name:
            english.setdefault(code, entry.english_name)
    for interaction in snapshot.interactions:
        for group in interaction.groups:
            for member in group.members:
                code = atc.normalise(member.atc)
                if code and member.name:
                    names.setdefault(code, member.name)
    for entry in snapshot.not_assessed:
        code = atc.normalise(entry.atc)
        if code and entry.name:
            names.setdefault(code, entry.name)
    tree = atc.build_tree(
        [
            *(p.atc for p in snapshot.products),
            *(p.atc for p in snapshot.packages),
            *(g.atc for g in snapshot.generic_groups),
            *(s.combination_atc for s in snapshot.strengths),
            *(entry.code for entry in snapshot.atc_codes),
            *names,
            *(entry.atc for entry in snapshot.not_assessed),
        ]
    )
    nx.set_node_attributes(
        tree, {code: name for code, name in names.items() if code in tree}, "name"
    )
    nx.set_node_attributes(
        tree, {code: name for code, name in english.items() if code in tree}, "english_name"
    )
    return tree


def build_substance_graph(substances: tuple[Substance, ...]) -> nx.DiGraph:
    """An edge from each moiety to each of its salts/esters (``Virkestoff/RefVirkestoff``)."""
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(s.id for s in substances)
    graph.add_edges_from((s.id, salt) for s in substances for salt in s.salt_ids if salt != s.id)
    return graph


@dataclass(frozen=True, slots=True)
class SubstanceRelations:
    """Per substance: ``parents`` (every moiety above it); ``related`` (itself, its parents and
    its salts — what a substance reference matches); ``moieties`` (topmost parents, or itself)."""

    parents: dict[str, frozenset[str]]
    related: dict[str, frozenset[str]]
    moieties: dict[str, frozenset[str]]


def substance_relations(graph: nx.DiGraph) -> SubstanceRelations:
    parents = {node: frozenset(nx.ancestors(graph, node)) for node in graph}
    return SubstanceRelations(
        parents=parents,
        related={
            node: frozenset({node, *parents[node], *nx.descendants(graph, node)}) for node in graph
        },
        moieties={
            node: frozenset({p for p in parents[node] if graph.in_degree(p) == 0} or {node})
            for node in graph
        },
    )


def build_interaction_graph(interactions: tuple[Interaction, ...]) -> nx.Graph:
    """Bipartite graph from match keys (ATC codes and substance ids, ``str`` nodes,
    ``bipartite=0``) to the interaction sides naming them (``(interaction index, group index)``
    nodes, ``bipartite=1``). ``WITHOUT`` is no key."""
    graph: nx.Graph = nx.Graph()
    for index, interaction in enumerate(interactions):
        for group_index, group in enumerate(interaction.groups):
            side = (index, group_index)
            graph.add_node(side, bipartite=1)
            for member in group.members:
                code = atc.normalise(member.atc)
                keys = [*member.substance_ids, *([code] if code else [])]
                graph.add_nodes_from(keys, bipartite=0)
                graph.add_edges_from((key, side) for key in keys)
    return graph
