"""An empty ``torchvision`` for the MMPose reference venv, so that ``mmpretrain.models`` imports.

mmpretrain imports torchvision at module level (dataset transforms, box ops
for its grounding metrics); the registry's torchvision wheel does not load with
the reference venv's torch build, and nothing ViTPose uses needs it. Importing
this module puts a finder in front of the import system that answers every
``torchvision[.x]`` import with an empty package whose attributes are dummy
classes. Used by tools/make_vitpose_fixture.py and benchmarks/_mmpose_vitpose_forward.py.
"""

import importlib.abc
import importlib.machinery
import sys
import types


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})  # any class mmpretrain names at import time


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


if not any(isinstance(f, _TorchvisionStandIn) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionStandIn())
