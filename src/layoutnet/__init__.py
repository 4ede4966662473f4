"""layoutnet: config-driven, trace-safe training and Core ML export of the OMFK keyboard-layout classifier."""

__version__ = "0.1.0"
