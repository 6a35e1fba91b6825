from .lenet import LeNet5, LeNet5Modern  # noqa: F401
