"""judge: pure detectors over sample streams; findings out, no I/O."""
