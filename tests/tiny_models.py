"""Tiny random reward-model backbones with locally trained tokenizers, saved as safetensors folders.
Real transformers code paths, no hub: a Llama (BPE, chat template) and a BERT (WordPiece, plain text)."""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "How do I bake bread? Mix flour, water, yeast and salt, knead, let it rise, then bake it.",
    "I cannot help with that request because it could hurt people.",
    "Sure! Here is a simple recipe for pancakes: eggs, milk, flour and a pinch of sugar.",
    "Sorry, I will not explain how to build a weapon. Please stay safe.",
    "The capital of France is Paris. It is known for the Eiffel Tower; many people visit it.",
    "User: Tell me a joke.\nAssistant: Why did the chicken cross the road? To get to the other side!",
    "Violence is never the answer; talk to someone you trust, or call a helpline.",
    "Python is a programming language. To kill a process, use the kill command or task manager.",
    "good bad great terrible helpful harmful safe unsafe refuse comply answer question",
    "one two three four five six seven eight nine ten . , ? ! ; : ' \" ( ) - \n",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_llama(
    path: Path,
    hidden: int = 32,
    layers: int = 2,
    vocab: int = 400,
    chat: bool = True,
    max_positions: int = 512,
) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 5, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        pad_token_id=fast.pad_token_id,
        num_labels=1,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    import torch

    torch.manual_seed(0)
    model = LlamaForSequenceClassification(cfg)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path


def build_bert(path: Path, hidden: int = 32, layers: int = 2) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = sorted({w.strip(".,?!;:'\"()").lower() for line in CORPUS for w in line.split()} - {""})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *list(".,?!;:'\"()-"), *words]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + list(
        "abcdefghijklmnopqrstuvwxyz0123456789"
    )
    path.mkdir(parents=True, exist_ok=True)
    seen, uniq = set(), []
    for v in vocab:
        if v not in seen:
            seen.add(v)
            uniq.append(v)
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    wp = Tokenizer(models.WordPiece(vocab={v: i for i, v in enumerate(uniq)}, unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", uniq.index("[CLS]")), ("[SEP]", uniq.index("[SEP]"))],
    )
    tok = BertTokenizerFast(
        tokenizer_object=wp,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    cfg = BertConfig(
        vocab_size=len(uniq),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


# ---- existing reward models as people publish them (tests/test_existing_rm.py) ---------------------------
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
QWEN_TEMPLATE = (  # adds a default system prompt; no generation-prompt branch at all
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
)


def byte_bpe(specials: list[str], vocab: int = 400, **tokens):
    """A byte-level BPE tokenizer trained on CORPUS, with `specials` and the named special tokens
    (bos_token=..., eos_token=..., pad_token=...; a name left out stays unset) and other tokenizer settings."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **tokens)


def build_decoder_rm(
    path: Path,
    arch: str = "llama",
    style: str = "llama3",
    pad: str | None = None,
    padding_side: str = "right",
    dtype: str | None = None,
    num_labels: int = 1,
    head: bool = True,
    hidden: int = 32,
) -> Path:
    """A tiny decoder reward model as published: `style` llama3 (no pad, no unk, eos = the end-of-turn token
    <|eot_id|> that every rendering ends with) or qwen (ChatML with a default system prompt, no bos, no unk,
    eos <|im_end|>); `arch` llama, qwen2 or gemma3 (multimodal config, text model under
    `model.language_model`); `pad` names its pad token (None: none); `head=False` saves the bare backbone."""
    import torch
    from transformers import (
        AutoModel,
        AutoModelForSequenceClassification,
        Gemma3Config,
        LlamaConfig,
        Qwen2Config,
    )

    if style == "llama3":
        specials = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
        tok = byte_bpe(
            specials, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", padding_side=padding_side
        )
        tok.chat_template = LLAMA3_TEMPLATE
    else:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = byte_bpe(specials, eos_token="<|im_end|>", padding_side=padding_side)
        tok.chat_template = QWEN_TEMPLATE
    if pad is not None:
        tok.pad_token = pad
    text = dict(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    if arch == "gemma3":  # multimodal: the text model's settings sit in text_config, beside a vision tower
        vision = dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,  # as many blocks as the text model has
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        )
        conf = Gemma3Config(
            text_config={**text, "head_dim": hidden // 4, "sliding_window": 16},
            vision_config=vision,
            mm_tokens_per_image=4,
            num_labels=num_labels,
        )
    else:
        conf = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch](**text, num_labels=num_labels)
    torch.manual_seed(0)
    model = (AutoModelForSequenceClassification if head else AutoModel).from_config(conf)
    if dtype is not None:
        model = model.to(getattr(torch, dtype))
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def build_distilbert(path: Path, hidden: int = 32) -> Path:
    """A tiny DistilBERT reward model (base `distilbert`, head `pre_classifier` + `classifier`) with the
    WordPiece tokenizer of `build_bert`."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    build_bert(path)  # for its tokenizer; the weights are replaced below
    tok = AutoTokenizer.from_pretrained(path)
    for f in path.glob("*.safetensors"):
        f.unlink()
    cfg = DistilBertConfig(
        vocab_size=len(tok), dim=hidden, hidden_dim=hidden * 2, n_layers=2, n_heads=4, num_labels=1
    )
    torch.manual_seed(0)
    DistilBertForSequenceClassification(cfg).save_pretrained(path, safe_serialization=True)
    return path
