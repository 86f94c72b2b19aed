"""The raw log contract, feature and label declarations, readers and the tf.Transform preprocessing_fn: the single source of truth for names, dtypes and vocabularies."""
