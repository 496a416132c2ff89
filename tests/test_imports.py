"""What importing costs, as module-level facts (never times): the data, loss and model modules do not load
transformers' Trainer or the `evaluate` library, `import sclseg` registers the models but leaves the trainer
for first use, and the `sclseg` command builds its parser without torch. Each check runs in a fresh interpreter."""

import json
import subprocess
import sys

import pytest

HEAVY = ("transformers.trainer", "evaluate", "sclseg.trainer")


def loaded_after(code: str, argv0: str = "python") -> dict[str, bool]:
    """Which of HEAVY (and torch) are in sys.modules after running `code` with sys.argv[0] = argv0."""
    probe = (f"import sys; sys.argv = [{argv0!r}]\n{code}\n"
             f"import json; print(json.dumps({{m: m in sys.modules for m in {(*HEAVY, 'torch')!r}}}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["sclseg.data", "sclseg.losses", "sclseg.models", "sclseg.cutmix",
                                    "sclseg.evaluation"])
def test_library_modules_leave_the_trainer_and_evaluate_alone(module):
    loaded = loaded_after(f"import {module}")
    assert not any(loaded[m] for m in HEAVY), loaded


def test_import_sclseg_registers_the_models_and_defers_the_trainer():
    code = ("import sclseg\nfrom transformers import AutoConfig\n"
            "assert type(AutoConfig.for_model('deeplabv3plus')).__name__ == 'DeepLabV3PlusConfig'")
    assert not any(loaded_after(code)[m] for m in HEAVY)
    loaded = loaded_after("import sclseg\nsclseg.SCLTrainer")
    assert loaded["sclseg.trainer"] and loaded["transformers.trainer"] and not loaded["evaluate"]


def test_the_cli_builds_its_parser_without_torch():
    code = "from sclseg.cli import build_parser\nbuild_parser().format_help()"
    loaded = loaded_after(code, argv0="/usr/bin/sclseg")
    assert not loaded["torch"] and not any(loaded[m] for m in HEAVY), loaded
