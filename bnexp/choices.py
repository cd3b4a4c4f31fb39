"""The names a config or a command may choose from, shared by the config
validator, the engine, the plots and the CLI (kept free of numpy so that
validating a config and starting the CLI stay cheap)."""

DATASETS = ("mnist5k", "synthetic", "mnist", "fashion-mnist")
IDX_DATASETS = ("mnist", "fashion-mnist")  # read from IDX files: found, cached, downloadable
PREPROCESS = ("scale", "standardize")
ACTIVATIONS = ("relu", "sigmoid", "tanh")
NORMS = ("none", "batch", "layer", "group", "instance", "weight")
ARCHS = ("mlp", "cnn")
POOLS = ("max", "avg", "none")
HEADS = ("flatten", "gap")
PLACEMENTS = ("before", "after")
OPTIMIZERS = ("sgd", "momentum", "adam")
DTYPES = ("float32", "float64")
SAMPLING = ("shuffle", "replacement")
INIT_NAMES = ("he", "xavier")
CONVENTIONS = ("pytorch", "book")
RENORM_RUNNING = ("sigma", "variance")  # what batch renorm's running statistics average
KERNELS = ("numpy", "numba")  # numpy: the reference engine; numba: the [fast] extra

PLOT_KINDS = ("curves", "grid", "final", "bars", "heatmap", "activations", "landscape")
FIGURE_FORMATS = ("png", "svg", "pdf")
# The metrics of one evaluation (metrics.csv's columns, what figures plot) and of
# one run (summary.csv's columns, what reports tabulate and checks test).
EPOCH_METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")
PLOT_METRICS = EPOCH_METRICS
SUMMARY_METRICS = ("final_train_acc", "final_test_acc", "best_test_acc", "final_train_loss",
                   "final_test_loss", "epochs", "seconds")
METRIC_LABELS = {"train_acc": "train accuracy", "test_acc": "test accuracy",
                 "train_loss": "train loss (cross-entropy)",
                 "test_loss": "test loss (cross-entropy)",
                 "final_train_acc": "final train acc", "final_test_acc": "final test acc",
                 "best_test_acc": "best test acc", "final_train_loss": "final train loss",
                 "final_test_loss": "final test loss", "epochs": "epochs", "seconds": "seconds"}
PLOT_STATS = ("final", "best")
