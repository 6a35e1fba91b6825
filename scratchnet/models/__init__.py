"""One file per surveyed architecture (lenet.py, resnet.py, rbm.py, dsn.py, gpt.py, ...)."""
from .alexnet import AlexNet  # noqa: F401
from .bert import BertEncoder, BertForMaskedLM, BertForSequenceClassification  # noqa: F401
from .charlm import CharLM  # noqa: F401
from .dbn import DBN  # noqa: F401
from .deepspeech import DeepSpeech  # noqa: F401
from .densenet import DenseNet  # noqa: F401
from .dsn import DSN  # noqa: F401
from .efficientnet import EfficientNet  # noqa: F401
from .gan import Critic, Discriminator, Generator  # noqa: F401
from .googlenet import GoogLeNet  # noqa: F401
from .gpt import GPT  # noqa: F401
from .las import LAS  # noqa: F401
from .lenet import LeNet5, LeNet5Modern  # noqa: F401
from .mask_rcnn import MaskRCNN  # noqa: F401
from .mobilenet import MobileNet, MobileNetV2  # noqa: F401
from .multimodal import EarlyFusion, IntermediateFusion, LateFusion, Unimodal  # noqa: F401
from .pruning import LeNet5Caffe, LeNet300100  # noqa: F401
from .quant import Int8Net, QuantNet  # noqa: F401
from .rbm import RBM  # noqa: F401
from .rcnn import FasterRCNN  # noqa: F401
from .resnet import ResNet  # noqa: F401
from .seq2seq import AttentionSeq2Seq  # noqa: F401
from .speech_classifier import SpeechClassifier  # noqa: F401
from .speech_transformer import SpeechTransformer  # noqa: F401
from .summary import ModelSummary, summary  # noqa: F401  (the function; the module is scratchnet.models.summary)
from .vgg import VGG  # noqa: F401
from .vit import ViT  # noqa: F401
from .wav2vec2 import Wav2Vec2, Wav2Vec2CTC  # noqa: F401
from .yolo import YOLO  # noqa: F401
