"""A BERT-style transformer encoder: token + position embeddings, post-LayerNorm blocks of
multi-head self-attention and a GELU feed-forward network, and a pooled classifier head.

Two layouts of the same architecture. The built-in ``bert_*`` project queries, keys and values with
one combined Linear and take no attention mask (their histories are kept as they are). The
``bert_*_hf`` models are laid out as Hugging Face's ``BertSelfAttention``: separate ``query``,
``key`` and ``value`` Linears, scores divided by sqrt(head size), and an ``attention_mask`` input
(1 attend, 0 padding; all ones as timed, as onnxruntime's transformers benchmark feeds it) turned
into the additive ``(1 - mask) * -10000`` bias. That exported graph is the one onnxruntime's
transformers optimizer fuses into its ``Attention`` operator (``ort-opt``); the combined projection
is not (harness.backends.ort_opt)."""

from __future__ import annotations

from harness.models.base import InputSpec, TorchModel, TransformerFacts

SIZES = {
    #            layers hidden heads  seq  vocab
    "bert_tiny": (2, 128, 2, 128, 1000),
    "bert_mini": (4, 256, 4, 128, 1000),
    "bert_base": (12, 768, 12, 128, 30522),
}
HF_SUFFIX = "_hf"  # bert_tiny_hf: bert_tiny's sizes in Hugging Face's layout (hf_layout=True)
MASK_BIAS = -10000.0  # Hugging Face BERT's additive bias for a padded key


def encoder_facts(hidden: int, heads: int) -> TransformerFacts:
    """The encoder as onnxruntime.transformers' optimizer knows it: BERT's architecture ("bert")."""
    return TransformerFacts("bert", heads, hidden)


def build_encoder(
    name: str,
    batch: int = 1,
    layers: int = 2,
    hidden: int = 128,
    heads: int = 2,
    seq: int = 128,
    vocab: int = 1000,
    hf_layout: bool = False,
) -> TorchModel:
    if hidden % heads:
        raise ValueError(f"{name}: hidden size {hidden} is not divisible by {heads} heads")

    def factory():
        import math

        import torch
        import torch.nn as nn

        class SelfAttention(nn.Module):
            def __init__(self):
                super().__init__()
                self.qkv = nn.Linear(hidden, 3 * hidden)
                self.out = nn.Linear(hidden, hidden)

            def forward(self, x):
                b, s, _ = x.shape
                q, k, v = self.qkv(x).reshape(b, s, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
                scores = torch.matmul(q, k.transpose(-1, -2)) * (hidden // heads) ** -0.5
                ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
                return self.out(ctx.transpose(1, 2).reshape(b, s, hidden))

        class SeparateSelfAttention(nn.Module):
            """Hugging Face's BertSelfAttention and BertSelfOutput's projection: separate Q, K, V."""

            def __init__(self):
                super().__init__()
                self.query = nn.Linear(hidden, hidden)
                self.key = nn.Linear(hidden, hidden)
                self.value = nn.Linear(hidden, hidden)
                self.out = nn.Linear(hidden, hidden)

            def heads_first(self, x):
                b, s, _ = x.shape
                return x.reshape(b, s, heads, hidden // heads).permute(0, 2, 1, 3)

            def forward(self, x, mask_bias):
                b, s, _ = x.shape
                q = self.heads_first(self.query(x))
                k = self.heads_first(self.key(x))
                v = self.heads_first(self.value(x))
                scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hidden // heads) + mask_bias
                ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
                return self.out(ctx.permute(0, 2, 1, 3).reshape(b, s, hidden))

        class Block(nn.Module):
            def __init__(self, attention=SelfAttention):
                super().__init__()
                self.attn = attention()
                self.ln1 = nn.LayerNorm(hidden)
                self.ffn = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
                self.ln2 = nn.LayerNorm(hidden)

            def forward(self, x, *mask_bias):
                x = self.ln1(x + self.attn(x, *mask_bias))
                return self.ln2(x + self.ffn(x))

        class Encoder(nn.Module):
            def __init__(self, attention=SelfAttention):
                super().__init__()
                self.tok = nn.Embedding(vocab, hidden)
                self.pos = nn.Parameter(0.02 * torch.randn(1, seq, hidden))
                self.ln = nn.LayerNorm(hidden)
                self.blocks = nn.Sequential(*[Block(attention) for _ in range(layers)])
                self.pool = nn.Linear(hidden, hidden)
                self.cls = nn.Linear(hidden, 2)

            def forward(self, input_ids):
                return self.head(self.blocks(self.embed(input_ids)))

            def embed(self, input_ids):
                return self.ln(self.tok(input_ids) + self.pos)

            def head(self, x):
                return self.cls(torch.tanh(self.pool(x[:, 0])))

        class MaskedEncoder(Encoder):
            def __init__(self):
                super().__init__(SeparateSelfAttention)

            def forward(self, input_ids, attention_mask):
                mask_bias = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * MASK_BIAS
                x = self.embed(input_ids)
                for block in self.blocks:
                    x = block(x, mask_bias)
                return self.head(x)

        return MaskedEncoder() if hf_layout else Encoder()

    inputs = [InputSpec("input_ids", (batch, seq), "int64", high=vocab)]
    if hf_layout:
        inputs.append(InputSpec("attention_mask", (batch, seq), "int64", low=1, high=2))
    return TorchModel(name, factory, inputs, transformer=encoder_facts(hidden, heads))
