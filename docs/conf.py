"""Sphinx configuration: the documentation site.

Build it as CI does, warnings (a broken reference among them) as errors::

    .venv/bin/sphinx-build -W --keep-going -n -b html docs docs/_build/html

The pages are MyST Markdown (the topic pages are read on GitHub too); the
API reference is generated from the docstrings by autodoc.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version as _version

project = "websocket-multiplex"
author = "the websocket-multiplex developers"
copyright = "2026, the websocket-multiplex developers"
release = _version("websocket-multiplex")
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](PAGE.md#a-heading) links resolve

html_theme = "furo"
html_title = "websocket-multiplex"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "ignore-module-all": True,  # every public name a module defines
    "undoc-members": True,  # attributes and enum members without docstrings
}
autodoc_preserve_defaults = True

# Nitpicky: every reference must resolve. The machine that builds this has
# no network for intersphinx, so references into the standard library and
# third-party packages are taken on trust; ours are all checked.
nitpicky = True
_OUTSIDE = (
    "asyncio", "aiohttp", "collections", "contextlib", "typing", "enum", "ssl",
    "socket", "os", "pathlib", "uvicorn", "starlette", "redis", "logging",
    "types", "dataclasses", "_contextvars", "concurrent", "multidict", "yarl",
    "http", "email", "ipaddress", "abc", "weakref", "re", "datetime", "_asyncio",
)  # fmt: skip
nitpick_ignore_regex = [
    # private names: not documented, on purpose; type variables
    (r"py:class", r"[A-Z]"),
    # a generic's arguments, as autodoc splits some values' reprs
    (r"py:class", r"(dict|tuple|list)\[.*"),
    (r"py:.*", r"(.*\.)?_[A-Za-z]\w*(\..*)?"),
    (r"py:.*", rf"({'|'.join(_OUTSIDE)})(\..*)?"),
    # builtins and typing names as annotations spell them
    (r"py:.*", r"(str|int|float|bool|bytes|bytearray|object|None|list|dict|set|"
     r"frozenset|tuple|type|Exception|BaseException|NoneType|Ellipsis|"
     r"memoryview|range|slice|callable|TypeError|ValueError|ConnectionError|"
     r"OSError|TimeoutError|RuntimeError|LookupError|KeyError|AttributeError|"
     r"Any|Self|Final|Literal|ClassVar|Optional|Union|Callable|Awaitable|"
     r"Iterable|Iterator|AsyncIterator|AsyncIterable|Mapping|MutableMapping|"
     r"Sequence|Coroutine|Generator|Protocol|NamedTuple|TypeAlias|TypeVar)"),
]  # fmt: skip


# -- references to re-exported and imported names ---------------------------
#
# Each object is documented once, where it is defined; docstrings and
# annotations name it as users import it (``websocket_multiplex.Limits``)
# or as the module imported it (``:class:`Backoff``` in the client). This
# resolves such a reference to the object's defining module, by importing
# it, so that a reference to something that does not exist still fails.


def _find(dotted: str) -> tuple[object, str] | None:
    """The object ``dotted`` names and its canonical dotted name."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            owner: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        name = ".".join(parts[:split])
        for part in parts[split:]:
            if not hasattr(owner, part):
                return None
            member = getattr(owner, part)
            name = _canonical(member) or f"{name}.{part}"
            owner = member
        return owner, name
    return None


def _canonical(member: object) -> str | None:
    function = getattr(member, "fget", member)  # a property's getter
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not (module and qualname) or not module.startswith("websocket_multiplex"):
        return None
    if "<locals>" in qualname:
        return None
    return f"{module}.{qualname}"


def _resolve(app, env, node, contnode):  # type: ignore[no-untyped-def]
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    module = node.get("py:module") or ""
    cls = node.get("py:class") or ""
    contexts = [""]
    if module:
        contexts = [f"{module}.{cls}." if cls else "", f"{module}.", ""]
    domain = env.get_domain("py")
    for context in contexts:
        found = _find(context + target)
        if found is None:
            continue
        _, name = found
        if name == target and not context:
            continue  # the name Sphinx already failed to find
        retry = node.deepcopy()
        retry["reftarget"] = name
        retry["refspecific"] = False
        resolved = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], name, retry, contnode
        )
        if resolved is None:
            resolved = domain.resolve_any_xref(
                env, node["refdoc"], app.builder, name, retry, contnode
            )
            resolved = resolved[0][1] if resolved else None
        if resolved is not None:
            return resolved
    # Imported only for type checking: the one documented object of that name.
    suffix = "." + target
    names = [name for name in domain.objects if name.endswith(suffix)]
    if len(names) == 1:
        return domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], names[0], node, contnode
        )
    return None


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("missing-reference", _resolve)
