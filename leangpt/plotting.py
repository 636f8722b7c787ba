"""Point labels that a reader can read: each label is put where it overlaps no other label, no
point and nothing outside the axes, where such a place exists (matplotlib has no placement of its
own, and labels put at one fixed offset pile up on close points)."""

from __future__ import annotations

# offsets from the point, in typographic points, tried in this order; the later ones reach further
_NEAR = [(6, 0, "left", "center"), (-6, 0, "right", "center"), (6, 4, "left", "bottom"), (6, -4, "left", "top"), (-6, 4, "right", "bottom"),
         (-6, -4, "right", "top"), (0, 8, "center", "bottom"), (0, -8, "center", "top")]
CANDIDATES = [(dx * k, dy * k, ha, va, k > 1) for k in (1, 2, 3.5, 5.5) for dx, dy, ha, va in _NEAR]


def place_labels(ax, xs, ys, labels, fontsize: float = 8, avoid=()) -> list:
    """Annotate point i with labels[i], choosing for each the first candidate offset whose text box
    stays inside the axes, clear of every point and every label placed before it, and nearer its
    own point than any other (else the one that breaks these least). A label put further out gets a
    thin line to its point. `avoid`: more artists to keep clear of (a legend). Returns the annotations."""
    if not (len(xs) == len(ys) == len(labels)):
        raise ValueError(f"place_labels needs as many x, y and labels; got {len(xs)}, {len(ys)}, {len(labels)}")
    fig = ax.figure
    fig.canvas.draw()  # the axes' final size and limits, so that text boxes are measured in pixels
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    radius = 4 * fig.dpi / 72  # a marker's half-width, in pixels
    dots = [ax.transData.transform((x, y)) for x, y in zip(xs, ys)]
    taken = [(px - radius, py - radius, px + radius, py + radius) for px, py in dots]
    for artist in avoid:
        box = artist.get_window_extent(renderer)
        taken.append((box.x0, box.y0, box.x1, box.y1))
    placed = []
    # crowded points first, while there is still room beside them
    crowd = [sum(1 for other in dots if abs(other[0] - dot[0]) + abs(other[1] - dot[1]) < 60) for dot in dots]
    for i in sorted(range(len(labels)), key=lambda j: (-crowd[j], ys[j], xs[j])):
        best, best_cost = None, None
        for dx, dy, ha, va, far in CANDIDATES:
            line = dict(arrowstyle="-", lw=0.6, color="0.45", shrinkA=0, shrinkB=4) if far else None
            note = ax.annotate(labels[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points",
                               ha=ha, va=va, fontsize=fontsize, arrowprops=line)
            box = note.get_window_extent(renderer)
            own = _distance(box, dots[i])
            # a label nearer another point than its own reads as that point's
            misleading = sum(1 for j, dot in enumerate(dots) if j != i and _distance(box, dot) < own)
            cost = (_outside(box, frame) * 100 + sum(_overlap(box, other) for other in taken)
                    + misleading * 50)
            if best is None or cost < best_cost:
                if best is not None:
                    best.remove()
                best, best_cost = note, cost
            else:
                note.remove()
            if cost == 0:
                break
        box = best.get_window_extent(renderer)
        taken.append((box.x0, box.y0, box.x1, box.y1))
        placed.append(best)
    return placed


def _overlap(box, other) -> float:
    x0, y0, x1, y1 = other
    width = min(box.x1, x1) - max(box.x0, x0)
    height = min(box.y1, y1) - max(box.y0, y0)
    return width * height if width > 0 and height > 0 else 0.0


def _distance(box, dot) -> float:
    """Pixels from a point to the nearest edge of a text box (0 inside it)."""
    px, py = dot
    dx = max(box.x0 - px, 0, px - box.x1)
    dy = max(box.y0 - py, 0, py - box.y1)
    return (dx * dx + dy * dy) ** 0.5


def _outside(box, frame) -> float:
    """How much of the text box lies outside the axes (pixels^2)."""
    inside = _overlap(box, (frame.x0, frame.y0, frame.x1, frame.y1))
    return box.width * box.height - inside
