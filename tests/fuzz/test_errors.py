"""Every error is one line: bugs too (with WASMTIME_STACKMAPS_DEBUG for the traceback)."""

import pytest
from wasmtime_stackmaps import cli, commands
from wasmtime_stackmaps.errors import StackMapsError
from wasmtime_stackmaps.failsafe import DEBUG_ENV
from wasmtime_stackmaps.session import Session
from wasmtime_stackmaps.text import has_unsafe, safe, safe_record


def _boom(*_args):
    raise TypeError("unexpected \x1b[2J shape")


def test_cli_bug_is_one_line(monkeypatch, capsys, tmp_path):
    f = tmp_path / "x.cwasm"
    f.write_bytes(b"x")
    monkeypatch.setattr(cli, "cmd_info", _boom)
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert cli.main(["info", str(f)]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error" in err and "TypeError" in err and DEBUG_ENV in err
    assert not has_unsafe(err.replace("\n", ""))
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert cli.main(["info", str(f)]) == cli.EXIT_BUG
    assert "Traceback" in capsys.readouterr().err


def test_debugger_command_bug_is_one_stackmaps_error(monkeypatch):
    monkeypatch.setitem(commands.HANDLERS, "bt", _boom)
    with pytest.raises(StackMapsError) as ei:
        commands.run(Session(), "bt", lambda: None)
    msg = str(ei.value)
    assert "\n" not in msg and "TypeError" in msg and DEBUG_ENV in msg and "\x1b" not in msg
    with pytest.raises(StackMapsError, match="closing quotation"):
        commands.run(Session(), 'bt "unbalanced', lambda: None)


@pytest.mark.parametrize(
    "argv,phrase",
    [
        ("bt -n 0", "must be 1 or more"),
        ("bt -n -1", "must be 1 or more"),
        ("bt --max-depth 0", "must be 1 or more"),
        ("frame -1", "0 or more"),
        ("load f 0x10000000000000000000", "not a 64-bit address"),
        ("load f -1", "not a 64-bit address"),
    ],
)
def test_arguments_validated(argv, phrase):
    with pytest.raises(StackMapsError, match=phrase):
        commands.run(Session(), argv, lambda: None)


def test_safe_escapes_and_keeps_text():
    assert safe("a\x1b[2Jb\x07\n\t\x7f\x9b\u202e\u2028é漢") == (
        "a\\x1b[2Jb\\x07\\x0a\\x09\\x7f\\x9b\\u202e\\u2028é漢"
    )
    rec = safe_record({"f": ["x\x1b", {"n": "\n"}], "k": 5, "none": None})
    assert rec == {"f": ["x\\x1b", {"n": "\\x0a"}], "k": 5, "none": None}
