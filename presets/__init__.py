"""Configuration presets shipped with mtlrec, one YAML document per kind of data."""
