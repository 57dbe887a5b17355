"""`sentinel demo`: the whole loop against a real local Triton, with scripted faults."""
