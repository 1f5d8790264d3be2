"""The documentation site builds from the docstrings and the pages, with
every warning an error (a broken reference among them), as CI builds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).parent.parent / "docs"


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``sphinx-build -W --keep-going -n`` with the site's configuration."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q"),
            *("-b", "html", "-c", str(DOCS), str(source), str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_site_builds_without_a_warning(tmp_path: Path) -> None:
    built = sphinx_build(DOCS, tmp_path)
    assert built.returncode == 0, built.stderr
    assert built.stderr == ""
    for page in ("index", "tutorial", "howto/index", "reference/server", "changelog"):
        assert (tmp_path / f"{page}.html").is_file(), page
    server = (tmp_path / "reference/server.html").read_text()
    assert 'id="websocket_multiplex.asyncio.server.MultiplexServer"' in server
    assert "Changelog" in (tmp_path / "changelog.html").read_text()


def page(tmp_path: Path, text: str) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    (source / "index.md").write_text(f"# A page\n\n{text}\n")
    return source


def test_a_reference_to_a_re_exported_name_resolves(tmp_path: Path) -> None:
    """Users and docstrings name objects as the package exports them."""
    defined = "".join(
        f"```{{py:{kind}}} websocket_multiplex.{name}\n```\n"
        for kind, name in [
            ("class", "limits.Limits"),
            ("class", "asyncio.channel.Channel"),
            ("class", "events.CloseReason"),
            ("attribute", "events.CloseReason.SHUTDOWN"),
        ]
    )
    text = (
        "{py:class}`websocket_multiplex.Limits`, {py:class}`~websocket_multiplex."
        "Channel` and {py:attr}`websocket_multiplex.CloseReason.SHUTDOWN`\n\n" + defined
    )
    built = sphinx_build(page(tmp_path, text), tmp_path / "html")
    assert built.returncode == 0, built.stderr
    html = (tmp_path / "html/index.html").read_text()
    for target in (
        "limits.Limits",
        "asyncio.channel.Channel",
        "events.CloseReason.SHUTDOWN",
    ):
        assert f'href="#websocket_multiplex.{target}"' in html, target


def test_a_broken_reference_fails_the_build(tmp_path: Path) -> None:
    text = "{py:class}`websocket_multiplex.NoSuchThing` does not exist."
    built = sphinx_build(page(tmp_path, text), tmp_path / "html")
    assert built.returncode != 0
    assert "websocket_multiplex.NoSuchThing" in built.stderr
