from inference.cards import load_card
from training.card_report import main, render


def test_report_has_a_section_per_card_with_its_numbers(tiny_weights_dir, tmp_path):
    card = load_card("race", tiny_weights_dir)
    card.details["evaluations"] = {
        "utkface/test": {
            "n": 10,
            "accuracy": 0.8,
            "macro_f1": 0.7,
            "per_class": {"White": 0.9, "Black": 0.7},
            "per_group": {"age": {"0-12": 0.5, "20-29": 0.9}},
            "per_group_gap": {"age": {"best": "20-29", "worst": "0-12", "gap": 0.4}},
            "command": "facelens eval race ...",
        }
    }
    folder = tmp_path / "w"
    folder.mkdir()
    for task in ("emotion", "gender"):
        load_card(task, tiny_weights_dir).save(folder / f"{task}.json")
    card.save(folder / "race.json")
    text = render(folder)
    assert "## emotion" in text and "## gender" in text and "## race" in text
    assert "80.0% accuracy" in text and "gap 40.0 pt (20-29 vs 0-12)" in text
    assert main(["--weights", str(folder)]) == 0 and (folder / "README.md").read_text() == text


def test_ensemble_members_and_fine_tune_parents_are_each_told(tiny_weights_dir, tmp_path):
    base = {"dataset": "fer2013", "epochs_run": 60, "best_epoch": 59, "val_accuracy": 0.674, "train_seconds": 7200}
    tuned = {**base, "epochs_run": 20, "best_epoch": 18, "val_accuracy": 0.68, "train_seconds": 3600}
    tuned["init_from"] = {"file": "/runs/small/emotion.keras", **base, "command": "facelens train emotion A"}
    card = load_card("emotion", tiny_weights_dir)
    card.details["architecture"] = "ensemble(facelens_small + facelens_small)"
    card.details["members"] = [
        {"architecture": "facelens_small", "parameters": 10, "training": {**base, "command": "facelens train A"}},
        {"architecture": "facelens_small", "parameters": 10, "training": {**tuned, "command": "facelens train B"}},
    ]
    card.details["training"] = {"val_accuracy": 0.69, "train_seconds": 10800, "command": "python -m training.ensemble"}
    folder = tmp_path / "w"
    folder.mkdir()
    card.save(folder / "emotion.json")
    for task in ("gender", "race"):
        load_card(task, tiny_weights_dir).save(folder / f"{task}.json")
    section = render(folder).split("## emotion", 1)[1].split("## gender", 1)[0]
    assert "mean of 2 networks' probabilities (validation accuracy 69.0%)" in section
    assert "training took 3.00 h" in section
    member_lines = [line for line in section.splitlines() if line.startswith("  - `facelens_small`")]
    assert len(member_lines) == 2
    assert "fine-tuned from" not in member_lines[0]
    assert "20 epochs" in member_lines[1] and "fine-tuned from `emotion.keras`: fer2013 (60 epochs" in member_lines[1]
    card.details["members"] = card.details["members"][1:]
    card.details["mirror_averaged"] = True
    card.save(folder / "emotion.json")
    section = render(folder).split("## emotion", 1)[1].split("## gender", 1)[0]
    assert "mean of one network's probabilities on each face and on its mirror image" in section


def test_a_member_fine_tuned_from_a_run_folder_checkpoint_is_told_without_unknown_fields():
    from training.card_report import training_text

    parent = {"run_dir": "runs/gender_wmt", "epochs_run": 57, "best_epoch": 47, "val_accuracy": 0.9349}
    record = {"dataset": "utkface", "epochs_run": 22, "best_epoch": 17, "val_accuracy": 0.8334, "train_seconds": 4500}
    text = training_text({**record, "hardware": "CPU", "command": "facelens train race", "init_from": parent})
    assert "fine-tuned from `?`: run folder `runs/gender_wmt` (57 epochs, best epoch 47" in text
    assert "None" not in text and text.count("`facelens train race`") == 1


def test_a_cost_measured_in_rounds_is_told_with_the_rounds_spread(tiny_weights_dir):
    from training.card_report import model_section

    card = load_card("gender", tiny_weights_dir)
    cost = {"ms_per_face_batch8": 0.38, "total_ms_per_face_batch8_all_three": 2.61, "hardware": "CPU", "command": "c"}
    card.details["cost"] = {**cost, "rounds": 5, "total_ms_per_face_batch8_rounds_range": [2.247, 2.671]}
    line = next(line for line in model_section(card) if line.startswith("- **Cost"))
    assert "2.61 ms per face, the median of 5 rounds, whose totals ranged 2.25-2.67 ms (CPU" in line
    card.details["cost"] = cost  # a card written before rounds existed
    line = next(line for line in model_section(card) if line.startswith("- **Cost"))
    assert "2.61 ms per face (CPU" in line and "rounds" not in line
