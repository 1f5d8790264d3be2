"""Generate the ES module build of the browser client and its declarations.

``src/websocket_multiplex/static/websocket-multiplex.js`` is the one source
of the code: a classic ``<script>`` whose code sits between two ``BODY``
markers inside an IIFE. The ES module ``websocket-multiplex.mjs`` is that
body at module scope, with ``export`` added to the ``WebSocketMultiplex``
class, a named export of ``MultiplexChannel`` (the declarations promise
both) and a default export.

``websocket-multiplex.d.ts`` is the one source of the types. TypeScript
looks for the types of ``websocket-multiplex.mjs`` in
``websocket-multiplex.d.mts`` (a ``.d.ts`` does not count for a ``.mjs``:
an import of it fails with TS7016 under ``--strict``), so that file is the
``.d.ts`` without its header comment and without the part between the
``GLOBAL`` markers, which declares the global of the classic script.

Every file is committed, so installing the package needs no build. Run
``python scripts/build_client.py`` after editing the classic script or the
``.d.ts``; ``--check`` exits 1 if a generated file is out of date (the test
suite runs it).
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
DECLARATIONS = STATIC / "websocket-multiplex.d.ts"
MODULE_DECLARATIONS = STATIC / "websocket-multiplex.d.mts"

BEGIN = "// --- BEGIN BODY ---\n"
END = "// --- END BODY ---\n"
CLASS = "\nclass WebSocketMultiplex "  # then "{" or "extends ..."
BANNER = (
    "// Generated from websocket-multiplex.js by scripts/build_client.py;\n"
    "// do not edit: change the classic script and run the script again.\n"
)

GLOBAL_BEGIN = "// --- BEGIN GLOBAL ---\n"
GLOBAL_END = "// --- END GLOBAL ---\n"
MODULE_DECLARATIONS_HEADER = (
    "// Generated from websocket-multiplex.d.ts by scripts/build_client.py;\n"
    "// do not edit: change websocket-multiplex.d.ts and run the script again.\n"
    "//\n"
    "// Type declarations for the ES module websocket-multiplex.mjs: named\n"
    "// exports `WebSocketMultiplex` and `MultiplexChannel`, default export\n"
    "// `WebSocketMultiplex`. TypeScript finds them next to the module.\n"
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


def render_declarations(source: str) -> str:
    """Return the ``.d.mts`` text for the declarations ``source`` (a ``.d.ts``)."""
    before, found, rest = source.partition(GLOBAL_BEGIN)
    _, found_end, after = rest.partition(GLOBAL_END)
    if not (found and found_end):
        raise ValueError(
            f"{DECLARATIONS.name} must contain the lines "
            f"{GLOBAL_BEGIN!r} and {GLOBAL_END!r}"
        )
    header, blank, body = before.partition("\n\n")
    if not blank or not all(line.startswith("//") for line in header.splitlines()):
        raise ValueError(
            f"{DECLARATIONS.name} must start with a // comment and a blank line"
        )
    declarations = (body + after).strip("\n")
    return f"{MODULE_DECLARATIONS_HEADER}\n{declarations}\n"


def generated() -> dict[Path, str]:
    """Each generated file and what it must contain."""
    return {
        MODULE: render(SOURCE.read_text(encoding="utf-8")),
        MODULE_DECLARATIONS: render_declarations(
            DECLARATIONS.read_text(encoding="utf-8")
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="fail if a generated file is out of date",
    )
    args = parser.parse_args(argv)
    files = generated()
    if args.check:
        stale = [
            path.name
            for path, expected in files.items()
            if not path.exists() or path.read_text(encoding="utf-8") != expected
        ]
        for name in stale:
            print(
                f"{name} is out of date: run python scripts/build_client.py",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, expected in files.items():
        path.write_text(expected, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
