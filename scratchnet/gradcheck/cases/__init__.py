"""The gradient-check cases: one module per op family, each registering its checks on import.

Each module registers zero-argument functions with ``@register_case("family.op[option]")`` (from
``..registry``) that return a GradcheckReport or a list of them (from ``..checker``): float64, small
shapes, several shapes and every option that changes the math, inputs kept off kinks and ties.
``..catalogue.load_catalogue`` imports this package; a case module never imports the catalogue
or ``scratchnet.gradcheck`` itself.
"""
from . import (  # noqa: F401  (importing registers)
    attention,
    bert,
    channel,
    compress,
    conv,
    core,
    ctc,
    densenet,
    detection,
    efficientnet,
    energy,
    gan,
    googlenet,
    las,
    mask_rcnn,
    mobilenet,
    multimodal,
    quant,
    rcnn,
    recurrent,
    resnet,
    speech_transformer,
    vit,
    wav2vec2,
    yolo,
)
