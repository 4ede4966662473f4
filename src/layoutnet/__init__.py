"""layoutnet: config-driven, trace-safe training and Core ML export of the OMFK keyboard-layout classifier."""

__version__ = "0.1.0"

from layoutnet import rundir as _rundir

_rundir.register()  # before any command composes conf/hydra/default.yaml
