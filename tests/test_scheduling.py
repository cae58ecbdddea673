"""How ``make test`` splits the suite over its pytest-xdist workers (``tests/conftest.py``): a module's tests are one
unit, so its module fixtures (a JupyterLab server, notebook 07's run) are built once; notebook runs are spread."""

from __future__ import annotations


import conftest


def test_a_module_is_one_unit_and_notebook_runs_are_spread():
    assert conftest._scope("tests/test_gallery.py::test_3_batchnorm") == "tests/test_gallery.py"
    assert conftest._scope("tests/test_browser.py::test_lab_shows_no_news_pop_up") == "tests/test_browser.py"
    one = "tests/test_notebooks.py::test_notebook_runs_and_teaches[02_qat_lenet.ipynb]"
    assert conftest._scope(one) == one


def test_loadscope_uses_these_units_and_other_modes_keep_xdists_scheduler():
    import xdist.scheduler as xdist

    cls = conftest._module_scheduling()
    assert issubclass(cls, xdist.LoadScopeScheduling)
    scheduler = cls.__new__(cls)  # its units only: constructing one needs a running session's worker specs
    assert scheduler._split_scope("tests/test_faults.py::test_twenty") == "tests/test_faults.py"
    one = "tests/test_notebooks.py::test_notebook_runs_and_teaches[05_default_ranges.ipynb]"
    assert scheduler._split_scope(one) == one

    class Load:  # `--dist load`
        @staticmethod
        def getvalue(name):
            return "load" if name == "dist" else None

    assert conftest.pytest_xdist_make_scheduler(Load(), log=None) is None
