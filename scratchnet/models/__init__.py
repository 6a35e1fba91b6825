from .lenet import LeNet5, LeNet5Modern  # noqa: F401
from .rbm import RBM; from .dbn import DBN; from .dsn import DSN  # noqa: F401,E702
from .charlm import CharLM; from .speech_classifier import SpeechClassifier  # noqa: F401,E702
from .deepspeech import DeepSpeech  # noqa: F401
from .alexnet import AlexNet; from .vgg import VGG; from .resnet import ResNet  # noqa: F401,E702
