"""Data sets: the synthetic world behind `mtlrec generate` and importers of public data (MovieLens)."""
