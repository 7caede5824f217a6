"""Command-line basics: fast commands do not import Lightning; unknown names exit 2 with one line;
``python -m focusnet.cli`` is the command."""
from __future__ import annotations

import json
import subprocess
import sys

from focusnet.cli import main


def test_fast_commands_do_not_import_lightning() -> None:
    code = (
        "import sys\n"
        "from focusnet.cli import main\n"
        "import focusnet.engine.scoring, focusnet.engine.predict, focusnet.weights\n"
        "main(['models'])\n"
        "lightning = any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules)\n"
        "print('LIGHTNING' if lightning else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip().splitlines()[-1] == "CLEAN"


def test_unknown_model_is_one_line_and_exit_2(capsys) -> None:
    assert main(["complexity", "no_such_model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model 'no_such_model'" in err[0] and "focusnet models" in err[0]


def test_python_m_focusnet_cli_is_the_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "focusnet.cli", "models", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "focusnetpp" in json.loads(proc.stdout)
