"""Command line: `python -m fusedact <command>`.

    python -m fusedact plot --ops gelu,silu,mish --out DIR [--range -6,6] [--points 601]
    python -m fusedact docs --out docs [--no-images]

`plot` writes DIR/<op>.png: the op and its first derivative from the fusedact kernels, with
the torch counterpart dashed over them (see fusedact.plots for the gated, weighted and random
ops). `docs` regenerates the op reference pages (see fusedact._docs).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import List, Optional, Tuple

from . import registry
from .plots import DEFAULT_POINTS, DEFAULT_RANGE


def _ops(text: str) -> List[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of op names, or 'all'")
    if names == ["all"]:
        return [spec.name for spec in registry.OPS]
    unknown = [n for n in names if n not in registry.BY_NAME]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown op{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: all, {', '.join(spec.name for spec in registry.OPS)}"
        )
    return list(dict.fromkeys(names))  # drop repeats, keep the order


def _range(text: str) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX (e.g. -6,6), got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise argparse.ArgumentTypeError(f"expected finite MIN < MAX, got {text!r}")
    return lo, hi


def _points(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 2:
        raise argparse.ArgumentTypeError(f"expected an int >= 2, got {text!r}")
    return n


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fusedact", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="{plot,docs}")

    plot = sub.add_parser("plot", help="PNG plots of ops and their derivatives, fusedact vs torch")
    plot.add_argument("--ops", type=_ops, required=True,
                      help="comma-separated op names of fusedact.registry, or 'all'")
    plot.add_argument("--out", required=True, help="output folder (created if missing)")
    plot.add_argument("--range", type=_range, default=DEFAULT_RANGE, metavar="MIN,MAX",
                      help=f"x range (default {DEFAULT_RANGE[0]:g},{DEFAULT_RANGE[1]:g})")
    plot.add_argument("--points", type=_points, default=DEFAULT_POINTS,
                      help=f"points per curve (default {DEFAULT_POINTS})")
    plot.add_argument("--dpi", type=_points, default=72, help="PNG resolution (default 72)")

    docs = sub.add_parser("docs", help="regenerate the op reference pages (markdown) and their plots")
    docs.add_argument("--out", required=True, help="output folder, e.g. docs")
    docs.add_argument("--no-images", action="store_true", help="write the markdown only")
    return p


def _join_negative_values(argv: List[str]) -> List[str]:
    """argparse takes the value in `--range -6,6` for an option; `--range=-6,6` it reads."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--range" and i + 1 < len(argv):
            out.append(f"--range={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(_join_negative_values(list(sys.argv[1:] if argv is None else argv)))
    from pathlib import Path

    if args.command == "plot":
        from .plots import plot_op

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in args.ops:
            print(plot_op(name, out / f"{name}.png", args.range, args.points, dpi=args.dpi))
        return 0
    from ._docs import generate

    for path in generate(args.out, images=not args.no_images):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
