"""Export of trained models to Core ML: strict trace, conversion, parity of the saved artifact."""
