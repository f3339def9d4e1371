"""Analysis: properties, stability audit, gradient flow, init gain, signal propagation, dead units."""
