"""The lineage graph as inline SVG, from generic nodes and edges.

Nodes are runs (or batches); an edge is drawn as an arrow from `source` to `target`. Its kind
says which end stands to the left: a replay points back at its original (the original is
left of it), a batch points at its members (the batch is left of them). Connected groups are
laid out as small trees, one column per generation, and packed into rows by their oldest
member, so the drawing depends only on the nodes and edges given (deterministic), and a
graph of thousands of runs stays a compact grid. Every text is escaped; nodes are links
(`href`), so clicking one opens its section with or without JavaScript."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from runlog.textsafe import _UNSAFE, escape_char

# For each kind of edge, the end drawn on the left (the one the other derives from).
PARENT_END = {"replay": "target", "member": "source"}
LABELLED_UP_TO = 60  # nodes; more are drawn as a compact grid without labels (titles stay)
WIDTH = 960


@dataclass
class Node:
    id: str
    label: str
    href: str
    title: str
    classes: list[str] = field(default_factory=list)
    shape: str = "circle"  # circle (a run) or square (a batch)


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # replay | member


# What html.escape(quote=True) replaces, and what terminal_safe makes visible, in one pass.
_SPECIAL = re.compile("[&<>\"']|" + _UNSAFE.pattern)
_ENTITIES = {ch: html.escape(ch, quote=True) for ch in "&<>\"'"}


def _one(match: re.Match) -> str:
    char = match.group()
    return _ENTITIES.get(char) or escape_char(char)


def esc(text: object) -> str:
    """Text from a record for HTML text or a quoted attribute: html.escape(terminal_safe(text)),
    i.e. & < > " ' as entities and control, bidi and zero-width characters as visible escapes."""
    return _SPECIAL.sub(_one, text if isinstance(text, str) else str(text))


def _parent_child(edge: Edge) -> tuple[str, str]:
    if PARENT_END.get(edge.kind, "target") == "target":
        return edge.target, edge.source
    return edge.source, edge.target


def layout(nodes: list[Node], edges: list[Edge]) -> tuple[dict[str, tuple[int, int]], int, int]:
    """Cell (column, row) of every node, and the grid's size in cells. Nodes are given in the
    order that decides placement (the report gives them oldest first)."""
    index = {node.id: i for i, node in enumerate(nodes)}
    children: dict[str, list[str]] = {node.id: [] for node in nodes}
    has_parent: set[str] = set()
    for edge in edges:
        parent, child = _parent_child(edge)
        if parent in index and child in index and child not in has_parent and parent != child:
            children[parent].append(child)
            has_parent.add(child)
    for kids in children.values():
        kids.sort(key=index.__getitem__)
    placed: dict[str, tuple[int, int]] = {}
    groups: list[tuple[list[tuple[str, int, int]], int, int]] = []  # (cells, width, height)
    for node in nodes:
        if node.id in has_parent or node.id in placed:
            continue
        cells: list[tuple[str, int, int]] = []
        stack = [(node.id, 0)]
        seen = set()
        while stack:  # depth-first, preorder: one row per node, children right of their parent
            current, depth = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            cells.append((current, depth, len(cells)))
            for child in reversed(children[current]):
                stack.append((child, depth + 1))
        width = max(depth for _, depth, _ in cells) + 1
        groups.append((cells, width, len(cells)))
        for current, _, _ in cells:
            placed[current] = (0, 0)
    for node in nodes:  # a cycle (impossible between content addresses) still gets drawn
        if node.id not in placed:
            groups.append(([(node.id, 0, 0)], 1, 1))
            placed[node.id] = (0, 0)
    return _pack(groups, placed)


def _pack(groups, placed) -> tuple[dict[str, tuple[int, int]], int, int]:
    labelled = len(placed) <= LABELLED_UP_TO
    columns = max(1, WIDTH // (_cell(labelled)[0]))
    x = y = shelf = 0
    total_width = 0
    for cells, width, height in groups:
        if x and x + width > columns:
            x, y, shelf = 0, y + shelf, 0
        for node_id, depth, row in cells:
            placed[node_id] = (x + depth, y + row)
        x += width
        shelf = max(shelf, height)
        total_width = max(total_width, x)
    return placed, total_width, y + shelf


def _cell(labelled: bool) -> tuple[int, int]:
    return (190, 34) if labelled else (22, 22)


def svg(nodes: list[Node], edges: list[Edge], *, caption: str = "") -> str:
    """The graph as one <svg> element (CSS classes, no inline styles, no scripts)."""
    cells, columns, rows = layout(nodes, edges)
    labelled = len(nodes) <= LABELLED_UP_TO
    cell_w, cell_h = _cell(labelled)
    radius = 8 if labelled else 6
    pad = 12

    def centre(node_id: str) -> tuple[int, int]:
        col, row = cells[node_id]
        return pad + col * cell_w + radius + 2, pad + row * cell_h + cell_h // 2

    width = pad * 2 + max(columns, 1) * cell_w
    height = pad * 2 + max(rows, 1) * cell_h
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="img" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{esc(caption or "lineage graph")}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>']
    known = {node.id for node in nodes}
    for edge in edges:
        if edge.source not in known or edge.target not in known:
            continue
        parent, child = _parent_child(edge)
        (px, py), (cx, cy) = centre(parent), centre(child)
        # children sit below and right of their parent: leave the parent from its bottom, enter
        # the child from its left, clear of both labels; the arrow points the edge's way
        start, end = (px, py + radius + 1), (cx - radius - 2, cy)
        if edge.source != parent:
            start, end = (end[0], end[1]), (start[0], start[1] + 1)
        bend = (px, cy)
        out.append(f'<path class="edge edge-{esc(edge.kind)}" data-from="{esc(edge.source)}" '
                   f'data-to="{esc(edge.target)}" d="M{start[0]},{start[1]} Q{bend[0]},{bend[1]} {end[0]},{end[1]}" '
                   'marker-end="url(#arrow)"/>')
    for node in nodes:
        x, y = centre(node.id)
        classes = " ".join(["node", *node.classes])
        if node.shape == "square":
            mark = (f'<rect x="{x - radius}" y="{y - radius}" width="{2 * radius}" height="{2 * radius}" '
                    f'class="mark"/>')
        else:
            mark = f'<circle cx="{x}" cy="{y}" r="{radius}" class="mark"/>'
        if "not-run" in node.classes:  # a rejected or abandoned attempt: crossed out
            mark += (f'<path class="cross" d="M{x - radius + 2},{y - radius + 2} L{x + radius - 2},{y + radius - 2} '
                     f'M{x - radius + 2},{y + radius - 2} L{x + radius - 2},{y - radius + 2}"/>')
        label = ""
        if labelled:
            text = node.label if len(node.label) <= 24 else node.label[:23] + "…"
            label = f'<text x="{x + radius + 5}" y="{y + 4}" class="label">{esc(text)}</text>'
        out.append(f'<a href="{esc(node.href)}" class="{esc(classes)}" data-id="{esc(node.id)}">'
                   f'<title>{esc(node.title)}</title>{mark}{label}</a>')
    out.append("</svg>")
    return "\n".join(out)
