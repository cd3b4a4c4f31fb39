"""The names a config may choose from, shared by the config validator and the
engine (kept free of numpy so that validating a config stays cheap)."""

DATASETS = ("mnist5k", "synthetic", "mnist", "fashion-mnist")
PREPROCESS = ("scale", "standardize")
ACTIVATIONS = ("relu", "sigmoid", "tanh")
NORMS = ("none", "batch", "layer", "group")
PLACEMENTS = ("before", "after")
OPTIMIZERS = ("sgd", "momentum", "adam")
DTYPES = ("float32", "float64")
SAMPLING = ("shuffle", "replacement")
INIT_NAMES = ("he", "xavier")
CONVENTIONS = ("pytorch", "book")
