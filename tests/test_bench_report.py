"""BENCHMARKS.md marks a section STALE when the code it measured changed, not when a comment did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import report  # bench/report.py: the benchmarks are scripts, not a package

CODE = '''"""Module docstring."""
STEPS = 600  # the baseline's length


def speed(images: int, seconds: float) -> float:
    """Images a second (11.3 on the last machine)."""
    return images / seconds
'''


@pytest.mark.parametrize(
    ("path", "before", "after", "same"),
    [
        ("a.py", CODE, CODE.replace("the baseline's length", "600 steps, as in the anchors bench"), True),
        ("a.py", CODE, CODE.replace("11.3 on the last machine", "17.5 on the last machine"), True),
        ("a.py", CODE, CODE.replace('"""Module docstring."""\n', ""), True),
        ("a.py", CODE, CODE.replace("STEPS = 600", "STEPS = 601"), False),
        ("a.py", CODE, CODE.replace("images / seconds", "seconds / images"), False),
        ("a.py", CODE, CODE + "x = 1\n", False),
        ("config.yaml", "budget: 12m  # whole job\n", "# the default\nbudget: 12m\n", True),
        ("config.yaml", "budget: 12m\n", "budget: 4m\n", False),
        (
            "rules/train.smk",
            "rule train:\n    # the model\n    shell: 'artdet train'\n",
            "rule train:\n    shell: 'artdet train'\n",
            True,
        ),
        (
            "rules/train.smk",
            "rule train:\n    shell: 'artdet train'\n",
            "rule train:\n    shell: 'artdet train --fast'\n",
            False,
        ),
        (
            "rules/train.smk",
            "rule train:\n    shell: 'artdet train'  # one job\n",
            "rule train:\n    shell: 'artdet train'\n",
            True,
        ),
        (
            "rules/train.smk",
            'rule train:\n    params:\n        header="""\n# images: 40\n""",\n',
            'rule train:\n    params:\n        header="""\n# images: 80\n""",\n',
            False,
        ),
        ("Snakefile", "include: 'rules/a.smk'\n", "include: 'rules/b.smk'\n", False),
        ("a.py", None, CODE, False),
    ],
)
def test_only_a_change_to_what_the_code_does_counts(path, before, after, same):
    assert (report.meaning(path, before) == report.meaning(path, after)) is same


def test_a_comment_leaves_the_section_fresh_and_code_makes_it_stale(tmp_path, monkeypatch):
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("config", "user.email", "bench@example.org")
    git("config", "user.name", "bench")
    measured = tmp_path / "src" / "artdet" / "train" / "trainer.py"
    measured.parent.mkdir(parents=True)
    measured.write_text(CODE)
    git("add", ".")
    git("commit", "-qm", "measured")
    measured_at = git("rev-parse", "HEAD").strip()
    monkeypatch.setattr(report, "ROOT", tmp_path)

    measured.write_text(CODE.replace("11.3 on the last machine", "17.5 on the last machine"))
    assert report.stale_since("train_speed", measured_at) == []
    measured.write_text(CODE.replace("STEPS = 600", "STEPS = 300"))
    assert report.stale_since("train_speed", measured_at) == ["src/artdet/train/trainer.py"]
