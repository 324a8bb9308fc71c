import ast
import importlib
import importlib.metadata
import inspect
import subprocess
import sys

import pytest

import segment_braze

CONTRACT = (
    "BrazeRequest",
    "InvalidMessage",
    "Settings",
    "SettingsError",
    "Translation",
    "translate",
)


def names_bound_in_init():
    """Every public name the package's ``__init__`` binds (imports, defs, assignments)."""
    tree = ast.parse(inspect.getsource(segment_braze))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {name for name in names if not name.startswith("_")}


class TestAll:
    """``__all__`` is sorted, importable and complete."""

    def test_sorted(self):
        """``__all__`` is in sorted order."""
        assert list(segment_braze.__all__) == sorted(segment_braze.__all__)

    def test_no_duplicates(self):
        """``__all__`` names each export once."""
        assert len(set(segment_braze.__all__)) == len(segment_braze.__all__)

    @pytest.mark.parametrize("name", segment_braze.__all__)
    def test_importable(self, name):
        """Every name in ``__all__`` can be imported from the package."""
        module = importlib.import_module("segment_braze")
        assert hasattr(module, name)

    def test_complete(self):
        """Every public name bound in the package's ``__init__`` is listed in ``__all__``."""
        assert names_bound_in_init() - set(segment_braze.__all__) == set()

    @pytest.mark.parametrize("name", CONTRACT)
    def test_contract_names_exported(self, name):
        """The names of the issue's public contract are exported."""
        assert name in segment_braze.__all__

    def test_star_import(self):
        """``from segment_braze import *`` binds exactly ``__all__``."""
        namespace = {}
        exec("from segment_braze import *", namespace)  # noqa: S102 (the import under test)
        namespace.pop("__builtins__")
        assert set(namespace) == set(segment_braze.__all__)


class TestExceptions:
    """The contract's input errors are ValueErrors."""

    @pytest.mark.parametrize("name", ["InvalidMessage", "SettingsError"])
    def test_value_error(self, name):
        """InvalidMessage and SettingsError are ValueError subclasses."""
        assert issubclass(getattr(segment_braze, name), ValueError)


class TestVersion:
    """``__version__`` comes from the installed package metadata."""

    def test_matches_metadata(self):
        """``__version__`` equals the installed distribution's version."""
        assert segment_braze.__version__ == importlib.metadata.version("segment-braze")

    def test_is_text(self):
        """``__version__`` is a non-empty string."""
        assert isinstance(segment_braze.__version__, str)
        assert segment_braze.__version__

    def test_source_tree_never_installed(self):
        """Imported without package metadata (a vendored copy), the package still imports."""
        code = (
            "import importlib.metadata as m\n"
            "def missing(name):\n"
            "    raise m.PackageNotFoundError(name)\n"
            "m.version = missing\n"
            "import segment_braze\n"
            "print(segment_braze.__version__)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "0+unknown"
