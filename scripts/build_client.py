"""Generate the ES module build of the browser client from the classic script.

``src/websocket_multiplex/static/websocket-multiplex.js`` is the one source:
a classic ``<script>`` whose code sits between two ``BODY`` markers inside an
IIFE. The ES module ``websocket-multiplex.mjs`` is that body at module scope,
with ``export`` added to the ``WebSocketMultiplex`` class, a named export
of ``MultiplexChannel`` (the declarations promise both) and a default
export. Both files are committed, so installing the package needs no build.

Run ``python scripts/build_client.py`` after editing the classic script;
``--check`` exits 1 if the committed module is out of date (the test suite
runs it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

STATIC = (
    Path(__file__).resolve().parent.parent / "src" / "websocket_multiplex" / "static"
)
SOURCE = STATIC / "websocket-multiplex.js"
MODULE = STATIC / "websocket-multiplex.mjs"

BEGIN = "// --- BEGIN BODY ---\n"
END = "// --- END BODY ---\n"
CLASS = "\nclass WebSocketMultiplex "  # then "{" or "extends ..."
BANNER = (
    "// Generated from websocket-multiplex.js by scripts/build_client.py;\n"
    "// do not edit: change the classic script and run the script again.\n"
)


def render(source: str) -> str:
    """Return the ES module text for the classic script ``source``."""
    header, found, rest = source.partition(BEGIN)
    body, found_end, _ = rest.partition(END)
    if not (found and found_end):
        raise ValueError(f"{SOURCE.name} must contain the lines {BEGIN!r} and {END!r}")
    if body.count(CLASS) != 1:
        raise ValueError(
            f"{SOURCE.name} must define {CLASS.strip()!r} exactly once, "
            "at the start of a line"
        )
    comment = header[: header.index("*/") + 3] if header.startswith("/*") else ""
    body = body.strip("\n").replace(CLASS, "\nexport " + CLASS.lstrip("\n"))
    exports = "export { MultiplexChannel };\nexport default WebSocketMultiplex;\n"
    return f"{BANNER}{comment}\n{body}\n\n{exports}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if the module is out of date"
    )
    args = parser.parse_args(argv)
    expected = render(SOURCE.read_text(encoding="utf-8"))
    if args.check:
        current = MODULE.read_text(encoding="utf-8") if MODULE.exists() else None
        if current != expected:
            print(
                f"{MODULE.name} is out of date: run python scripts/build_client.py",
                file=sys.stderr,
            )
            return 1
        return 0
    MODULE.write_text(expected, encoding="utf-8")
    print(f"wrote {MODULE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
