"""docs/api.md is generated from galaxy_ray.api and lists every public function with its exact signature."""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

from galaxy_ray import api

ROOT = Path(__file__).resolve().parents[2]


def _writer():
    spec = importlib.util.spec_from_file_location("write_api_docs", ROOT / "jobs" / "write_api_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_function_is_on_the_page_with_its_exact_signature():
    page = (ROOT / "docs" / "api.md").read_text()
    assert set(api.__all__) >= {"train", "evaluate", "infer", "predict", "open_catalog", "cone", "box",
                                "merger_stats"}
    writer = _writer()
    for name in api.__all__:
        fn = getattr(api, name)
        line = writer.signature_line(name, fn)
        assert f"\n{line}\n" in page, f"docs/api.md: {line} missing"
        assert str(inspect.signature(fn)).replace("'", "") in line.replace("'", "")  # the exact signature, unquoted
        assert f"## `{name}`" in page
        doc = inspect.getdoc(fn)
        for part in ("Parameters", "Returns", "Raises", "GalaxyRayError"):
            assert part in doc, f"{name}: docstring has no {part}"


def test_the_page_is_what_the_generator_writes_now():
    assert _writer().render() == (ROOT / "docs" / "api.md").read_text(), "run python jobs/write_api_docs.py"


def test_the_generator_sees_a_changed_signature():
    writer = _writer()

    def cone(catalog, ra, dec, radius, *, extra=1):
        """Changed."""

    assert writer.signature_line("cone", cone) not in (ROOT / "docs" / "api.md").read_text()


def test_import_galaxy_ray_and_the_catalog_api_do_not_import_torch_or_ray():
    code = ("import sys, galaxy_ray; f = galaxy_ray.cone; g = galaxy_ray.open_catalog; "
            "from galaxy_ray import api; print(sorted(m for m in ('torch', 'ray', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    import galaxy_ray

    assert galaxy_ray.cone is api.cone and galaxy_ray.merger_stats is api.merger_stats
    assert "cone" in dir(galaxy_ray)
