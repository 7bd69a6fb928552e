"""`python -m cagul answer` and `audit` with any registered method's artifact, on a tiny
Qwen2.5-VL: a LoRA baseline answers with its own weights and explains nothing, CAGUL keeps its
explanation, stacked CAGUL adapters still load, and a foreign-base artifact is refused."""

from __future__ import annotations

import json

import pytest
import torch

from cagul.cli import main
from cagul.data import generate_dataset, load_dataset, make_split
from cagul.methods import get_method, load_unlearned
from cagul.methods.cagul.config import CagulMethodConfig, CagulTrainingArguments
from cagul.methods.lora import LoraArguments

ANSWER_KEYS = {
    "answer",
    "base_answer",
    "forget_probability",
    "transformed",
    "selected_tokens",
    "scores",
    "grid",
}
QUESTION = "Who is this?"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_methods_data")
    generate_dataset(out, n_individuals=4, seed=1, n_train_scenes=2, n_test_scenes=2)
    return out


@pytest.fixture(scope="module")
def artifacts(tiny_vlms, data_dir, tmp_path_factory):
    """A PO+GD (LoRA) and a CAGUL artifact for person 00000001, trained with tiny settings."""
    vlm = tiny_vlms["qwen2_5_vl"]
    split = make_split(load_dataset(data_dir), ["00000001"], "private")
    root = tmp_path_factory.mktemp("cli_methods_out")
    po = LoraArguments(
        epochs=2, batch_size=4, lr=5e-2, probe_size=4, check_every=1, early_stop=False
    )
    cagul = CagulMethodConfig(
        k=2,
        training=CagulTrainingArguments(
            disc_epochs=1,
            epochs=1,
            views=1,
            batch_size=8,
            disc_batch_size=8,
            encoder_views=0,
            max_negatives=2,
        ),
    )
    out = {}
    for name, cfg in (("po_gd", po), ("cagul", cagul)):
        get_method(name).train(vlm, split, cfg, out_dir=root / name, data_dir=data_dir)
        out[name] = str(root / name)
    return out


def _run(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _image(data_dir) -> str:
    return str(data_dir / "images" / "00000001.png")


def test_answer_with_a_lora_artifact_is_the_unlearned_models_and_explains_nothing(
    tiny_dirs, tiny_vlms, artifacts, data_dir, capsys
):
    model, img = tiny_dirs["qwen2_5_vl"], _image(data_dir)
    argv = ["answer", "--model", model, "--image", img, "--question", QUESTION]
    po = _run(capsys, [*argv, "--adapter", artifacts["po_gd"]])
    cagul = _run(capsys, [*argv, "--adapter", artifacts["cagul"]])
    base = _run(capsys, argv)

    vlm = tiny_vlms["qwen2_5_vl"]
    unlearned = load_unlearned(vlm, artifacts["po_gd"])
    assert po["answer"] == unlearned.generate([img], [QUESTION])[0]
    assert po["base_answer"] == base["answer"] == base["base_answer"]
    # The LoRA weights really answer: the unlearned model's logits are not the base model's.
    batch = vlm.prepare([img], [QUESTION])
    with torch.no_grad():
        assert not torch.allclose(unlearned.vlm.forward(batch), vlm.forward(batch))

    # The same §8 keys as CAGUL's record; only the explanation differs.
    assert set(po) == set(cagul) >= ANSWER_KEYS | {"method", "explains"}
    assert (po["method"], po["explains"]) == ("po_gd", False)
    assert (cagul["method"], cagul["explains"]) == ("cagul", True)
    assert (base["method"], base["explains"]) == (None, False)
    assert po["forget_probability"] is None and po["transformed"] is False
    assert po["selected_tokens"] == [] and po["adapter_index"] is None
    assert isinstance(cagul["forget_probability"], float)
    # The map is the base model's attention, the same as CAGUL's and the base's record.
    assert po["grid"] == cagul["grid"] == base["grid"] == [4, 4]
    assert torch.allclose(torch.tensor(po["scores"]), torch.tensor(base["scores"]))
    assert torch.allclose(torch.tensor(po["scores"]), torch.tensor(cagul["scores"]), atol=1e-5)


def test_audit_with_a_lora_artifact_scores_the_unlearned_models_answers(
    tiny_dirs, tiny_vlms, artifacts, data_dir, tmp_path, capsys
):
    ds = load_dataset(data_dir)
    person = next(ind for ind in ds if ind.unique_id == "00000001")
    qa = person.qa_list[0]
    prompts = tmp_path / "p.jsonl"
    lines = [
        {"image": "00000001", "question": qa.question, "keywords": [qa.answer.split()[0]]},
        {"image": "00000001", "question": QUESTION, "keywords": ["x"]},
    ]
    prompts.write_text("".join(json.dumps(p) + "\n" for p in lines))
    argv = [
        "audit",
        "--model",
        tiny_dirs["qwen2_5_vl"],
        "--data",
        str(data_dir),
        "--prompts",
        str(prompts),
    ]
    po = _run(capsys, [*argv, "--adapter", artifacts["po_gd"]])
    cagul = _run(capsys, [*argv, "--adapter", artifacts["cagul"]])

    img = str(person.image_file)
    expected = load_unlearned(tiny_vlms["qwen2_5_vl"], artifacts["po_gd"]).generate(
        [img] * len(lines), [p["question"] for p in lines]
    )
    assert [r["answer"] for r in po["rows"]] == expected
    assert (po["method"], cagul["method"], po["n"]) == ("po_gd", "cagul", 2)
    for a, c in zip(po["rows"], cagul["rows"], strict=True):
        assert set(a) == set(c) >= {"answer", "base_answer", "em", "base_em", "leaked"}
        assert a["forget_probability"] is None and a["transformed"] is False
        assert a["base_answer"] == c["base_answer"] and a["base_em"] == c["base_em"]
        assert a["leaked"] == (a["em"] > 0)


def test_stacked_cagul_adapters_still_answer_and_other_methods_do_not_stack(
    tiny_dirs, artifacts, data_dir, capsys
):
    argv = [
        "answer",
        "--model",
        tiny_dirs["qwen2_5_vl"],
        "--image",
        _image(data_dir),
        "--question",
        QUESTION,
    ]
    two = _run(capsys, [*argv, "--adapter", artifacts["cagul"], "--adapter", artifacts["cagul"]])
    assert two["method"] == "cagul" and two["explains"] is True
    assert main([*argv, "--adapter", artifacts["cagul"], "--adapter", artifacts["po_gd"]]) == 2
    assert "only CAGUL adapters stack" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["answer", "audit"])
def test_an_artifact_of_another_base_model_is_refused(
    command, tiny_dirs, artifacts, data_dir, tmp_path, capsys
):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"image": "00000001", "question": "Who?", "keywords": ["x"]}\n')
    rest = {
        "answer": ["--image", _image(data_dir), "--question", QUESTION],
        "audit": ["--data", str(data_dir), "--prompts", str(prompts)],
    }[command]
    argv = [command, "--model", tiny_dirs["llava"], "--adapter", artifacts["po_gd"], *rest]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "another base model" in err
