"""`driftline keys create | list | revoke`: the key is printed once, scopes and expiry checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.auth.keys import KeyVerifier
from driftline.auth.scopes import Scope
from driftline.cli import main
from driftline.cli.keys import parse_duration
from driftline.config import Settings
from driftline.store.keys import KeyStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def verify(key: str) -> set[Scope]:
    store = KeyStore.from_settings(Settings())
    try:
        return set(KeyVerifier(store).verify(key).scopes)
    finally:
        store.close()


def test_create_prints_the_key_once_and_it_works(home: Path) -> None:
    code, out, err = run("keys", "create", "ci", "--scope", "predict,read")
    assert code == 0, err
    key = out.strip()
    assert key.startswith("dl_")
    assert "not shown again" in err
    assert verify(key) == {Scope.PREDICT, Scope.READ}
    code, out, _ = run("keys", "list")
    assert code == 0
    assert "ci" in out
    assert "predict,read" in out
    assert key not in out
    assert key.split("_", 2)[2] not in out  # dl_<id>_<secret>; the secret may hold "_"


def test_create_json_has_name_key_scopes_and_expiry(home: Path) -> None:
    before = datetime.now(UTC)
    code, out, err = run(
        "keys", "create", "bot", "--scope", "outcomes:write", "--expires", "30d", "--json"
    )
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == {"name", "key", "scopes", "expires"}
    assert document["name"] == "bot"
    assert document["scopes"] == ["outcomes:write"]
    expires = datetime.fromisoformat(document["expires"])
    assert (
        timedelta(days=30) - timedelta(minutes=1) < expires - before < timedelta(days=30, minutes=1)
    )
    assert verify(document["key"]) == {Scope.OUTCOMES_WRITE}


def test_revoke_then_list_shows_the_state(home: Path) -> None:
    _, out, _ = run("keys", "create", "ci", "--scope", "read")
    assert run("keys", "revoke", "ci")[0] == 0
    code, out, _ = run("keys", "list", "--json")
    assert code == 0
    (line,) = out.strip().splitlines()
    assert json.loads(line)["state"] == "revoked"
    code, _, err = run("keys", "revoke", "ci")
    assert code == 1
    assert "no unrevoked key named 'ci'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "predictions"], "unknown scope(s) predictions"),
        (["--scope", "read", "--expires", "soon"], "positive duration"),
        (["--scope", "read", "--expires", "0d"], "positive duration"),
    ],
)
def test_bad_scopes_and_durations_are_usage_errors(
    home: Path, args: list[str], message: str
) -> None:
    code, _, err = run("keys", "create", "ci", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_a_taken_name_or_a_bad_name_is_a_clear_error(home: Path) -> None:
    run("keys", "create", "ci", "--scope", "read")
    code, _, err = run("keys", "create", "ci", "--scope", "read")
    assert (code, "exists already" in err) == (1, True)
    code, _, err = run("keys", "create", "two words", "--scope", "read")
    assert (code, "key name" in err) == (1, True)


def test_list_when_empty_says_how_to_begin(home: Path) -> None:
    assert "driftline keys create" in run("keys", "list")[1]


def test_durations() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration(" 12h ") == timedelta(hours=12)
    assert parse_duration("45s") == timedelta(seconds=45)
    with pytest.raises(ValueError, match="positive duration"):
        parse_duration("-1d")
