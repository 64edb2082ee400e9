"""Issue 33, section 3: ``infer --num-actors 0`` / ``-2``, on the command line and in the API, is one line.

Refused before any work: no Ray is started, no ``--out`` is made.  The
variant not in the issue is ``--decode-tasks``: ``-1`` reached Ray as a
negative pool size (a traceback), and ``0`` was silently the default.
"""

from __future__ import annotations

import pytest

from galaxy_ray import api
from galaxy_ray.cli import main as cli_main
from galaxy_ray.errors import GalaxyRayError

HELP = "give N or MIN,MAX model actors, whole numbers with 1 <= MIN <= MAX"
DECODE_HELP = ("give a whole number of at least 1, or leave it out for the default (one per model actor on CPUs, "
               "no cap on GPUs)")


@pytest.mark.parametrize("flag, value, reason", [
    ("--num-actors", "0", f"at least one model actor is needed; {HELP}"),
    ("--num-actors", "-2", f"at least one model actor is needed; {HELP}"),
    ("--num-actors", "two", f"not a whole number; {HELP}"),
    ("--num-actors", "3,1", HELP),
    ("--decode-tasks", "-1", DECODE_HELP),
    ("--decode-tasks", "0", DECODE_HELP),
])
def test_the_cli_refuses_in_one_line_before_any_work(tmp_path, tiny_checkpoint, capsys, flag, value, reason):
    checkpoint = tiny_checkpoint(str(tmp_path / "model.pt"))
    out = tmp_path / "catalog"
    argv = ["infer", "--checkpoint", checkpoint, "--source", str(tmp_path), "--out", str(out), flag, value]
    assert cli_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"galaxy-ray: error: {flag} {value}: {reason}\n" and captured.out == ""
    assert not out.exists()


@pytest.mark.parametrize("key, value, reason", [
    ("num_actors", 0, f"at least one model actor is needed; {HELP}"),
    ("num_actors", -2, f"at least one model actor is needed; {HELP}"),
    ("num_actors", (0, 4), HELP),
    ("num_actors", True, f"not a whole number; {HELP}"),
    ("decode_tasks", -1, DECODE_HELP),
])
def test_the_api_refuses_in_one_line_before_any_work(tmp_path, tiny_checkpoint, key, value, reason):
    checkpoint = tiny_checkpoint(str(tmp_path / "model.pt"))
    out = tmp_path / "catalog"
    with pytest.raises(GalaxyRayError) as err:
        api.infer(checkpoint, str(tmp_path), str(out), **{key: value})
    assert str(err.value) == f"infer(): {key} {value!r}: {reason}"
    assert not out.exists()


def test_a_direct_run_inference_call_checks_them_too(tmp_path):
    """``run_inference`` called directly (a notebook, a script) refuses the same values in one line,
    before it reads the checkpoint."""
    from galaxy_ray.infer.run import run_inference

    for kwargs, flag in (({"num_actors": 0}, "--num-actors 0"), ({"decode_tasks": -1}, "--decode-tasks -1")):
        with pytest.raises(GalaxyRayError) as err:
            run_inference(str(tmp_path / "missing.pt"), str(tmp_path), str(tmp_path / "out"), **kwargs)
        assert str(err.value).startswith(flag) and "\n" not in str(err.value)
