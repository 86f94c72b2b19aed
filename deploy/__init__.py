"""Export for TF Serving: signatures, SavedModels, warm-up requests, serving configs, and the two-stage recommender that queries them."""
