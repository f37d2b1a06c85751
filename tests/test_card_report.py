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
