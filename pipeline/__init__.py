"""The Beam and tf.Transform jobs: validate, dedupe, join, split, transform and write TFRecords. Imports only mtlrec.features."""
