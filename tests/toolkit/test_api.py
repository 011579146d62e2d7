import importlib
import pkgutil

import aitk_nb


def test_public_verbs_stay_functions_after_every_submodule_is_imported():
    # a submodule named like a verb would shadow the lazy export once imported
    for mod in pkgutil.walk_packages(aitk_nb.__path__, "aitk_nb."):
        importlib.import_module(mod.name)
    for name in ("provision", "deploy", "status", "endpoint", "logs", "teardown", "evaluate"):
        assert callable(getattr(aitk_nb, name)) and not isinstance(getattr(aitk_nb, name), type(aitk_nb)), name
