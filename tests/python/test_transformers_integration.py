"""fusedact with Hugging Face transformers models: fusedact.integrations.transformers
(one fused gated call per Llama-style MLP) and replace_activations on transformers'
activation classes.

Every model is a tiny randomly initialised one built from its config (no download): hidden
64, intermediate 128, 2 layers, vocabulary 128. The patched or swapped model is a deep copy
of the reference and runs on the same input ids with the same labels; loss, logits and every
parameter gradient must match the unpatched model with the default assert_close tolerances
of the dtype (DESIGN.md section 5: float32 rtol 1.3e-6 / atol 1e-5, float64 rtol 1e-7 /
atol 1e-7), unloosened. In float32 the models need not agree bit for bit (fusedact rounds
act(gate) * up once, and evaluates gelu with its own formulation); measured with these
models (transformers 5.23.0): logits differ by at most 1.8e-7 and gradients by 9e-8, under
2% of what the tolerances allow.
"""

import copy
from collections import Counter

import pytest
import torch
from torch import nn
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed (pip install transformers) "
    "- the Hugging Face integration tests need it"
)
from transformers import activations as hf_act  # noqa: E402

import fusedact  # noqa: E402
import fusedact.nn as fnn  # noqa: E402
from fusedact.integrations.transformers import PatchReport, patch_model, patched, unpatch  # noqa: E402

TINY = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2)
LAYERS = TINY["num_hidden_layers"]

# (config class, model class, extra config, expected fused op)
FAMILIES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}, "swiglu"),
    "mistral": ("MistralConfig", "MistralForCausalLM", {}, "swiglu"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}, "swiglu"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}, "swiglu"),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {"head_dim": 16}, "geglu(approximate='tanh')"),
    "phi3 (packed gate_up_proj)": ("Phi3Config", "Phi3ForCausalLM", {"pad_token_id": 0}, "swiglu"),
}


def build(config_name, model_name, **extra):
    config_cls = getattr(transformers, config_name, None)
    model_cls = getattr(transformers, model_name, None)
    if config_cls is None or model_cls is None:
        pytest.skip(f"transformers {transformers.__version__} has no {model_name}")
    torch.manual_seed(0)
    return model_cls(config_cls(**{**TINY, **extra})).eval()  # eval: no dropout draws


class OpCounter(TorchDispatchMode):
    """Counts the ops that reach the dispatcher below autograd (fusedact's and aten's)."""

    def __init__(self):
        super().__init__()
        self.counts = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


def assert_same_training_step(ref, ours, dtype=torch.float32, ids=None):
    """Loss, logits and every parameter gradient of ours match ref (same ids and labels)."""
    ref, ours = ref.to(dtype), ours.to(dtype)
    if ids is None:
        ids = torch.randint(0, TINY["vocab_size"], (2, 16), generator=torch.Generator().manual_seed(1))
    out_ref, out_ours = ref(ids, labels=ids), ours(ids, labels=ids)
    assert_close(out_ours.logits, out_ref.logits)
    assert_close(out_ours.loss, out_ref.loss)
    out_ref.loss.backward()
    out_ours.loss.backward()
    ref_params, our_params = dict(ref.named_parameters()), dict(ours.named_parameters())
    assert list(our_params) == list(ref_params)
    for name, p in ref_params.items():
        if p.grad is None:
            assert our_params[name].grad is None, name
            continue
        assert_close(our_params[name].grad, p.grad, msg=lambda m, name=name: f"grad of {name}: {m}")


# ------------------------------------------------------------------------- patch_model


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_patched_model_matches_unpatched(family, dtype):
    config_name, model_name, extra, op = FAMILIES[family]
    ref = build(config_name, model_name, **extra)
    ours = copy.deepcopy(ref)

    report = patch_model(ours)

    assert isinstance(report, PatchReport) and report.skipped == []
    assert [p.name for p in report.patched] == [f"model.layers.{i}.mlp" for i in range(LAYERS)]
    assert {p.op for p in report.patched} == {op}
    # The fused op runs, once per layer forward and once backward; the activation does not.
    assert_same_training_step(ref, ours, dtype)
    counter = OpCounter()
    with counter:
        ids = torch.randint(0, TINY["vocab_size"], (2, 16))
        ours(ids, labels=ids).loss.backward()
    name = op.split("(")[0]
    split = ".default" if "packed" in family else ".split"
    assert counter.counts[f"fusedact.{name}{split}"] == LAYERS, counter.counts
    assert counter.counts[f"fusedact.{name}_backward{split}"] == LAYERS, counter.counts
    assert not any(k.startswith(("aten.silu", "aten.gelu")) for k in counter.counts), counter.counts


@pytest.mark.parametrize(
    "hidden_act, op",
    [("silu", "swiglu"), ("gelu", "geglu(approximate='none')"), ("gelu_pytorch_tanh", "geglu(approximate='tanh')"),
     ("gelu_new", "geglu(approximate='tanh')"), ("relu", "reglu")],
)
def test_activation_picks_the_fused_op(hidden_act, op):
    ref = build("LlamaConfig", "LlamaForCausalLM", hidden_act=hidden_act)
    ours = copy.deepcopy(ref)
    report = patch_model(ours)
    assert [p.op for p in report.patched] == [op] * LAYERS
    assert_same_training_step(ref, ours)


@pytest.mark.parametrize("hidden_act", ["quick_gelu", "relu2", "gelu_10"])
def test_activation_without_fused_op_is_left_alone(hidden_act):
    model = build("LlamaConfig", "LlamaForCausalLM", hidden_act=hidden_act)
    report = patch_model(model)
    assert report.patched == [] and len(report.skipped) == LAYERS
    for entry in report.skipped:
        assert "is the activation of none of the fused gated ops" in entry.reason, entry.reason
        assert "forward" not in vars(model.get_submodule(entry.name))


class ReversedMLP(nn.Module):
    """The Llama attribute names, but the activation on the up projection."""

    def __init__(self):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(8, 12), nn.Linear(8, 12)
        self.down_proj = nn.Linear(12, 8)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.gate_proj(x) * self.act_fn(self.up_proj(x)))


def test_other_formula_with_llama_names_is_left_alone():
    model = nn.Sequential(ReversedMLP())
    report = patch_model(model)
    assert report.patched == []
    [entry] = report.skipped
    assert entry.name == "0" and "its forward is not down_proj(act_fn(gate_proj(x)) * up_proj(x))" in entry.reason


def test_unpatch_context_manager_deepcopy_and_idempotence():
    ref = build("LlamaConfig", "LlamaForCausalLM")
    model = copy.deepcopy(ref)
    mlp = model.model.layers[0].mlp

    with patched(model, include="model.layers.0") as report:
        assert [p.name for p in report.patched] == ["model.layers.0.mlp"]
        assert report.skipped[0].reason == "not selected by include"
        assert "forward" in vars(mlp)
    assert "forward" not in vars(mlp)

    patch_model(model)
    again = patch_model(model)
    assert again.patched == [] and {s.reason for s in again.skipped} == {"already patched (swiglu)"}
    copied = copy.deepcopy(model)
    copied_mlp = copied.model.layers[0].mlp
    assert copied_mlp.forward.__self__ is copied_mlp  # the copy's patch is bound to the copy
    assert_same_training_step(ref, copied)

    assert unpatch(model) == [f"model.layers.{i}.mlp" for i in range(LAYERS)]
    assert unpatch(model) == []
    assert type(mlp).forward is mlp.forward.__func__


def test_bad_arguments_raise_naming_function_and_argument():
    model = nn.Sequential(ReversedMLP())
    fn = "fusedact.integrations.transformers.patch_model"
    with pytest.raises(TypeError, match=rf"{fn}: `model` must be a torch.nn.Module"):
        patch_model(None)
    with pytest.raises(TypeError, match=rf"{fn}: `exclude` must be"):
        patch_model(model, exclude=0)


def test_patch_after_replace_activations():
    ref = build("LlamaConfig", "LlamaForCausalLM")
    ours = copy.deepcopy(ref)
    swaps = fusedact.replace_activations(ours)
    assert [(s.old, s.new) for s in swaps.swapped] == [(hf_act.SiLUActivation, fnn.SiLU)] * LAYERS
    assert [p.op for p in patch_model(ours).patched] == ["swiglu"] * LAYERS  # fusedact.nn.SiLU act_fn
    assert_same_training_step(ref, ours)


# -------------------------------------------------------------- replace_activations on HF


@pytest.mark.parametrize(
    "config_name, model_name, extra, old",
    [
        ("GPT2Config", "GPT2LMHeadModel", dict(n_positions=32, n_embd=64, n_layer=2, n_head=4), "NewGELUActivation"),
        ("BertConfig", "BertForMaskedLM", dict(max_position_embeddings=32), "GELUActivation"),
        ("BertConfig", "BertForMaskedLM", dict(max_position_embeddings=32, hidden_act="gelu_fast"), "FastGELUActivation"),
        ("BertConfig", "BertForMaskedLM", dict(max_position_embeddings=32, hidden_act="quick_gelu"), "QuickGELUActivation"),
    ],
)
def test_replace_activations_on_hf_models(config_name, model_name, extra, old):
    if config_name == "GPT2Config":
        tiny = {"vocab_size": TINY["vocab_size"]}  # GPT2's sizes have other names (in `extra`)
    else:
        tiny = {k: TINY[k] for k in ("vocab_size", "hidden_size", "intermediate_size",
                                     "num_hidden_layers", "num_attention_heads")}
    config_cls, model_cls = getattr(transformers, config_name), getattr(transformers, model_name)
    torch.manual_seed(0)
    ref = model_cls(config_cls(**tiny, **extra)).eval()
    ours = copy.deepcopy(ref)

    report = fusedact.replace_activations(ours)

    assert report.skipped == [] and report.swapped
    assert {s.old for s in report.swapped} == {getattr(hf_act, old)}
    assert not any(isinstance(m, getattr(hf_act, old)) for m in ours.modules())
    assert_same_training_step(ref, ours)


def test_every_hf_activation_class_is_swapped_or_explained():
    """Each class of transformers.activations.ACT2CLS is swapped (and then equals the
    original on a float64 input) or skipped with a reason; none is silently ignored."""
    modules = nn.ModuleDict({key.replace(".", "_"): hf_act.ACT2FN[key] for key in hf_act.ACT2CLS})
    modules.double()  # PReLU's and xIELU's parameters, for the float64 comparison below
    ref = copy.deepcopy(modules)
    report = fusedact.replace_activations(modules)
    seen = {s.name for s in report.swapped} | {s.name for s in report.skipped}
    assert seen == set(modules), set(modules) - seen
    expected_skips = {"gelu_10", "laplace", "linear", "sqrtsoftplus", "xielu"}
    assert {s.name for s in report.skipped} == expected_skips, report.summary()
    x = torch.linspace(-10, 10, 401, dtype=torch.float64)
    for entry in report.swapped:
        assert_close(modules[entry.name](x.clone()), ref[entry.name](x.clone()), msg=entry.name)


def test_hf_subclass_with_other_formula_is_left_alone():
    class ScaledGELU(hf_act.GELUActivation):
        def forward(self, x):
            return super().forward(x) * 1.01

    model = nn.Sequential(ScaledGELU(), hf_act.GELUActivation())
    report = fusedact.replace_activations(model)
    assert [s.name for s in report.swapped] == ["1"]
    [skip] = report.skipped
    assert skip.name == "0" and skip.cls is ScaledGELU and "formula is not fusedact's" in skip.reason
