"""The `dipo` command dispatcher."""

from __future__ import annotations

import subprocess
import sys

from dipo.cli import SUBCOMMANDS, main


def test_help_lists_every_subcommand(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_core_example_runs_and_reports_brr(capsys):
    assert main(["core-example", "--steps", "2", "--prompts", "32"]) == 0
    out = capsys.readouterr().out
    assert "step 2:" in out and "BRR fired on" in out and "zero advantage" in out


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "dipo.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip()
