"""Layer 0, infrastructure: the registries, input checks, the device, the on-disk cache, the run memo and weight
files. It imports nothing from the rest of the package; every other layer may import it."""
