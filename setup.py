"""The wheel carries the project files a user's project needs (aitk_nb/packaged.py, SHIPPED): the
template (JSON and Bicep), the default parameters, the walkthrough notebook and the demo. The repository
keeps one copy of each where its own project uses them; the build copies them into
aitk_nb/_packaged/. Everything else is in pyproject.toml."""
import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_aitk_packaged", HERE / "aitk_nb" / "packaged.py")
packaged = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(packaged)


class BuildPyWithProjectFiles(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's own files (packaged.root)
        dest = Path(self.build_lib) / "aitk_nb" / packaged.PACKAGED_DIR
        for relative in packaged.SHIPPED:
            source, target = HERE / relative, dest / relative
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True,
                                ignore=lambda _, names: [n for n in names if packaged.ignored(n)])
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


setup(cmdclass={"build_py": BuildPyWithProjectFiles})
