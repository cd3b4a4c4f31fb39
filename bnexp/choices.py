"""The names a config or a command may choose from, shared by the config
validator, the engine, the plots and the CLI (kept free of numpy so that
validating a config and starting the CLI stay cheap)."""

DATASETS = ("mnist5k", "synthetic", "mnist", "fashion-mnist", "cifar10")
IDX_DATASETS = ("mnist", "fashion-mnist")  # read from IDX files: found, cached, downloadable
DOWNLOADED = (*IDX_DATASETS, "cifar10")  # not bundled: found on this machine or downloaded
# (channels, height, width) of each image dataset's samples (rows hold them C-major)
IMAGE_SHAPES = {"mnist5k": (1, 28, 28), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28),
                "cifar10": (3, 32, 32)}
PREPROCESS = ("scale", "standardize")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "identity")  # identity: a deep linear network
NORMS = ("none", "batch", "layer", "group", "instance", "weight")
ARCHS = ("mlp", "cnn", "resnet")
POOLS = ("max", "avg", "none")
HEADS = ("flatten", "gap")
PLACEMENTS = ("before", "after")
OPTIMIZERS = ("sgd", "momentum", "adam")
DTYPES = ("float32", "float64")
SAMPLING = ("shuffle", "replacement")
# he: Normal, std sqrt(2/fan_in); xavier: the book's Normal, std sqrt(1/fan_in);
# kaiming_uniform: PyTorch's default for Linear and Conv2d, weights and biases
# Uniform(+-1/sqrt(fan_in)); glorot_normal / glorot_uniform: Glorot & Bengio 2010's
# fan_in + fan_out (PyTorch's xavier_normal_ / xavier_uniform_).
INIT_NAMES = ("he", "xavier", "kaiming_uniform", "glorot_normal", "glorot_uniform")
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
