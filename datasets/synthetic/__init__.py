"""The synthetic world: latent users and items, the event logs they produce, injected faults, and the ground truth the benchmarks score against."""
