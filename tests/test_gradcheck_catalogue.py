"""Every registered gradcheck case, one test each: the catalogue (``scratchnet/gradcheck/cases``) is the
single source of the gradchecks that `scratchnet gradcheck` prints and the suite runs."""
import functools
import subprocess
import sys

import pytest

from scratchnet.gradcheck import catalogue_names, register_case, run_case

FAMILIES = ("core", "recurrent", "ctc", "energy", "conv", "attention", "resnet", "googlenet", "densenet",
            "mobilenet", "efficientnet", "channel", "bert", "vit", "gan", "compress",
            "las", "speech_transformer", "multimodal", "quant", "detection", "wav2vec2", "yolo", "rcnn")
# what the catalogue held when the suite began to run all of it: it may grow, never shrink silently
MIN_CASES, MIN_REPORTS = 66, 238


@functools.cache
def reports_of(name):
    """The case's reports, computed once per session (the count test reuses them)."""
    return tuple(run_case(name))


@pytest.mark.parametrize("name", catalogue_names())
def test_registered_case_passes(name):
    reports = reports_of(name)
    assert reports, f"gradcheck case {name} returned no report"
    bad = [str(r) for r in reports if not r.ok]
    assert not bad, f"gradcheck case {name}: {len(bad)} of {len(reports)} reports fail\n" + "\n\n".join(bad)


def test_catalogue_covers_every_family():
    names = catalogue_names()
    assert len(names) >= MIN_CASES, f"only {len(names)} gradcheck cases are registered, expected ≥ {MIN_CASES}"
    missing = [f for f in FAMILIES if not any(n.startswith(f + ".") for n in names)]
    assert not missing, f"no gradcheck case registered for {missing}"
    unnamed = [n for n in names if not all(n.partition(".")[::2])]
    assert not unnamed, f"gradcheck case names must read 'family.op[option]': {unnamed}"


def test_catalogue_report_count():
    count = sum(len(reports_of(name)) for name in catalogue_names())
    assert count >= MIN_REPORTS, f"the catalogue produced {count} reports, expected ≥ {MIN_REPORTS}"


def test_run_case_names_an_unknown_case():
    with pytest.raises(KeyError, match="no gradcheck case named 'core.no-such-op'"):
        run_case("core.no-such-op")


def test_register_case_refuses_a_taken_name():
    """A copy-pasted name would otherwise replace a case silently, and its checks would stop running."""
    with pytest.raises(ValueError, match="'core.linear' is already registered"):
        register_case("core.linear")(lambda: None)
    assert catalogue_names("core.linear") == ["core.linear"]


def _python(code, timeout=300):
    """Run ``code`` in a fresh interpreter; (returncode, stdout + stderr)."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def test_fresh_import_lists_and_runs_the_catalogue():
    """``import scratchnet`` stays light (the cases load on first use), then the catalogue works."""
    code = ("import sys, scratchnet\n"
            "assert 'scratchnet.gradcheck.cases' not in sys.modules, 'import scratchnet loaded the cases'\n"
            "names = scratchnet.gradcheck.catalogue_names()\n"
            "reports = list(scratchnet.gradcheck.run_cases('core.flatten'))\n"
            "assert reports and all(r.ok for _, r in reports), reports\n"
            "print(len(names))")
    rc, out = _python(code)
    assert rc == 0, out
    assert int(out.strip().splitlines()[-1]) == len(catalogue_names())


def test_fresh_import_of_a_case_module_first():
    """Importing a case module before anything else (as the conv and pool tests do) registers its cases."""
    rc, out = _python("from scratchnet.gradcheck.cases.conv import CONV_CONFIGS\n"
                      "from scratchnet.gradcheck import CASES\n"
                      "assert CONV_CONFIGS and 'conv.conv2d' in CASES, sorted(CASES)")
    assert rc == 0, out


def test_cli_gradcheck_conv_in_a_fresh_process():
    rc, out = _python("import sys\nfrom scratchnet.cli import main\nsys.exit(main(['gradcheck', 'conv.']))")
    assert rc == 0, out
    for name in catalogue_names("conv."):
        assert f"[{name}] gradcheck" in out, f"`scratchnet gradcheck conv.` printed no report for {name}\n{out}"
    assert out.strip().splitlines()[-1].endswith("passed, 0 failed"), out
