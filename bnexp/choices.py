"""The names a config or a command may choose from, shared by the config
validator, the engine, the plots and the CLI (kept free of numpy so that
validating a config and starting the CLI stay cheap)."""

DATASETS = ("mnist5k", "synthetic", "mnist", "fashion-mnist")
IDX_DATASETS = ("mnist", "fashion-mnist")  # read from IDX files: found, cached, downloadable
PREPROCESS = ("scale", "standardize")
ACTIVATIONS = ("relu", "sigmoid", "tanh")
NORMS = ("none", "batch", "layer", "group")
PLACEMENTS = ("before", "after")
OPTIMIZERS = ("sgd", "momentum", "adam")
DTYPES = ("float32", "float64")
SAMPLING = ("shuffle", "replacement")
INIT_NAMES = ("he", "xavier")
CONVENTIONS = ("pytorch", "book")

PLOT_KINDS = ("curves", "grid", "final", "heatmap", "activations")
PLOT_METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")
PLOT_STATS = ("final", "best")
