from .lenet import LeNet5, LeNet5Modern  # noqa: F401
from .charlm import CharLM; from .speech_classifier import SpeechClassifier  # noqa: F401,E702
from .deepspeech import DeepSpeech  # noqa: F401
