"""One file per surveyed architecture (lenet.py, resnet.py, rbm.py, dsn.py, gpt.py, ...)."""
