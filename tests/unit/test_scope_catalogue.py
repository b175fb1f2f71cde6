"""The scope catalogue (shared/scopes.py): one row per scope, checked once, everything derived."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.scopes import APP_SCOPES, CATALOGUE, SERVER_SCOPES, Scope, ScopeCatalogue

ROOT = Path(__file__).resolve().parents[2]


def test_the_servers_mcp_scopes_and_the_apps_scopes_are_kept_apart() -> None:
    assert all(row.name.startswith("mcp:") for row in SERVER_SCOPES)
    assert not any(row.name.startswith("mcp:") for row in APP_SCOPES)
    assert [row.name for row in CATALOGUE] == [row.name for row in (*SERVER_SCOPES, *APP_SCOPES)]


def test_names_and_baseline_are_read_from_the_rows_in_catalogue_order() -> None:
    assert CATALOGUE.names == (
        "mcp:tools:read",
        "mcp:resources:read",
        "mcp:prompts:read",
        "notes:read",
        "notes:write",
        "profile:read",
    )
    assert CATALOGUE.baseline == ("mcp:tools:read", "mcp:resources:read", "mcp:prompts:read", "notes:read")


def test_implied_scopes_are_followed_transitively() -> None:
    catalogue = ScopeCatalogue(
        [
            Scope("files:read", "Read files"),
            Scope("files:write", "Write files", implies=("files:read",)),
            Scope("files:admin", "Administer files", implies=("files:write",)),
        ]
    )

    assert catalogue.expand(["files:admin"]) == {"files:admin", "files:write", "files:read"}
    assert catalogue.expand(["files:read", "other"]) == {"files:read", "other"}
    assert CATALOGUE.expand(["notes:write"]) == {"notes:write", "notes:read"}


def test_the_consent_wording_comes_from_the_row_and_an_unlisted_scope_shows_its_name() -> None:
    assert CATALOGUE.describe("notes:write") == "Add and delete your notes"
    assert CATALOGUE.describe("files:admin") == "files:admin"
    assert CATALOGUE.unknown(["notes:read", "files:admin", "x"]) == ["files:admin", "x"]
    assert "notes:read" in CATALOGUE
    assert "files:admin" not in CATALOGUE


def test_challenges_list_scopes_in_catalogue_order_without_duplicates() -> None:
    assert CATALOGUE.ordered(["notes:write", "zz:other", "mcp:tools:read", "notes:write", "aa:other"]) == [
        "mcp:tools:read",
        "notes:write",
        "aa:other",
        "zz:other",
    ]


@pytest.mark.parametrize(
    ("rows", "complaint"),
    [
        ([Scope("a", "A"), Scope("a", "again")], "listed twice"),
        ([Scope("has space", "A")], "not an RFC 6749 scope token"),
        ([Scope('quote"', "A")], "not an RFC 6749 scope token"),
        ([Scope("back\\slash", "A")], "not an RFC 6749 scope token"),
        ([Scope("", "A")], "not an RFC 6749 scope token"),
        ([Scope("a", "  ")], "needs a description"),
        ([Scope("a", "A", implies=("b",))], "implies unknown"),
    ],
)
def test_a_bad_row_stops_the_catalogue_from_being_built(rows: list[Scope], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        ScopeCatalogue(rows)


def test_the_scope_table_in_the_docs_is_the_catalogue() -> None:
    """docs/auth-modes.md shows the rows; this keeps it from drifting."""
    text = (ROOT / "docs" / "auth-modes.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]*) \| (yes|no) \|$", text, flags=re.MULTILINE)
    documented = [
        (name, description.strip(), implies.strip(), baseline)
        for name, description, implies, baseline in rows
    ]
    expected = [
        (
            row.name,
            row.description,
            " ".join(f"`{name}`" for name in row.implies),
            "yes" if row.baseline else "no",
        )
        for row in CATALOGUE
    ]
    assert documented == expected
